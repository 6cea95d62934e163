"""The baseline: a plain Starlette websocket app on uvicorn, one process.

``/ws/{room}``: the socket gets ``{"type": "hello"}`` and joins the room. A
text frame ``{"type": "start", "content"}`` streams one model call from the
stand-in; each chunk is encoded once and sent with one ``send_text`` per
member of the room, in a plain loop; then ``{"type": "done"}``. Nothing else:
no sequence numbers kept, no history, no store, no send queues.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from .model import client, text_chunks, uvicorn_kwargs

rooms: dict[str, list[WebSocket]] = {}
tasks: set[asyncio.Task[None]] = set()
llm = client()


async def fan_out(room: str, frame: str) -> None:
    for ws in list(rooms.get(room, ())):
        with contextlib.suppress(Exception):  # a member that left meanwhile
            await ws.send_text(frame)


async def stream(room: str, content: str) -> None:
    message_id = "msg-" + secrets.token_hex(8)
    seq = 0
    async for text in text_chunks(llm, content):
        seq += 1
        frame = {
            "type": "delta",
            "message_id": message_id,
            "text": text,
            "session_id": room,
            "seq": seq,
        }
        await fan_out(room, orjson.dumps(frame).decode())
    await fan_out(room, orjson.dumps({"type": "done", "session_id": room, "seq": seq + 1}).decode())


async def endpoint(ws: WebSocket) -> None:
    room = ws.path_params["room"]
    await ws.accept()
    members = rooms.setdefault(room, [])
    members.append(ws)
    try:
        await ws.send_text('{"type":"hello"}')
        while True:
            data: dict[str, Any] = orjson.loads(await ws.receive_text())
            if data.get("type") == "start":
                task = asyncio.create_task(stream(room, str(data["content"])))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
    except WebSocketDisconnect:
        pass
    finally:
        members.remove(ws)
        if not members:
            rooms.pop(room, None)


async def healthz(request: Any) -> JSONResponse:
    return JSONResponse({"status": "ok"})


app = Starlette(routes=[Route("/healthz", healthz), WebSocketRoute("/ws/{room}", endpoint)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(app, **uvicorn_kwargs(args.port))  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
