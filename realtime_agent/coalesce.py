"""Adaptive coalescing of streamed text into ``delta`` events.

A chunk that comes after a quiet spell of at least ``window`` seconds since
the previous send ended goes out at once: light load is never delayed. Chunks
that come sooner are merged and sent together ``window`` after the previous
send ended: heavy load becomes fewer, larger deltas (the per-socket cost of an
event, not of a byte, is what limits fan-out). While the sends merge more than
one chunk per ``window`` (a stream faster than the window: a thousand chunks a
second) the window doubles, up to ``max_window``; a send that merged no more
than that brings it back to ``window``. So two chunks that came close together
in a stream of a hundred a second widen it once, and the next send brings it
back: the window never grows into the stream's own pace and holds every later
chunk back (each wide window would merge two chunks, and keep itself wide). And the
window is never less than twice what the last send took (up to
``max_window``): a session whose fan-out is expensive (a thousand sockets)
gets merged deltas before the loop falls behind, instead of after. Counting
from the end of a send (not its start) is what merges under overload: when the
process is behind, every send waits for the loop, and the chunks that piled up
meanwhile are read the moment it returns; they merge instead of each going out
alone, late.

The protocol is unchanged: the deltas of a message, joined, still equal its
final content, because only text that was sent counts as said.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


class Coalescer:
    """Merges text chunks into sends at most one per ``window`` (seconds).

    ``send`` is called with merged text, one call at a time, in order. Use as an
    async context manager; leaving it sends what is pending, except when the
    task is cancelled (an interrupt), which drops it.
    """

    def __init__(
        self,
        send: Callable[[str], Awaitable[None]],
        window: float,
        max_window: float | None = None,
        max_batch: int = 16_384,
    ) -> None:
        self._send = send
        self._base = self._window = window
        self._max_window = max(window, max_window if max_window is not None else window)
        self._max_batch = max_batch  # merging more saves little and makes bursts
        self._size = 0
        self._loop = asyncio.get_running_loop()
        self._pending: list[str] = []
        self._last = -window  # when the last send ended: the first chunk goes at once
        self._lock = asyncio.Lock()  # one send at a time, in order
        self._timer: asyncio.Task[None] | None = None
        self._sleeping = False

    @property
    def window(self) -> float:
        """The current merge window (seconds)."""
        return self._window

    async def __aenter__(self) -> Coalescer:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        await self._stop_timer()
        # A failed model call still shows what it said; an interrupt stops at once.
        if exc_type is None or not issubclass(exc_type, asyncio.CancelledError):
            await self._flush()

    async def _stop_timer(self) -> None:
        """Cancel a timer that still sleeps; let one that is sending finish, and
        raise what its send raised."""
        timer, self._timer = self._timer, None
        if timer is None:
            return
        if self._sleeping:
            timer.cancel()
        await asyncio.wait([timer])  # our own cancellation still interrupts this
        _raise_failure(timer)

    async def add(self, text: str) -> None:
        """Take one chunk: send it now, or merge it into the next send.

        Raises what a send made by the timer raised (the stream stops there).
        """
        timer = self._timer
        if timer is not None and timer.done():
            self._timer = None
            _raise_failure(timer)
        now = self._loop.time()
        quiet = not self._pending and self._timer is None and now - self._last >= self._window
        self._pending.append(text)
        self._size += len(text)
        if quiet or self._size >= self._max_batch:
            await self._flush()
            return
        if self._timer is None:
            self._sleeping = True  # also before the task first runs: cancelling it is safe
            self._timer = asyncio.create_task(self._later(self._last + self._window - now))

    async def _later(self, delay: float) -> None:
        while True:
            try:
                await asyncio.sleep(max(0.0, delay))
            finally:
                self._sleeping = False
            await self._flush()
            if not self._pending:  # chunks that came during the send wait for the next one
                self._timer = None
                return
            delay = self._last + self._window - self._loop.time()
            self._sleeping = True

    async def _flush(self) -> None:
        async with self._lock:
            if not self._pending:
                return
            text = "".join(self._pending)
            # Faster than one chunk per base window: widen; otherwise back to the base.
            fast = len(self._pending) * self._base > self._window
            window = self._window * 2 if fast else self._base
            self._pending.clear()
            self._size = 0
            start = self._loop.time()
            try:
                await self._send(text)
            finally:
                self._last = self._loop.time()
            took = self._last - start
            if self._base:  # a window of 0 means never merge
                self._window = min(max(window, 2 * took), self._max_window)


def _raise_failure(timer: asyncio.Task[None]) -> None:
    """Raise the exception a finished timer's send ended with, if any."""
    if not timer.cancelled() and (exc := timer.exception()) is not None:
        raise exc
