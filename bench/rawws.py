"""A minimal RFC 6455 websocket client on an asyncio Protocol (``--client raw``).

The ``websockets`` client costs about as much CPU per received frame as the
server spends sending it; on a 2-core machine the clients then take the CPU
the server needs and the latencies measure the machine, not the server. This
client does only what the benchmarks need: the opening handshake, text frames
(fragmented or not) handed to a callback straight from ``data_received`` (no
queue, no task switch), ping answered with pong, close answered and reported.
Client frames are masked as the RFC requires. No extensions, no subprotocols.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import struct
from collections import deque
from collections.abc import Callable
from urllib.parse import urlsplit

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def _mask(payload: bytes) -> bytes:
    key = os.urandom(4)
    n = len(payload)
    if not n:
        return key
    reps = key * (n // 4 + 1)
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(reps[:n], "big")).to_bytes(n, "big")
    return key + masked


def _frame(opcode: int, payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    return head + _mask(payload)


class ConnectionClosed(Exception):
    pass


class RawWebSocket(asyncio.Protocol):
    def __init__(self, host: str, path: str) -> None:
        self.host, self.path = host, path
        self.transport: asyncio.Transport | None = None
        self.key = base64.b64encode(os.urandom(16))
        self.buf = bytearray()
        self.handshaken = False
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.close_code: int | None = None
        self.on_message: Callable[[str], None] | None = None
        self._inbox: deque[str] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._frags: list[bytes] = []

    # -- asyncio.Protocol --------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        transport.write(
            b"GET %b HTTP/1.1\r\nHost: %b\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: %b\r\nSec-WebSocket-Version: 13\r\n\r\n"
            % (self.path.encode(), self.host.encode(), self.key)
        )

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if not self.handshaken:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buf[:end]).decode("latin-1")
            del buf[: end + 4]
            status = head.split(" ", 2)[1] if " " in head else "?"
            accept = base64.b64encode(hashlib.sha1(self.key + GUID).digest()).decode()
            if status != "101" or accept not in head:
                self.opened.set_exception(ConnectionError(f"handshake refused: {head[:200]!r}"))
                self.transport.close()  # type: ignore[union-attr]
                return
            self.handshaken = True
            self.opened.set_result(None)
        pos = 0
        n = len(buf)
        while n - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            ln = b1 & 0x7F
            at = pos + 2
            if ln == 126:
                if n - at < 2:
                    break
                ln = (buf[at] << 8) | buf[at + 1]
                at += 2
            elif ln == 127:
                if n - at < 8:
                    break
                ln = int.from_bytes(buf[at : at + 8], "big")
                at += 8
            if n - at < ln:
                break
            payload = bytes(buf[at : at + ln])
            pos = at + ln
            opcode = b0 & 0x0F
            if opcode in (1, 0) or opcode == 2:
                if not b0 & 0x80:
                    self._frags.append(payload)
                    continue
                if self._frags:
                    self._frags.append(payload)
                    payload = b"".join(self._frags)
                    self._frags.clear()
                self._deliver(payload.decode())
            elif opcode == 9:  # ping
                self.transport.write(_frame(0xA, payload))  # type: ignore[union-attr]
            elif opcode == 8:  # close
                self.close_code = (payload[0] << 8 | payload[1]) if len(payload) >= 2 else 1005
                if not self.transport.is_closing():  # type: ignore[union-attr]
                    self.transport.write(_frame(0x8, payload[:2]))  # type: ignore[union-attr]
                    self.transport.close()  # type: ignore[union-attr]
        if pos:
            del buf[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.close_code is None:
            self.close_code = 1006
        if not self.opened.done():
            self.opened.set_exception(ConnectionError("connection lost during the handshake"))
        if not self.closed.done():
            self.closed.set_result(None)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # -- API (the subset of websockets' the benchmarks use) ---------------------

    def _deliver(self, text: str) -> None:
        if self.on_message is not None:
            self.on_message(text)
            return
        self._inbox.append(text)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def recv(self) -> str:
        while not self._inbox:
            if self.closed.done():
                raise ConnectionClosed(self.close_code)
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        return self._inbox.popleft()

    def deliver_to(self, callback: Callable[[str], None]) -> None:
        """From now on, hand every text frame to ``callback`` (queued ones first)."""
        while self._inbox:
            callback(self._inbox.popleft())
        self.on_message = callback

    async def send(self, text: str) -> None:
        if self.transport is None or self.transport.is_closing():
            raise ConnectionClosed(self.close_code)
        self.transport.write(_frame(0x1, text.encode()))

    async def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(_frame(0x8, struct.pack("!H", 1000)))
            try:
                await asyncio.wait_for(asyncio.shield(self.closed), 2)
            except TimeoutError:
                self.transport.abort()


async def connect(url: str, timeout: float = 60.0) -> RawWebSocket:
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or 80
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    loop = asyncio.get_running_loop()
    _, proto = await asyncio.wait_for(
        loop.create_connection(lambda: RawWebSocket(f"{host}:{port}", path), host, port), timeout
    )
    await asyncio.wait_for(proto.opened, timeout)
    return proto
