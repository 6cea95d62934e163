"""The resume window: pure, no I/O."""

from __future__ import annotations

import sys
from collections import deque
from itertools import islice

from .base import Event


def _held(event: Event) -> int:
    """The memory an event keeps: its text (as CPython stores it) and its frame."""
    return sys.getsizeof(event.text) + len(event.frame)


class History:
    """A session's recent events, kept for resume.

    Holds at least the last ``min_events`` events and every event of the last
    ``min_seconds``, and never more than ``max_events`` events or ``max_bytes``
    (the memory bounds; the newest event is always kept). An event counts what
    it holds: its text and its websocket frame.
    """

    __slots__ = ("_bytes", "_events", "_max", "_max_bytes", "_min_events", "_min_seconds")

    def __init__(
        self, min_events: int, min_seconds: float, max_events: int, max_bytes: int
    ) -> None:
        self._events: deque[Event] = deque()
        self._bytes = 0  # bytes held: see size
        self._min_events = min_events
        self._min_seconds = min_seconds
        self._max = max(max_events, min_events)
        self._max_bytes = max_bytes

    def __len__(self) -> int:
        return len(self._events)

    @property
    def size(self) -> int:
        """Bytes held: each event's text (as CPython stores it) and its websocket
        frame (built here if no socket needed it yet)."""
        return self._bytes

    def append(self, event: Event) -> None:
        events = self._events
        events.append(event)
        self._bytes += _held(event)
        while len(events) > 1 and (len(events) > self._max or self._bytes > self._max_bytes):
            self._bytes -= _held(events.popleft())
        horizon = event.at - self._min_seconds
        while len(events) > self._min_events and events[0].at < horizon:
            self._bytes -= _held(events.popleft())

    def since(self, after: int, last_seq: int) -> list[Event] | None:
        """Every event with ``seq > after`` up to ``last_seq``, or ``None`` if any is gone."""
        if after == last_seq:
            return []
        if after > last_seq or after < 0:
            return None
        events = self._events
        if not events or events[0].seq > after + 1 or events[-1].seq != last_seq:
            return None
        start = len(events) - (last_seq - after)
        return list(islice(events, start, None))
