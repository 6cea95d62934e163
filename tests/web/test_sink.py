"""How frames reach a socket: the direct transport path and the portable ASGI one.

Every test that runs a server runs twice: on our uvicorn protocol (frames
written straight to the transport) and on uvicorn's own ``websockets-sansio``
(the queue and writer task any ASGI server gets).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from starlette.types import Message
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosedError
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

from realtime_agent.web.sender import QueuedSink
from realtime_agent.wsframe import text_frame
from tests.helpers import TIMEOUT, Api, RunningServer, settings_for, standin_settings
from tests.standin_anthropic import AnthropicStandIn, Text

PATHS = [pytest.param(None, id="direct"), pytest.param("websockets-sansio", id="portable")]


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65_535, 65_536, 70_000])
def test_text_frame_is_the_websockets_serialisation(size: int) -> None:
    text = ("é" * size)[: max(size // 2, 0)] + "x" * (size - size // 2)
    expected = Frame(Opcode.TEXT, text.encode()).serialize(mask=False)
    assert text_frame(text) == expected


@pytest.mark.parametrize("ws", PATHS)
async def test_owner_and_viewer_get_the_same_events(tmp_path: Path, ws: str | None) -> None:
    async with RunningServer(settings_for(tmp_path), ws=ws) as server, Api(server.base_url) as api:
        created = await api.create()
        owner = await api.join(created)
        viewer = await api.join(created, "viewer")
        await owner.message("hello", "c-1")
        assert (await owner.until_idle())["status"] == "completed"
        await viewer.until_idle()
        assert owner.events() == viewer.events()
        assert any(e["type"] == "delta" for e in owner.events())
        await owner.send({"type": "ping", "id": "p"})
        assert (await owner.until_type("pong"))["id"] == "p"


def _slow_socket(port: int) -> socket.socket:
    """A client socket with a tiny receive buffer: what it does not read backs up fast."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    return sock


@pytest.mark.parametrize("ws", PATHS)
async def test_a_slow_reader_is_cut_1013_and_the_owner_gets_everything(
    tmp_path: Path, standin: AnthropicStandIn, ws: str | None
) -> None:
    chunks = [f"{i:05d}" + "y" * 9995 for i in range(600)]
    standin.push(Text(chunks, delay=0.001))
    # The default bound (1 MiB): the owner reads in this process, beside the server,
    # so it can fall a few hundred KB behind while the server streams 6 MB at once.
    settings = standin_settings(tmp_path, standin)
    async with RunningServer(settings, ws=ws) as server, Api(server.base_url) as api:
        created = await api.create()
        owner = await api.join(created)
        slow = await api.connect(
            created["session_id"],
            created["viewer_token"],
            sock=_slow_socket(server.port),
            max_queue=1,
        )
        await owner.message("flood", "c-1")
        assert (await owner.until_idle())["status"] == "completed"
        assert "".join(e["text"] for e in owner.events() if e["type"] == "delta") == "".join(chunks)
        received = 0
        with pytest.raises(ConnectionClosedError) as closed:
            while True:
                await slow.recv()
                received += 1
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
        assert received < len(chunks)


class RawViewer:
    """A websocket client on a bare socket (websockets' sans-I/O protocol) that reads
    only when told to: what the server sends meanwhile stays in the server's buffers."""

    def __init__(self, url: str, port: int) -> None:
        self.sock = _slow_socket(port)
        self.sock.setblocking(False)
        self.proto = ClientProtocol(parse_uri(url), max_size=None)
        self.loop = asyncio.get_running_loop()

    async def pump(self) -> list[Any]:
        for data in self.proto.data_to_send():
            await self.loop.sock_sendall(self.sock, data)
        async with asyncio.timeout(TIMEOUT):
            data = await self.loop.sock_recv(self.sock, 1 << 16)
        assert data, "the server closed the connection"
        self.proto.receive_data(data)
        return self.proto.events_received()

    async def open(self) -> None:
        self.proto.send_request(self.proto.connect())
        while not any(isinstance(e, Response) for e in await self.pump()):
            pass
        assert self.proto.handshake_exc is None

    async def read_until(self, done: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        frames: list[dict[str, Any]] = []
        while not frames or not done(frames[-1]):
            for event in await self.pump():
                assert isinstance(event, Frame), event
                assert event.opcode == Opcode.TEXT, event  # not a close
                frames.append(orjson.loads(event.data))
        return frames


@pytest.mark.parametrize("ws", PATHS)
async def test_a_greeting_larger_than_the_bound_does_not_cut_the_socket(
    tmp_path: Path, ws: str | None
) -> None:
    """A snapshot many times the send bound, still unread when live events follow,
    is not counted against the bound: the joining socket is not closed 1013."""
    settings = settings_for(tmp_path, send_queue_bytes=16 * 1024)
    async with RunningServer(settings, ws=ws) as server, Api(server.base_url) as api:
        created = await api.create()
        owner = await api.join(created)
        for i in range(64):  # a transcript larger than the kernel's socket buffers (4 MB)
            await owner.message(f"{i} " + "w" * 90_000, f"c-{i}")
            await owner.until_idle()
        viewer = RawViewer(api.ws_url(created["session_id"], created["viewer_token"]), server.port)
        await viewer.open()  # hello and a ~6 MB snapshot are sent; nothing is read
        await owner.until_type("presence")  # the viewer has joined: live events reach it
        await owner.message("and now live", "c-live")
        await owner.until_idle()
        try:
            frames = await viewer.read_until(
                lambda f: f["type"] == "status" and f["status"] == "completed"
            )
        finally:
            viewer.sock.close()
        assert [f["type"] for f in frames[:2]] == ["hello", "snapshot"]
        live = [f for f in frames if "seq" in f]
        assert live and live == owner.events()[-len(live) :]


@pytest.mark.parametrize("ws", PATHS)
async def test_a_pong_overtakes_a_backlog_the_reader_has_not_read(
    tmp_path: Path, ws: str | None
) -> None:
    """Keep-alive stays alive behind a slow reader: frames for a socket that is not
    reading wait in the server, so the answer to its ping goes out before them
    (it does not wait behind megabytes of events)."""
    # the client reads nothing for a while: no keep-alive timeout during the test
    settings = settings_for(tmp_path, send_queue_bytes=64 << 20, ws_ping_interval=300)
    async with RunningServer(settings, ws=ws) as server, Api(server.base_url) as api:
        created = await api.create()
        owner = await api.join(created)
        # a second owner socket on a raw client that reads nothing for now
        slow = RawViewer(api.ws_url(created["session_id"], created["owner_token"]), server.port)
        await slow.open()
        await owner.until_type("presence")  # it has joined: the events below reach it
        for i in range(96):  # ~8.6 MB of echoes: twice what the kernel's buffers hold
            await owner.message(f"{i} " + "w" * 90_000, f"c-{i}")
            await owner.until_idle()
        backlog_end = owner.events()[-1]["seq"]
        # A ping, then a message: once the message's echo reaches the other owner,
        # the server has read the ping (frames are handled in order) and answered it.
        slow.proto.send_ping(b"still there?")
        slow.proto.send_text(orjson.dumps({"type": "message", "content": "hi", "client_id": "p"}))
        for data in slow.proto.data_to_send():
            await slow.loop.sock_sendall(slow.sock, data)
        await owner.until(lambda f: f["type"] == "message" and f["message"]["client_id"] == "p")
        pong_at: int | None = None
        seqs: list[int] = []
        try:
            while not seqs or seqs[-1] < backlog_end:
                for event in await slow.pump():
                    if isinstance(event, Frame) and event.opcode == Opcode.PONG:
                        assert event.data == b"still there?"
                        pong_at = len(seqs)
                    elif isinstance(event, Frame) and event.opcode == Opcode.TEXT:
                        frame = orjson.loads(event.data)
                        if "seq" in frame:
                            seqs.append(frame["seq"])
        finally:
            slow.sock.close()
        assert pong_at is not None, "no pong before the end of the backlog"
        queued = sum(seq <= backlog_end for seq in seqs)  # all emitted before the ping
        # The kernel's buffers (~4 MB) were full before the ping and go first; the
        # rest of the backlog waited in the server, behind the pong.
        overtaken = queued - pong_at
        assert overtaken >= queued // 4, f"pong after {pong_at} of {queued} events"
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # nothing lost or reordered


async def test_the_portable_sink_counts_bytes_not_characters() -> None:
    """The send bound is in bytes: a queued frame of non-ASCII text counts its UTF-8 size."""
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    sink = QueuedSink(send)
    text = "é" * 100  # 100 characters, 200 bytes
    sink.write(text, None)
    assert sink.buffered() == 200
    sink.write(text, text_frame(text))  # an event's shared frame: 200 bytes and a header
    assert sink.buffered() == 200 + len(text_frame(text))
