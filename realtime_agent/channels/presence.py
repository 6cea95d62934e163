"""A session's viewer count to this process's sockets: a change at once, a crowd's merged.

Every join and leave changes a session's count, and the count goes to every
socket of the session, so a crowd of N sockets joining one session would cost
about N²/2 frames: 2,000 viewers joining one session took 16 ms of server CPU
per connect and 26 s in all (``python -m bench.sockets --levels 1000,2000
--per-session 2000 --impl ours``). :class:`PresenceFlow` passes a count on at
once when none went out in the last :data:`PRESENCE_INTERVAL`; counts that come
within it are merged, and the latest goes out when it ends. A lone join or
leave is told at once; a crowd of any size costs each socket at most one
``presence`` frame per interval, and its last frame holds the final count.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection

from .base import Event, Subscriber

#: Seconds after a ``presence`` frame during which later counts are merged.
PRESENCE_INTERVAL = 0.25


class PresenceFlow:
    """The ``presence`` frames of one session on this process (its sockets: ``subs``)."""

    __slots__ = ("_closed", "_informed", "_interval", "_latest", "_subs", "_timer")

    def __init__(self, subs: Collection[Subscriber], interval: float = PRESENCE_INTERVAL) -> None:
        self._subs = subs
        self._interval = interval
        self._latest: Event | None = None  # arrived during the interval, not yet sent
        self._timer: asyncio.TimerHandle | None = None  # the interval running
        # Sockets that learned a count from their hello since the last frame: that count.
        self._informed: dict[Subscriber, str] = {}
        self._closed = False

    def offer(self, event: Event, skip: Subscriber | None = None) -> None:
        """Send ``event`` (a count) now, or at the end of the running interval.

        ``skip``: a socket that just learned this count (from ``hello``): it is
        not told this count again, now or at the interval's end.
        """
        if self._closed:
            return
        if self._timer is None:
            self._send(event, skip)
            return
        self._latest = event  # an earlier one waiting is out of date: replaced
        if skip is not None:
            self._informed[skip] = event.text

    def close(self) -> None:
        """Stop for good: nothing waiting is sent, nothing offered later either (the
        session's channel here is forgotten; a socket joining it later gets a new one)."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._latest = None
        self._informed.clear()

    def _send(self, event: Event, skip: Subscriber | None) -> None:
        informed, self._informed = self._informed, {}
        subs = [s for s in self._subs if s is not skip and informed.get(s) != event.text]
        for sub in subs:
            sub.deliver(event)
        if subs:  # nobody told, nothing to space out: the next count goes at once too
            self._timer = asyncio.get_running_loop().call_later(self._interval, self._end)
            if skip is not None:  # it knows this count until a later one reaches it
                self._informed[skip] = event.text

    def _end(self) -> None:
        # Without a merged count waiting the flow is idle again: the next goes out at once.
        self._timer = None
        latest, self._latest = self._latest, None
        if latest is not None:
            self._send(latest, None)
