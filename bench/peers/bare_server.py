"""The baseline: a plain Starlette websocket app on uvicorn, one process.

``/ws/{room}``: the socket gets ``{"type": "hello"}`` and joins the room. A
text frame ``{"type": "start", "content"}`` streams one model call from the
stand-in; each chunk is encoded once and sent with one ``send_text`` per
member of the room, in a plain loop; then ``{"type": "done"}``. Nothing else:
no sequence numbers kept, no history, no store, no send queues.

With ``--direct`` it is the *floor*, a reference: each chunk's websocket frame
is built once and written with one ``transport.write`` per member, bypassing
the ASGI ``send`` (no framing, task or await per socket, and no regard for
back-pressure: a member that stops reading is buffered without bound). What is
left is the model's stream read through the SDK's models, one JSON encoding
per chunk and the kernel's work for each write, which is most of it with many
viewers. A server that reads the stream more cheaply (realtime-agent reads its
wire form) can come in a little under it; the bench reports realtime-agent's
CPU against it (``bench/README.md``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame, Opcode

from .model import client, text_chunks, uvicorn_kwargs

rooms: dict[str, list[WebSocket]] = {}
protocols: dict[str, list[WebSocketsSansIOProtocol]] = {}  # --direct: the same members
tasks: set[asyncio.Task[None]] = set()
llm = client()
#: The scope extension under which a --direct socket offers its protocol.
TRANSPORT = "bench.transport"


class TransportProtocol(WebSocketsSansIOProtocol):
    """uvicorn's protocol, offering itself to the app (the floor writes to its transport)."""

    async def run_asgi(self) -> None:
        self.scope["extensions"][TRANSPORT] = self  # type: ignore[index]
        await super().run_asgi()


async def fan_out(room: str, frame: str) -> None:
    for ws in list(rooms.get(room, ())):
        with contextlib.suppress(Exception):  # a member that left meanwhile
            await ws.send_text(frame)


async def fan_out_direct(room: str, frame: str) -> None:
    data = Frame(Opcode.TEXT, frame.encode()).serialize(mask=False)
    for protocol in protocols.get(room, ()):
        if not protocol.transport.is_closing():
            protocol.transport.write(data)


async def stream(
    room: str, content: str, send: Callable[[str, str], Awaitable[None]] = fan_out
) -> None:
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
        await send(room, orjson.dumps(frame).decode())
    await send(room, orjson.dumps({"type": "done", "session_id": room, "seq": seq + 1}).decode())


async def endpoint(ws: WebSocket) -> None:
    room = ws.path_params["room"]
    await ws.accept()
    protocol = ws.scope["extensions"].get(TRANSPORT)
    send = fan_out if protocol is None else fan_out_direct
    members = rooms.setdefault(room, [])
    members.append(ws)
    try:
        await ws.send_text('{"type":"hello"}')
        if protocol is not None:  # after the hello, which goes through uvicorn's send
            protocols.setdefault(room, []).append(protocol)
        while True:
            data: dict[str, Any] = orjson.loads(await ws.receive_text())
            if data.get("type") == "start":
                task = asyncio.create_task(stream(room, str(data["content"]), send))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
    except WebSocketDisconnect:
        pass
    finally:
        members.remove(ws)
        if not members:
            rooms.pop(room, None)
        if protocol in protocols.get(room, ()):
            protocols[room].remove(protocol)
            if not protocols[room]:
                protocols.pop(room)


async def healthz(request: Any) -> JSONResponse:
    return JSONResponse({"status": "ok"})


app = Starlette(routes=[Route("/healthz", healthz), WebSocketRoute("/ws/{room}", endpoint)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--direct", action="store_true", help="the floor: frames straight to the transports"
    )
    args = parser.parse_args()
    kwargs = uvicorn_kwargs(args.port)
    if args.direct:
        kwargs["ws"] = TransportProtocol
    uvicorn.run(app, **kwargs)  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
