"""The peer: python-socketio with AsyncRedisManager, served by uvicorn (ASGI).

Clients speak Engine.IO 4 over a websocket (``/socket.io/?EIO=4&transport=websocket``):

- ``join`` ``{"room"}`` with an ack: the socket enters the room (the ack answers
  ``{"joined": room}``);
- ``start`` ``{"room", "content"}``: the server streams one model call from the
  stand-in and emits every text chunk to the room as a ``delta`` event
  ``{"type", "message_id", "text", "session_id", "seq"}``, then ``done``.

Every emit goes through the manager: handled here, and published on Redis for
the other processes, which deliver it to their own members of the room.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
from typing import Any

import socketio
import uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from .model import client, text_chunks, uvicorn_kwargs


def build(redis_url: str, channel: str) -> Any:
    manager = socketio.AsyncRedisManager(redis_url, channel=channel)
    sio = socketio.AsyncServer(
        async_mode="asgi",
        client_manager=manager,
        cors_allowed_origins="*",
        logger=False,
        engineio_logger=False,
        transports=["websocket"],
    )
    llm = client()
    tasks: set[asyncio.Task[None]] = set()

    @sio.event
    async def join(sid: str, data: dict[str, Any]) -> dict[str, Any]:
        await sio.enter_room(sid, data["room"])
        return {"joined": data["room"]}

    async def stream(room: str, content: str) -> None:
        message_id = "msg-" + secrets.token_hex(8)
        seq = 0
        async for text in text_chunks(llm, content):
            seq += 1
            await sio.emit(
                "delta",
                {
                    "type": "delta",
                    "message_id": message_id,
                    "text": text,
                    "session_id": room,
                    "seq": seq,
                },
                room=room,
            )
        await sio.emit("done", {"type": "done", "session_id": room, "seq": seq + 1}, room=room)

    @sio.event
    async def start(sid: str, data: dict[str, Any]) -> None:
        task = asyncio.create_task(stream(data["room"], data["content"]))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def healthz(request: Any) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    other = Starlette(routes=[Route("/healthz", healthz)])
    return socketio.ASGIApp(sio, other_asgi_app=other)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--channel", default="socketio")
    args = parser.parse_args()
    uvicorn.run(build(args.redis_url, args.channel), **uvicorn_kwargs(args.port))  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
