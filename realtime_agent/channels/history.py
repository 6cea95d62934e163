"""The resume window: pure, no I/O."""

from __future__ import annotations

from collections import deque
from itertools import islice

from .base import Event


class History:
    """A session's recent events, kept for resume.

    Holds at least the last ``min_events`` events and every event of the last
    ``min_seconds``, and never more than ``max_events`` (the memory bound).
    """

    __slots__ = ("_events", "_max", "_min_events", "_min_seconds")

    def __init__(self, min_events: int, min_seconds: float, max_events: int) -> None:
        self._events: deque[Event] = deque()
        self._min_events = min_events
        self._min_seconds = min_seconds
        self._max = max(max_events, min_events)

    def __len__(self) -> int:
        return len(self._events)

    def append(self, event: Event) -> None:
        events = self._events
        events.append(event)
        if len(events) > self._max:
            events.popleft()
        horizon = event.at - self._min_seconds
        while len(events) > self._min_events and events[0].at < horizon:
            events.popleft()

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
