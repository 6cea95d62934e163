"""A socket's bounded send queue and its writer.

The channel layer calls :meth:`SocketSender.deliver` for every event and never
waits: the event's encoded text is queued and the writer task sends it. A
client that falls behind overflows its queue and is closed with 1013 (it
resumes with ``after``); it never slows the other sockets of its session.
"""

from __future__ import annotations

import asyncio
from collections import deque

from starlette.types import Send

from ..channels.base import Event
from ..protocol import CloseCode


class SocketClosed(Exception):
    """The writer closed the socket (or found it closed): the connection is over."""


class SocketSender:
    """Queue and writer of one websocket; the channel layer's :class:`Subscriber`.

    Until :meth:`go_live`, events are held back, so ``hello`` and the snapshot
    or replay go first; afterwards an event at or below the last seq already
    sent is dropped, so a replay and live delivery never duplicate.
    """

    __slots__ = (
        "_greeting",
        "_held",
        "_last_seq",
        "_limit",
        "_queue",
        "_queued",
        "_send",
        "_wake",
        "close_code",
        "close_reason",
    )

    def __init__(self, send: Send, limit: int) -> None:
        self._send = send
        self._limit = limit
        self._queue: deque[str] = deque()
        self._queued = 0  # characters of live frames waiting in _queue (the bound)
        self._greeting = 0  # frames queued before go_live (hello, snapshot, replay): unbounded
        self._wake = asyncio.Event()
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
        self.send(event.text)

    def send(self, text: str) -> None:
        """Queue a frame (also one of this connection only: hello, error, pong).

        Before :meth:`go_live` (the greeting: hello, snapshot or replay) frames are
        not counted against the bound: a long transcript must not make a socket
        impossible to open. The bound guards against a client falling behind.
        """
        if self.close_code is not None:
            return
        self._queue.append(text)
        if self._held is not None:
            self._greeting += 1
            self._wake.set()
            return
        self._queued += len(text)
        if self._queued > self._limit and len(self._queue) > 1:  # one big frame alone may pass
            self.close(CloseCode.TRY_AGAIN_LATER, "client fell behind; reconnect with after")
            return
        self._wake.set()

    def go_live(self, last_seq: int) -> None:
        """Everything up to ``last_seq`` was sent: release the held live events."""
        held, self._held = self._held or [], None
        self._last_seq = max(self._last_seq, last_seq)
        for event in held:
            self.deliver(event)

    def close(self, code: int, reason: str, *, flush: bool = False) -> None:
        """Close the socket with ``code`` (idempotent): after what is queued with
        ``flush``, else dropping it (a client that fell behind resumes anyway)."""
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
            if not flush:
                self._queue.clear()
                self._queued = self._greeting = 0
            self._wake.set()

    async def run(self) -> None:
        """The writer: send queued frames until closed; raises :class:`SocketClosed`."""
        send, queue = self._send, self._queue
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while queue:
                    text = queue.popleft()
                    if self._greeting:
                        self._greeting -= 1
                    else:
                        self._queued -= len(text)
                    await send({"type": "websocket.send", "text": text})
                if self.close_code is not None:
                    await send(
                        {
                            "type": "websocket.close",
                            "code": self.close_code,
                            "reason": self.close_reason,
                        }
                    )
                    raise SocketClosed
        except OSError:  # the peer went away mid-send (uvicorn's ClientDisconnected)
            raise SocketClosed from None
