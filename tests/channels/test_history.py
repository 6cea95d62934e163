"""The resume window: what a reconnecting client can be replayed, all or nothing."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from realtime_agent.channels.base import Event
from realtime_agent.channels.history import History
from realtime_agent.wsframe import text_frame

# See tests/test_conversation.py: a failing hypothesis test must not crash the run.
pytestmark = pytest.mark.filterwarnings(
    "ignore:mypy_extensions.TypedDict is deprecated:DeprecationWarning"
)
PROPERTY: dict[str, Any] = {"database": None, "suppress_health_check": [HealthCheck.too_slow]}


def event(seq: int, at: float) -> Event:
    """The ``seq``-th event of a session, emitted at time ``at``."""
    return Event(seq=seq, type="delta", text=f'{{"type":"delta","seq":{seq}}}', at=at)


def filled(history: History, times: list[float]) -> list[Event]:
    """Append one event per time in ``times`` (seq 1, 2, ...); return them all."""
    events = [event(seq, at) for seq, at in enumerate(times, start=1)]
    for e in events:
        history.append(e)
    return events


def test_keeps_at_least_min_events() -> None:
    """Old events beyond the time window are dropped, but never below ``min_events``."""
    history = History(min_events=3, min_seconds=10, max_events=100, max_bytes=1 << 30)
    events = filled(history, [100.0 * i for i in range(10)])
    assert len(history) == 3
    assert history.since(7, 10) == events[7:]
    assert history.since(6, 10) is None


def test_keeps_everything_newer_than_min_seconds() -> None:
    """Every event of the last ``min_seconds`` is kept, beyond ``min_events``."""
    history = History(min_events=2, min_seconds=5, max_events=100, max_bytes=1 << 30)
    events = filled(history, [float(i) for i in range(1, 21)])
    # The last event is at 20: everything at 15 or later is within 5 seconds.
    assert len(history) == 6
    assert history.since(14, 20) == events[14:]
    assert history.since(13, 20) is None


def test_time_window_moves_with_each_event() -> None:
    """An event leaves the window once a later one is more than ``min_seconds`` ahead."""
    history = History(min_events=1, min_seconds=5, max_events=100, max_bytes=1 << 30)
    events = filled(history, [0.0, 1.0, 2.0])
    assert history.since(0, 3) == events
    events.append(event(4, 6.0))  # exactly 5 seconds after the event at 1.0: it stays
    history.append(events[-1])
    assert history.since(1, 4) == events[1:]
    assert history.since(0, 4) is None
    events.append(event(5, 6.5))
    history.append(events[-1])
    assert history.since(2, 5) == events[2:]
    assert history.since(1, 5) is None


def test_never_more_than_max_events() -> None:
    """``max_events`` caps the window even when every event is recent."""
    history = History(min_events=2, min_seconds=1000, max_events=5, max_bytes=1 << 30)
    events = filled(history, [0.0] * 12)
    assert len(history) == 5
    assert history.since(7, 12) == events[7:]
    assert history.since(6, 12) is None


def test_since_returns_exactly_the_missed_events() -> None:
    """``since(after, last_seq)`` is every event with ``seq > after``, in order."""
    history = History(min_events=10, min_seconds=60, max_events=100, max_bytes=1 << 30)
    events = filled(history, [float(i) for i in range(8)])
    for after in range(9):
        assert history.since(after, 8) == events[after:]


def test_since_last_seq_is_empty() -> None:
    """A client that has seen everything gets an empty replay, even from an empty history."""
    history = History(min_events=2, min_seconds=1, max_events=4, max_bytes=1 << 30)
    assert history.since(0, 0) == []
    assert history.since(5, 5) == []
    filled(history, [100.0 * i for i in range(10)])
    assert history.since(10, 10) == []


def test_since_after_beyond_last_seq_is_none() -> None:
    """A client claiming more than the server has sent gets no replay."""
    history = History(min_events=10, min_seconds=60, max_events=100, max_bytes=1 << 30)
    filled(history, [0.0, 1.0, 2.0])
    assert history.since(4, 3) is None
    assert history.since(100, 3) is None


def test_since_negative_after_is_none() -> None:
    """A negative ``after`` is no position in the stream."""
    history = History(min_events=10, min_seconds=60, max_events=100, max_bytes=1 << 30)
    filled(history, [0.0, 1.0])
    assert history.since(-1, 2) is None


def test_empty_history_with_events_sent_is_none() -> None:
    """With the events lost (say, after a restart) a resuming client gets no replay."""
    history = History(min_events=10, min_seconds=60, max_events=100, max_bytes=1 << 30)
    assert history.since(0, 1) is None
    assert history.since(3, 7) is None


def test_history_behind_last_seq_is_none() -> None:
    """When the history lacks the newest events the caller knows of, nothing is replayed."""
    history = History(min_events=10, min_seconds=60, max_events=100, max_bytes=1 << 30)
    filled(history, [0.0, 1.0, 2.0])
    assert history.since(1, 5) is None


@settings(max_examples=300, **PROPERTY)
@given(
    min_events=st.integers(min_value=0, max_value=10),
    extra=st.integers(min_value=0, max_value=10),
    min_seconds=st.floats(min_value=0, max_value=50, allow_nan=False),
    gaps=st.lists(st.floats(min_value=0, max_value=20, allow_nan=False), max_size=60),
)
def test_window_property(
    min_events: int, extra: int, min_seconds: float, gaps: list[float]
) -> None:
    """The window keeps its guarantees, and ``since`` is all or nothing, for any stream."""
    max_events = max(1, min_events + extra)
    history = History(
        min_events=min_events, min_seconds=min_seconds, max_events=max_events, max_bytes=1 << 30
    )
    times: list[float] = []
    for gap in gaps:
        times.append((times[-1] if times else 0.0) + gap)
    events = filled(history, times)
    n = len(events)
    kept = len(history)
    recent = sum(1 for t in times if t >= times[-1] - min_seconds) if times else 0
    assert kept <= max_events
    assert kept >= min(n, max_events, max(min_events, recent))
    for after in range(n + 2):
        replay = history.since(after, n)
        if after > n:
            assert replay is None
        elif after >= n - kept:
            assert replay == events[after:]
        else:
            assert replay is None


@settings(max_examples=300, **PROPERTY)
@given(
    sizes=st.lists(st.integers(min_value=0, max_value=300), min_size=1, max_size=60),
    max_bytes=st.integers(min_value=1, max_value=2000),
)
def test_byte_bound_property(sizes: list[int], max_bytes: int) -> None:
    """However large the events, the history holds at most ``max_bytes`` (or just the
    newest event), always a contiguous tail, and counts its size exactly: each event's
    text (as CPython stores it) and its websocket frame."""
    history = History(min_events=1000, min_seconds=1e9, max_events=1000, max_bytes=max_bytes)
    events = [Event(seq, "delta", "x" * size, 0.0) for seq, size in enumerate(sizes, start=1)]
    for e in events:
        history.append(e)
    kept = history.since(len(events) - len(history), len(events))
    assert kept == events[len(events) - len(history) :]
    held = [sys.getsizeof(e.text) + len(text_frame(e.text)) for e in events]
    assert history.size == sum(held[len(events) - len(history) :])
    assert history.size <= max_bytes or len(history) == 1
    if len(history) < len(events):  # one more (older) event would not have fitted
        assert history.size + held[-len(history) - 1] > max_bytes
