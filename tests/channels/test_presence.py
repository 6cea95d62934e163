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
    latest goes out. Then the flow is idle again: a count after a quiet interval goes
    out at once."""
    a, b = Recorder(), Recorder()
    flow = PresenceFlow([a, b], INTERVAL)
    try:
        flow.offer(count(1))
        for n in range(2, 40):
            flow.offer(count(n))
        assert a.viewers() == b.viewers() == [1]  # nothing more until the interval ends

        await a.until(lambda: len(a.viewers()) == 2)
        assert a.viewers() == b.viewers() == [1, 39]

        # The interval that sending 39 started passes with nothing offered: idle again.
        await asyncio.sleep(INTERVAL * 3)  # the property is about time passing
        assert a.viewers() == [1, 39]  # nothing was waiting: nothing sent
        flow.offer(count(38))
        assert a.viewers() == [1, 39, 38]
    finally:
        flow.close()


async def test_a_socket_that_joined_meanwhile_hears_only_a_count_it_lacks() -> None:
    """A socket that joined during the interval (its hello gave the count) is not told
    that count again at the interval's end; one whose count changed after it is."""
    old, early, late = Recorder(), Recorder(), Recorder()
    subs = [old]
    flow = PresenceFlow(subs, INTERVAL)
    try:
        flow.offer(count(1))
        subs.append(early)
        flow.offer(count(2), skip=early)  # early's hello said 2; a later join changes it
        subs.append(late)
        flow.offer(count(3), skip=late)  # late's hello said 3, still the count at the end
        await old.until(lambda: len(old.viewers()) == 2)
        assert old.viewers() == [1, 3]
        assert early.viewers() == [3]
        assert late.viewers() == []
    finally:
        flow.close()


async def test_the_socket_whose_join_started_the_interval_keeps_its_count() -> None:
    """A join told at once to the others starts the interval; if the count is back
    to that join's by the interval's end, its socket is not told it again."""
    old, joined, passing = Recorder(), Recorder(), Recorder()
    subs = [old, joined]
    flow = PresenceFlow(subs, INTERVAL)
    try:
        flow.offer(count(2), skip=joined)  # sent at once to `old`: the interval starts
        subs.append(passing)
        flow.offer(count(3), skip=passing)
        subs.remove(passing)
        flow.offer(count(2))  # back to the count `joined` learned from its hello
        await old.until(lambda: len(old.viewers()) == 2)
        assert old.viewers() == [2, 2]  # a repeat is possible for the others
        assert joined.viewers() == []
    finally:
        flow.close()


async def test_a_count_nobody_was_told_starts_no_interval() -> None:
    """When the only socket is the one that learned the count from hello (or none is
    left), nothing is sent and nothing is spaced out: the next count goes at once."""
    first, second = Recorder(), Recorder()
    subs = [first]
    flow = PresenceFlow(subs, INTERVAL)
    try:
        flow.offer(count(1), skip=first)  # the session's first socket
        subs.append(second)
        flow.offer(count(2), skip=second)
        assert first.viewers() == [2]  # at once: no interval was running
        assert second.viewers() == []
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
