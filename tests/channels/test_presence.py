"""PresenceFlow: a lone count goes out at once, counts within an interval are merged."""

from __future__ import annotations

import asyncio

import orjson

from realtime_agent.channels.base import Event
from realtime_agent.channels.presence import PresenceFlow
from tests.channels.conftest import Recorder

INTERVAL = 0.05


def count(n: int) -> Event:
    return Event(0, "presence", orjson.dumps({"type": "presence", "viewers": n}).decode())


async def test_a_lone_count_goes_out_at_once_to_all_but_the_socket_that_knows_it() -> None:
    """The first count is delivered before offer() returns; ``skip`` does not get it."""
    a, b, joining = Recorder(), Recorder(), Recorder()
    flow = PresenceFlow([a, b, joining], INTERVAL)
    try:
        flow.offer(count(3), skip=joining)
        assert a.viewers() == b.viewers() == [3]
        assert joining.viewers() == []
    finally:
        flow.close()


async def test_counts_within_the_interval_are_merged_into_the_latest() -> None:
    """Counts offered while an interval runs are not sent then; at its end only the
    latest goes out (to every socket: ``skip`` only applies to a count sent at once).
    Then the flow is idle again: a count after a quiet interval goes out at once."""
    a, joining = Recorder(), Recorder()
    flow = PresenceFlow([a, joining], INTERVAL)
    try:
        flow.offer(count(1))
        for n in range(2, 40):
            flow.offer(count(n), skip=joining)
        assert a.viewers() == [1]  # nothing more until the interval ends

        await a.until(lambda: len(a.viewers()) == 2)
        assert a.viewers() == [1, 39]
        assert joining.viewers() == [1, 39]

        # The interval that sending 39 started passes with nothing offered: idle again.
        await asyncio.sleep(INTERVAL * 3)  # the property is about time passing
        assert a.viewers() == [1, 39]  # nothing was waiting: nothing sent
        flow.offer(count(38))
        assert a.viewers() == [1, 39, 38]
    finally:
        flow.close()


async def test_close_drops_what_waits_and_stops_for_good() -> None:
    """After close() nothing waiting is sent, and nothing offered later either."""
    a = Recorder()
    flow = PresenceFlow([a], INTERVAL)
    flow.offer(count(1))
    flow.offer(count(2))  # waits for the interval's end
    flow.close()
    await asyncio.sleep(INTERVAL * 3)  # the property is about time passing
    assert a.viewers() == [1]
    flow.offer(count(5))
    assert a.viewers() == [1]
    flow.close()  # twice is harmless
