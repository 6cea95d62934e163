"""What a socket sends, in order, bounded: :class:`SocketSender` and its sinks.

The channel layer calls :meth:`SocketSender.deliver` for every event and never
waits. On our uvicorn protocol (:mod:`.wsprotocol`) the sink is the socket's
transport itself: the event's frame, built once for all sockets, is written
with one ``transport.write`` and no task, queue or per-socket encoding. On any
other ASGI server a :class:`QueuedSink` and its writer task send through the
ASGI ``send``. Either way, a client that falls behind (more than the bound
buffered) is closed with 1013 and resumes with ``after``; it never slows the
other sockets of its session.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Protocol

from starlette.types import Send

from ..channels.base import Event
from ..protocol import CloseCode


class SocketClosed(Exception):
    """The writer closed the socket (or found it closed): the connection is over."""


class FrameSink(Protocol):
    """Where a socket's frames go."""

    def write(self, text: str, frame: bytes | None) -> None:
        """Send a text frame (``frame``, when given, is ``text`` already framed)."""

    def buffered(self) -> int:
        """Bytes written but not yet taken by the peer (the bound's measure)."""

    def close(self, code: int, reason: str, flush: bool) -> None:
        """Send a close frame after what is buffered (``flush``) or instead of it;
        the connection's reader then sees ``websocket.disconnect``."""


class SocketSender:
    """The channel layer's :class:`Subscriber` for one websocket.

    Until :meth:`go_live`, events are held back, so ``hello`` and the snapshot
    or replay go first; afterwards an event at or below the last seq already
    sent is dropped, so a replay and live delivery never duplicate.
    """

    __slots__ = ("_bound", "_held", "_last_seq", "_limit", "_sink", "close_code", "close_reason")

    def __init__(self, sink: FrameSink, limit: int) -> None:
        self._sink = sink
        self._limit = limit
        self._bound = limit
        self._held: list[Event] | None = []
        self._last_seq = 0
        self.close_code: int | None = None
        self.close_reason = ""

    def deliver(self, event: Event) -> None:
        if self.close_code is not None:
            return
        if self._held is not None:
            self._held.append(event)
            if len(self._held) > 10_000:
                self.close(CloseCode.TRY_AGAIN_LATER, "fell behind while joining")
            return
        if event.seq:
            if event.seq <= self._last_seq:
                return
            self._last_seq = event.seq
        self._write(event.text, event.frame)

    def send(self, text: str, frame: bytes | None = None) -> None:
        """Send a frame of this connection only (hello, snapshot, replay, error, pong);
        ``frame``, when given, is ``text`` already framed."""
        if self.close_code is None:
            self._write(text, frame)

    def _write(self, text: str, frame: bytes | None) -> None:
        # The bound guards against a client falling behind: what was buffered
        # before this frame is measured, so one big frame alone passes. The
        # greeting (hello, snapshot or replay) is not counted: a long transcript
        # must not make a socket impossible to open, so the bound starts above
        # it and comes down to the limit once the client has read it.
        if self._held is None:
            buffered = self._sink.buffered()
            if buffered > self._bound:
                self.close(CloseCode.TRY_AGAIN_LATER, "client fell behind; reconnect with after")
                return
            if buffered <= self._limit:
                self._bound = self._limit
        self._sink.write(text, frame)

    def go_live(self, last_seq: int) -> None:
        """Everything up to ``last_seq`` was sent: release the held live events."""
        self._bound = self._limit + self._sink.buffered()
        held, self._held = self._held or [], None
        self._last_seq = max(self._last_seq, last_seq)
        for event in held:
            self.deliver(event)

    def close(self, code: int, reason: str, *, flush: bool = False) -> None:
        """Close the socket with ``code`` (idempotent): after what is buffered with
        ``flush``, else dropping what can still be dropped (a client that fell
        behind resumes anyway)."""
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
            self._sink.close(code, reason, flush)


class QueuedSink:
    """The portable sink: a queue and a writer task on the ASGI ``send``.

    Used when the server is not ours (another ASGI server, or uvicorn started
    without :func:`realtime_agent.app.server_config`); the connection owns
    the :meth:`run` task.
    """

    __slots__ = ("_close", "_queue", "_queued", "_send", "_wake")

    def __init__(self, send: Send) -> None:
        self._send = send
        self._queue: deque[tuple[str, int]] = deque()  # (text, its size in bytes)
        self._queued = 0  # bytes waiting in _queue (frame sizes)
        self._wake = asyncio.Event()
        self._close: tuple[int, str] | None = None

    def write(self, text: str, frame: bytes | None) -> None:
        if frame is not None:
            size = len(frame)
        else:  # isascii() is O(1): no copy of a large snapshot to measure it
            size = len(text) if text.isascii() else len(text.encode())
        self._queue.append((text, size))
        self._queued += size
        self._wake.set()

    def buffered(self) -> int:
        return self._queued

    def close(self, code: int, reason: str, flush: bool) -> None:
        self._close = (code, reason)
        if not flush:
            self._queue.clear()
            self._queued = 0
        self._wake.set()

    async def run(self) -> None:
        """The writer: send queued frames until closed; raises :class:`SocketClosed`."""
        send, queue = self._send, self._queue
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while queue:
                    text, size = queue.popleft()
                    self._queued -= size
                    await send({"type": "websocket.send", "text": text})
                if self._close is not None:
                    code, reason = self._close
                    await send({"type": "websocket.close", "code": code, "reason": reason})
                    raise SocketClosed
        except OSError:  # the peer went away mid-send (uvicorn's ClientDisconnected)
            raise SocketClosed from None
