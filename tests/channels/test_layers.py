"""The channel layer contract, run on every backend: seq, resume, presence, fan-out, leases.

Tests taking ``layer`` or ``make_layer`` run on memory and on Redis with the
same body; tests taking ``redis_layers`` cover what only several processes on
one Redis can show (cross-process delivery, lost counters, lost connections).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from realtime_agent import channels
from realtime_agent.channels.base import ChannelLayer, Event
from realtime_agent.channels.redis import RedisChannels
from realtime_agent.errors import Unavailable
from realtime_agent.protocol import CloseCode
from tests.channels.conftest import (
    WAIT,
    Layers,
    Recorder,
    RedisLayers,
    SeqBook,
    Signals,
    running,
)
from tests.helpers import poll


def delta(n: int) -> dict[str, Any]:
    """A fresh session frame (layers add ``session_id``, ``seq`` and ``ts`` to it)."""
    return {"type": "delta", "message_id": "msg-1", "text": f"chunk {n}"}


def parsed(events: list[Event]) -> list[dict[str, Any]]:
    return [orjson.loads(e.text) for e in events]


async def emit_many(layer: ChannelLayer, session_id: str, count: int) -> list[Event]:
    return [await layer.emit(session_id, delta(n)) for n in range(count)]


# --- seq and fan-out ----------------------------------------------------------


async def test_emit_numbers_events_from_one_per_session(layer: ChannelLayer, seqs: SeqBook) -> None:
    """The first events of a session get seq 1, 2, 3, independently of other sessions."""
    one, two = seqs.session(), seqs.session()
    events = [
        await layer.emit(one, delta(1)),
        await layer.emit(two, delta(1)),
        await layer.emit(one, delta(2)),
        await layer.emit(one, delta(3)),
        await layer.emit(two, delta(2)),
    ]
    assert [(e.seq, orjson.loads(e.text)["session_id"]) for e in events] == [
        (1, one),
        (1, two),
        (2, one),
        (3, one),
        (2, two),
    ]


async def test_emitted_frame_carries_session_seq_and_time(
    layer: ChannelLayer, seqs: SeqBook
) -> None:
    """The event's text is the frame with ``session_id``, ``seq`` and an RFC 3339 ``ts``."""
    session_id = seqs.session()
    await layer.join(session_id, Recorder(), None)
    event = await layer.emit(session_id, delta(7))
    frame = orjson.loads(event.text)
    assert event.type == "delta"
    assert frame.pop("ts").endswith("Z")
    assert frame == {**delta(7), "session_id": session_id, "seq": event.seq}


async def test_subscribers_receive_every_event_of_their_session_in_order(
    layer: ChannelLayer, seqs: SeqBook
) -> None:
    """Each subscriber gets all of its session's events in seq order, and none of another's."""
    one, two = seqs.session(), seqs.session()
    first, second, other = Recorder(), Recorder(), Recorder()
    await layer.join(one, first, None)
    await layer.join(one, second, None)
    await layer.join(two, other, None)
    sent: dict[str, list[Event]] = {one: [], two: []}
    for n in range(4):
        for session_id in (one, two, one):
            sent[session_id].append(await layer.emit(session_id, delta(n)))

    assert [e.seq for e in sent[one]] == list(range(1, 9))
    assert [e.seq for e in sent[two]] == list(range(1, 5))
    assert await first.until_events(8) == parsed(sent[one])
    assert await second.until_events(8) == parsed(sent[one])
    assert await other.until_events(4) == parsed(sent[two])
    assert [e.seq for e in first.events()] == [e.seq for e in sent[one]]


# --- join and resume ----------------------------------------------------------


async def test_join_without_after_gets_no_replay(layer: ChannelLayer, seqs: SeqBook) -> None:
    """Joining without ``after`` answers the current seq and no replay (a snapshot follows)."""
    session_id = seqs.session()
    events = await emit_many(layer, session_id, 3)
    joined = await layer.join(session_id, Recorder(), None)
    assert joined.replay is None
    assert joined.last_seq == events[-1].seq


async def test_join_at_last_seq_replays_nothing(layer: ChannelLayer, seqs: SeqBook) -> None:
    """A client that missed nothing gets an empty replay."""
    session_id = seqs.session()
    events = await emit_many(layer, session_id, 3)
    joined = await layer.join(session_id, Recorder(), events[-1].seq)
    assert joined.replay == []
    assert joined.last_seq == events[-1].seq


async def test_join_after_replays_exactly_the_missed_events(
    layer: ChannelLayer, seqs: SeqBook
) -> None:
    """A client resuming inside the window gets every missed event, in order, then live ones."""
    session_id = seqs.session()
    events = await emit_many(layer, session_id, 6)
    sub = Recorder()
    joined = await layer.join(session_id, sub, events[1].seq)
    assert joined.replay is not None
    assert parsed(joined.replay) == parsed(events[2:])
    assert [e.seq for e in joined.replay] == [e.seq for e in events[2:]]
    live = await layer.emit(session_id, delta(99))
    assert live.seq == joined.last_seq + 1
    await sub.until_seq(live.seq)
    assert sub.events()[-1].text == live.text


async def test_join_outside_the_window_gets_no_partial_replay(
    make_layer: Layers, seqs: SeqBook
) -> None:
    """Resuming from before the window or beyond ``last_seq`` gives ``None``, never a part."""
    layer = await make_layer(min_events=3, max_events=5, min_seconds=0.001)
    session_id = seqs.session()
    events = await emit_many(layer, session_id, 10)
    last = events[-1].seq

    inside = await layer.join(session_id, Recorder(), last - 3)
    assert inside.replay is not None
    assert parsed(inside.replay) == parsed(events[-3:])
    for after in (last - 6, 0, last + 1, last + 50):
        joined = await layer.join(session_id, Recorder(), after)
        assert joined.replay is None, after
        assert joined.last_seq == last


# --- presence, leave, close -------------------------------------------------


async def test_presence_tells_the_other_subscribers_the_count(
    layer: ChannelLayer, seqs: SeqBook
) -> None:
    """Joins and leaves send seq-0 presence frames with the new count; ``viewers`` counts self."""
    session_id = seqs.session()
    first, second, third = Recorder(), Recorder(), Recorder()

    assert (await layer.join(session_id, first, None)).viewers == 1
    assert (await layer.join(session_id, second, None)).viewers == 2
    await first.until(lambda: first.viewers()[-1:] == [2])
    assert (await layer.join(session_id, third, None)).viewers == 3
    await first.until(lambda: first.viewers()[-1:] == [3])
    await second.until(lambda: second.viewers()[-1:] == [3])

    await layer.leave(session_id, second)
    await first.until(lambda: first.viewers()[-1:] == [2])
    await third.until(lambda: third.viewers()[-1:] == [2])
    presence = [e for e in first.delivered if not e.seq]
    assert all(e.type == "presence" for e in presence)
    assert orjson.loads(presence[-1].text) == {"type": "presence", "viewers": 2}
    assert second.viewers()[-1] == 3  # the one that left is not told


async def test_a_crowd_joining_gets_merged_presence_ending_on_the_final_count(
    layer: ChannelLayer, seqs: SeqBook
) -> None:
    """Forty sockets joining one session one after the other do not send forty
    counts to each socket (a crowd would cost N² frames): counts within one
    presence interval are merged (tests/channels/test_presence.py times that),
    and the last frame holds the final count. Sending every count gives the
    first socket 40 frames (41 on Redis, which also tells it its own join)."""
    session_id = seqs.session()
    watcher = Recorder()
    await layer.join(session_id, watcher, None)
    for _ in range(40):
        await layer.join(session_id, Recorder(), None)

    await watcher.until(lambda: watcher.viewers()[-1:] == [41])
    assert len(watcher.viewers()) < 40


async def test_leave_is_idempotent_and_final(layer: ChannelLayer, seqs: SeqBook) -> None:
    """Leaving twice is harmless, counts once, and a left subscriber receives nothing more."""
    session_id = seqs.session()
    staying, leaving, stranger = Recorder(), Recorder(), Recorder()
    await layer.join(session_id, staying, None)
    await layer.join(session_id, leaving, None)
    await layer.leave(session_id, leaving)
    await layer.leave(session_id, leaving)
    await layer.leave(session_id, stranger)  # never joined
    await layer.leave(seqs.session(), stranger)  # a session nobody joined
    got_before = list(leaving.delivered)

    events = await emit_many(layer, session_id, 3)
    assert await staying.until_events(3) == parsed(events)
    assert leaving.delivered == got_before
    assert (await layer.join(session_id, Recorder(), None)).viewers == 2


async def test_close_session_closes_only_that_sessions_subscribers(
    layer: ChannelLayer, seqs: SeqBook
) -> None:
    """``close_session`` calls ``close(4404, reason)`` on each socket of the session only."""
    doomed, other = seqs.session(), seqs.session()
    first, second, bystander = Recorder(), Recorder(), Recorder()
    await layer.join(doomed, first, None)
    await layer.join(doomed, second, None)
    await layer.join(other, bystander, None)

    await layer.close_session(doomed, CloseCode.SESSION_DELETED, "session deleted")
    assert await first.until_closed() == (4404, "session deleted")
    assert await second.until_closed() == (4404, "session deleted")
    # An event sent after the close reaches the bystander after the close would have.
    event = await layer.emit(other, delta(1))
    assert await bystander.until_events(1) == parsed([event])
    assert bystander.closes == []
    # On Redis the closing process closes its own sockets at once and again when
    # the pub/sub copy arrives (a socket's close is idempotent): one code only.
    assert set(first.closes) == set(second.closes) == {(4404, "session deleted")}


# --- the session lock ---------------------------------------------------------


async def test_lock_admits_one_holder_at_a_time(layer: ChannelLayer, seqs: SeqBook) -> None:
    """A second task taking the session's lock waits until the holder has left it."""
    session_id = seqs.session()
    order: list[str] = []
    held, trying, release = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def holder() -> None:
        async with layer.lock(session_id):
            order.append("holder in")
            held.set()
            await release.wait()
            order.append("holder out")

    async def contender() -> None:
        await held.wait()
        trying.set()
        async with layer.lock(session_id):
            order.append("contender in")
        order.append("contender out")

    async with asyncio.timeout(WAIT), asyncio.TaskGroup() as tasks:
        tasks.create_task(holder())
        tasks.create_task(contender())
        await trying.wait()
        await layer.run_active(session_id)  # a round trip to the backend while the lock is held
        assert order == ["holder in"]
        release.set()
    assert order == ["holder in", "holder out", "contender in", "contender out"]


async def test_lock_never_lets_concurrent_tasks_overlap(layer: ChannelLayer, seqs: SeqBook) -> None:
    """Many tasks awaiting inside the lock still enter and leave it strictly one by one."""
    session_id = seqs.session()
    order: list[str] = []

    async def critical(n: int) -> None:
        async with layer.lock(session_id):
            order.append(f"in {n}")
            await layer.run_active(session_id)  # awaits the backend inside the lock
            order.append(f"out {n}")

    async with asyncio.timeout(WAIT), asyncio.TaskGroup() as tasks:
        for n in range(8):
            tasks.create_task(critical(n))
    assert len(order) == 16
    for enter, leave in zip(order[::2], order[1::2], strict=True):
        assert enter.startswith("in ") and leave == "out " + enter.removeprefix("in "), order


async def test_locks_of_different_sessions_are_independent(
    layer: ChannelLayer, seqs: SeqBook
) -> None:
    """Holding one session's lock does not delay taking another session's."""
    busy, free = seqs.session(), seqs.session()
    held, release = asyncio.Event(), asyncio.Event()
    order: list[str] = []

    async def holder() -> None:
        async with layer.lock(busy):
            held.set()
            await release.wait()
            order.append("busy released")

    async with asyncio.timeout(WAIT), asyncio.TaskGroup() as tasks:
        tasks.create_task(holder())
        await held.wait()
        async with layer.lock(free):
            order.append("free taken")
        release.set()
    assert order == ["free taken", "busy released"]


async def test_lock_taken_during_cancellation_is_released(
    layer: ChannelLayer, seqs: SeqBook
) -> None:
    """A lock taken in the cleanup of a cancelled task runs its block and is released."""
    session_id = seqs.session()
    waiting, cleaned = asyncio.Event(), asyncio.Event()

    async def worker() -> None:
        try:
            waiting.set()
            await asyncio.Event().wait()
        finally:  # cleanup under the session lock, while the task is being cancelled
            async with layer.lock(session_id):
                cleaned.set()

    task = asyncio.create_task(worker())
    await waiting.wait()
    task.cancel()
    await asyncio.wait([task])
    assert task.cancelled()
    assert cleaned.is_set()
    async with asyncio.timeout(WAIT), layer.lock(session_id):
        pass  # nobody holds it any more


# --- the run lease ----------------------------------------------------------


async def test_run_lease_has_one_holder(layer: ChannelLayer, seqs: SeqBook) -> None:
    """Only one acquire succeeds until release; ``run_active`` follows; release is idempotent."""
    session_id, other = seqs.session(), seqs.session()
    assert not await layer.run_active(session_id)
    assert await layer.acquire_run(session_id)
    assert await layer.run_active(session_id)
    assert not await layer.acquire_run(session_id)
    assert not await layer.run_active(other)
    assert await layer.acquire_run(other)

    await layer.release_run(session_id)
    assert not await layer.run_active(session_id)
    await layer.release_run(session_id)
    assert await layer.acquire_run(session_id)
    assert await layer.run_active(other)
    await layer.release_run(session_id)
    await layer.release_run(other)
    assert not await layer.run_active(session_id)
    assert not await layer.run_active(other)


# --- control signals ----------------------------------------------------------


async def test_watch_receives_signals_only_while_entered(
    layer: ChannelLayer, seqs: SeqBook
) -> None:
    """A watcher gets every signal of its session while entered, and none after exit."""
    session_id, other = seqs.session(), seqs.session()
    watcher, outer = Signals(), Signals()
    async with layer.watch(session_id, outer):
        async with layer.watch(session_id, watcher):
            await layer.signal(session_id, "interrupt")
            await layer.signal(other, "elsewhere")
            await layer.signal(session_id, "stop")
            assert await watcher.until(2) == ["interrupt", "stop"]
        await layer.signal(session_id, "late")
        # ``outer`` gets "late" after the exited watcher would have.
        assert await outer.until(3) == ["interrupt", "stop", "late"]
    assert watcher.kinds == ["interrupt", "stop"]


# --- restarts -----------------------------------------------------------------


async def test_seq_continues_after_a_restart(make_layer: Layers, seqs: SeqBook) -> None:
    """A new layer on the same store continues past every seq the old one used."""
    session_id = seqs.session()
    before = await make_layer()
    used = await emit_many(before, session_id, 5)
    after = await make_layer()
    following = await emit_many(after, session_id, 2)
    assert following[0].seq > used[-1].seq
    assert following[1].seq == following[0].seq + 1
    assert following[-1].seq <= seqs.reserved[session_id]  # every seq was reserved first


# --- lifecycle ----------------------------------------------------------------


async def test_join_right_after_a_fresh_layer_emitted(make_layer: Layers, seqs: SeqBook) -> None:
    """A join on a layer that has just started and emitted is answered and gets live events."""
    session_id = seqs.session()
    async with running(make_layer.build()) as fresh:
        await fresh.emit(session_id, delta(1))
        sub = Recorder()
        async with asyncio.timeout(WAIT):
            joined = await fresh.join(session_id, sub, None)
        event = await fresh.emit(session_id, delta(2))
        assert event.seq == joined.last_seq + 1
        assert await sub.until_events(1) == parsed([event])


async def test_layer_stops_when_exited_right_after_entering(make_layer: Layers) -> None:
    """A layer exited as soon as it was entered stops its tasks and returns."""
    for _ in range(5):
        async with running(make_layer.build()):
            pass


# --- Redis: several processes on one Redis -----------------------------------


async def test_run_lease_is_shared_by_processes(redis_layers: RedisLayers, seqs: SeqBook) -> None:
    """Another process cannot take a held run lease, and can once it is released."""
    first, second = await redis_layers(), await redis_layers()
    session_id = seqs.session()
    assert await first.acquire_run(session_id)
    assert not await second.acquire_run(session_id)
    assert await second.run_active(session_id)
    await second.release_run(session_id)  # not its lease: changes nothing
    assert await first.run_active(session_id)

    await first.release_run(session_id)
    assert not await second.run_active(session_id)
    assert await second.acquire_run(session_id)
    assert not await first.acquire_run(session_id)
    await second.release_run(session_id)


async def test_run_lease_is_renewed_by_its_holder(redis_layers: RedisLayers, seqs: SeqBook) -> None:
    """A lease held longer than ``lease_seconds`` stays held: its holder keeps renewing it."""
    first, second = await redis_layers(), await redis_layers()
    session_id = seqs.session()
    assert await first.acquire_run(session_id)
    # Hold for twice the 1 s lease. The timer only decides how long the run lasts;
    # nothing is asserted about time.
    held_long = asyncio.Event()
    asyncio.get_running_loop().call_later(2.0, held_long.set)
    await held_long.wait()
    assert await second.run_active(session_id)
    assert not await second.acquire_run(session_id)
    await first.release_run(session_id)
    assert await second.acquire_run(session_id)
    await second.release_run(session_id)


async def test_run_lease_of_a_vanished_process_expires(
    redis_layers: RedisLayers, seqs: SeqBook
) -> None:
    """A lease whose process stopped without releasing it expires, then another can take it."""
    session_id = seqs.session()
    async with running(redis_layers.build()) as gone:
        assert await gone.acquire_run(session_id)
    # The process is gone without release_run: the lease outlives it until its TTL.
    assert await redis_layers.raw.pttl(redis_layers.key("lease", session_id)) > 0
    second = await redis_layers()
    # Waiting for Redis to expire the 1 s lease is waiting for an external TTL, so
    # this one wait polls; asyncio.timeout bounds it.
    async with asyncio.timeout(WAIT):
        while not await second.acquire_run(session_id):  # noqa: ASYNC110 (nothing to await)
            await asyncio.sleep(0.05)
    assert await second.run_active(session_id)
    await second.release_run(session_id)


async def test_exit_stops_every_lease_renewal(redis_layers: RedisLayers, seqs: SeqBook) -> None:
    """A layer exited while it renews run leases stops all its tasks and returns."""
    lease = 0.3  # renewed every lease / 3
    for _ in range(10):
        async with running(redis_layers.build(lease_seconds=lease)) as layer:
            for _ in range(20):
                assert await layer.acquire_run(seqs.session())
            # Exit just after the first renewals are due, while they talk to Redis:
            # the timer only picks the moment; nothing is asserted about time.
            renewing = asyncio.Event()
            asyncio.get_running_loop().call_later(lease / 3 + 0.01, renewing.set)
            await renewing.wait()


async def test_signal_reaches_a_watcher_on_another_process(
    redis_layers: RedisLayers, seqs: SeqBook
) -> None:
    """A control signal sent by one process is handled by the session's watcher on another."""
    watching, sending = await redis_layers(), await redis_layers()
    session_id = seqs.session()
    handler = Signals()
    async with watching.watch(session_id, handler):
        await sending.signal(session_id, "interrupt")
        assert await handler.until(1) == ["interrupt"]


async def test_events_reach_subscribers_on_other_processes(
    redis_layers: RedisLayers, seqs: SeqBook
) -> None:
    """A subscriber on B gets A's events in order with the same seq; B replays from history."""
    a, b = await redis_layers(), await redis_layers()
    session_id = seqs.session()
    on_a, on_b = Recorder(), Recorder()
    assert (await a.join(session_id, on_a, None)).viewers == 1
    assert (await b.join(session_id, on_b, None)).viewers == 2
    await on_a.until(lambda: on_a.viewers()[-1:] == [2])

    events = await emit_many(a, session_id, 5)
    assert await on_b.until_events(5) == parsed(events)
    assert [e.seq for e in on_b.events()] == [e.seq for e in events]
    assert await on_a.until_events(5) == parsed(events)

    joined = await b.join(session_id, Recorder(), events[1].seq)
    assert joined.last_seq == events[-1].seq
    assert joined.replay is not None
    assert parsed(joined.replay) == parsed(events[2:])


async def _until(done: Callable[[], bool]) -> None:
    """Wait for a state the layer reaches on its probe's schedule (no event tells it)."""

    async def check() -> bool:
        return done()

    await poll(check, every=0.02, limit=WAIT)


async def _published(redis_layers: RedisLayers, act: Any) -> list[tuple[str, str]]:
    """Every message published to any inbox of the test's processes while ``act()``
    runs: (channel, text). Redis delivers one subscriber's messages in publish
    order, so those before a marker published afterwards are all of them."""
    inboxes, marker = f"{redis_layers.prefix}inbox:", secrets.token_hex(4)
    pubsub = redis_layers.raw.pubsub()
    await pubsub.psubscribe(f"{inboxes}*")
    try:
        async with asyncio.timeout(WAIT):  # subscribed before anything happens
            while (await pubsub.get_message(timeout=WAIT) or {}).get("type") != "psubscribe":
                pass
        await act()
        await redis_layers.raw.publish(f"{inboxes}{marker}", marker)
        seen: list[tuple[str, str]] = []
        async with asyncio.timeout(WAIT):
            async for message in pubsub.listen():
                if message["type"] != "pmessage":
                    continue
                if message["data"] == marker.encode():
                    return seen
                seen.append((message["channel"].decode(), message["data"].decode()))
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
    raise AssertionError("unreachable")


async def _fields(redis_layers: RedisLayers, kind: str, session_id: str) -> list[str]:
    """The fields of the session's hash ``kind`` (route: inboxes; presence: processes)."""
    fields = await redis_layers.raw.hkeys(redis_layers.key(kind, session_id))
    return [f.decode() if isinstance(f, bytes) else f for f in fields]


async def _routed(redis_layers: RedisLayers, session_id: str) -> list[str]:
    """The inboxes the session is routed to."""
    return await _fields(redis_layers, "route", session_id)


async def test_events_go_only_to_the_other_processes_routed_to_the_session(
    redis_layers: RedisLayers, seqs: SeqBook
) -> None:
    """The emitting process hands an event to its own sockets without reading it back
    from Redis; it is published once per other process that has the session, and
    to none once that process's last socket left."""
    a, b = await redis_layers(), await redis_layers()
    session_id = seqs.session()
    on_a, on_b = Recorder(), Recorder()
    await a.join(session_id, on_a, None)

    alone = await _published(redis_layers, lambda: emit_many(a, session_id, 3))
    assert alone == []
    await on_a.until_events(3)

    await b.join(session_id, on_b, None)
    shared = await _published(redis_layers, lambda: a.emit(session_id, delta(4)))
    assert [text.endswith(f'"seq":{4}}}') for _, text in shared] == [True]
    assert (await on_b.until_events(1))[0]["text"] == "chunk 4"
    assert [e.seq for e in on_a.events()] == [1, 2, 3, 4]

    await b.leave(session_id, on_b)
    left = await _published(redis_layers, lambda: a.emit(session_id, delta(5)))
    assert [text for _, text in left if '"seq"' in text] == []
    await on_a.until_seq(5)


async def test_a_session_id_of_any_characters_is_routed_intact(
    redis_layers: RedisLayers, seqs: SeqBook
) -> None:
    """A message names its session by length, so an id with separators or
    non-ASCII characters reaches the right sockets, events, presence and controls."""
    a, b = await redis_layers(), await redis_layers()
    odd, plain = f"{seqs.session()}:7|x:é✓", seqs.session()
    seqs.reserved[odd] = 0  # the book knows it, as the store knows any session it created
    on_odd, on_plain, watcher = Recorder(), Recorder(), Signals()
    await b.join(odd, on_odd, None)
    await b.join(plain, on_plain, None)
    async with b.watch(odd, watcher):
        await a.join(odd, Recorder(), None)
        await on_odd.until(lambda: on_odd.viewers()[-1:] == [2])
        events = await emit_many(a, odd, 2)
        assert await on_odd.until_events(2) == parsed(events)
        await a.signal(odd, "interrupt")
        assert await watcher.until(1) == ["interrupt"]
    assert (on_plain.events(), on_plain.viewers()) == ([], [1])  # its own join only


async def test_a_reconnected_subscriber_leaves_no_route_to_its_old_inbox(
    redis_layers: RedisLayers, seqs: SeqBook
) -> None:
    """After its pub/sub connection is replaced, a process is routed to its new inbox
    only: nothing is published to the dead one."""
    layer, other = await redis_layers(named=True), await redis_layers()
    session_id = seqs.session()
    old = Recorder()
    joined = await layer.join(session_id, old, None)
    (before,) = await _routed(redis_layers, session_id)
    assert await redis_layers.kill_subscriber(layer) == 1
    await old.until_closed()

    fresh = Recorder()
    await layer.join(session_id, fresh, joined.last_seq)
    await layer.leave(session_id, old)
    (after,) = await _routed(redis_layers, session_id)
    assert after != before
    sent = await _published(redis_layers, lambda: other.emit(session_id, delta(1)))
    assert [channel for channel, _ in sent] == [f"{redis_layers.prefix}inbox:{after}"]
    await fresh.until_events(1)


async def test_a_killed_process_is_no_longer_routed_after_the_next_join(
    redis_layers: RedisLayers, seqs: SeqBook
) -> None:
    """A process that died with sockets on a session leaves its route behind; once
    its alive key has expired, the next process to take the session drops it."""
    session_id = seqs.session()
    async with running(redis_layers.build()) as gone:
        await gone.join(session_id, Recorder(), None)
        (dead,) = await _routed(redis_layers, session_id)
    # Killed: it never left. Its alive key expires (a probe interval or five).
    await redis_layers.raw.delete(redis_layers.key("alive", dead.partition(".")[0]))

    b = await redis_layers()
    await b.join(session_id, Recorder(), None)
    (live,) = await _routed(redis_layers, session_id)
    assert live != dead


async def test_a_process_whose_alive_key_vanished_routes_its_sessions_again(
    redis_layers: RedisLayers, seqs: SeqBook
) -> None:
    """Others drop the routes of a process whose alive key is gone; the process finds
    it gone at its next probe, closes its sockets with 1001 (they resume) and routes
    its sessions to a fresh inbox, so it never stays deaf."""
    a, b = await redis_layers(), await redis_layers()
    session_id = seqs.session()
    old = Recorder()
    joined = await a.join(session_id, old, None)
    (inbox,) = await _routed(redis_layers, session_id)
    await redis_layers.raw.delete(redis_layers.key("alive", inbox.partition(".")[0]))  # evicted
    await b.join(session_id, Recorder(), None)

    code, _ = await old.until_closed()
    assert code == CloseCode.GOING_AWAY
    fresh = Recorder()
    await a.join(session_id, fresh, joined.last_seq)
    await a.leave(session_id, old)
    event = await b.emit(session_id, delta(1))
    assert await fresh.until_events(1) == parsed([event])


async def test_a_subscriber_that_hears_no_probe_resubscribes(
    redis_layers: RedisLayers, seqs: SeqBook, caplog: pytest.LogCaptureFixture
) -> None:
    """The connection stays up but the probes stop coming (Redis holds every publish
    for a while): after three probe intervals the process counts itself deaf,
    closes its sockets with 1001 (they resume) and subscribes a fresh inbox, which
    serves once Redis takes writes again."""
    layer = await redis_layers(probe_seconds=0.2)
    session_id = seqs.session()
    old = Recorder()
    joined = await layer.join(session_id, old, None)
    raw = redis_layers.raw
    try:
        await raw.client_pause(10_000, all=False)  # publishes wait, the connection stays
        code, reason = await old.until_closed()
    finally:
        await raw.client_unpause()
    assert (code, reason) == (CloseCode.GOING_AWAY, "event stream interrupted; resume with after")
    assert any("no probe received for" in r.getMessage() for r in caplog.records)
    await layer.leave(session_id, old)
    fresh = Recorder()
    await layer.join(session_id, fresh, joined.last_seq)
    event = await layer.emit(session_id, delta(1))
    assert await fresh.until_events(1) == parsed([event])


async def test_a_process_of_an_earlier_release_makes_the_layer_unready(
    redis_layers: RedisLayers,
) -> None:
    """A process of the release before inboxes subscribes only its probe and session
    channels: while one serves on the same Redis, the layer reports the mix (a
    rolling deployment stops), and it is ready again once that process is gone."""
    layer = await redis_layers()
    older = redis_layers.raw.pubsub()
    await older.subscribe(redis_layers.key("probe", "0123456789ab"), redis_layers.key("ch", "s"))
    try:
        await _until(lambda: layer.problem is not None)  # the next probe's census
        assert layer.problem is not None
        assert "earlier release" in layer.problem and "0123456789ab" in layer.problem
    finally:
        await older.aclose()  # type: ignore[no-untyped-call]
    await _until(lambda: layer.problem is None)


async def test_joins_waiting_on_a_failed_route_fail_at_once_and_the_next_routes_again(
    redis_layers: RedisLayers, seqs: SeqBook
) -> None:
    """Two sockets join a session at once and routing it fails (here the store
    refuses to seed its counter): both get the error at once, not after the join
    timeout, and a later join routes it."""
    layer = await redis_layers()
    session_id = f"sess-{secrets.token_hex(8)}"  # the store does not know it yet
    joins = [layer.join(session_id, Recorder(), None) for _ in range(2)]
    async with asyncio.timeout(WAIT):  # the join's own timeout is 10 s
        results = await asyncio.gather(*joins, return_exceptions=True)
    assert [type(r) for r in results] == [KeyError, KeyError]
    assert await _routed(redis_layers, session_id) == []  # the failed route was undone

    seqs.reserved[session_id] = 0
    sub = Recorder()
    await layer.join(session_id, sub, None)
    event = await layer.emit(session_id, delta(1))
    assert await sub.until_events(1) == parsed([event])


async def test_a_join_while_the_layer_closes_fails_at_once_and_leaves_no_task(
    redis_layers: RedisLayers, seqs: SeqBook
) -> None:
    """A socket that joins as the process shuts down gets Unavailable at once, not
    the join's 10 s timeout, and no routing task outlives the layer."""
    layer = redis_layers.build()
    async with running(layer):
        pass
    with pytest.raises(Unavailable, match="shutting down"):
        async with asyncio.timeout(WAIT):
            await layer.join(seqs.session(), Recorder(), None)
    assert not layer._tasks


async def test_a_drained_connection_pool_does_not_make_the_process_deaf(
    redis_layers: RedisLayers, seqs: SeqBook
) -> None:
    """Every connection of the layer's pool is taken (here by blocking reads; in
    production a burst of reroutes or emits): the subscriber, its probe and the alive
    key have connections of their own, so probes are still heard, nothing resets and
    the session's socket stays open. A message's lock and emit run on lanes of
    their own too: they do not wait for the pool."""
    layer = await redis_layers(pool_size=4)
    session_id, sub = seqs.session(), Recorder()
    await layer.join(session_id, sub, None)
    inbox = layer._inbox
    key = redis_layers.key("drain", session_id)

    async def take_a_connection() -> None:
        await layer._redis.blpop([key], 0)  # holds its connection until a push

    blocked = [asyncio.create_task(take_a_connection()) for _ in range(4)]
    try:

        async def all_blocked() -> bool:
            clients = await redis_layers.raw.client_list()
            return sum(c.get("cmd") == "blpop" for c in clients) >= 4

        await poll(all_blocked, every=0.05, limit=WAIT)
        for _ in range(4):  # past the 3 silent probe intervals that would mean deaf
            heard = layer._probe_seen
            await _until(lambda: layer._probe_seen > heard)  # noqa: B023 (awaited at once)
        assert layer._inbox == inbox
        assert sub.closes == []
        async with asyncio.timeout(WAIT), layer.lock(session_id):
            first = await layer.emit(session_id, delta(1))
        assert await sub.until_events(1) == parsed([first])
        await redis_layers.raw.rpush(key, *range(4))
        async with asyncio.timeout(WAIT):
            await asyncio.gather(*blocked)
    finally:
        for task in blocked:
            task.cancel()
    event = await layer.emit(session_id, delta(2))
    assert await sub.until_events(2) == parsed([first, event])
    assert layer.problem is None


async def test_the_subscriber_survives_a_session_it_cannot_route_again(
    redis_layers: RedisLayers, seqs: SeqBook
) -> None:
    """After a reconnect, a session whose lost counter the store cannot seed any more
    (it was deleted) is logged and skipped; the process goes on serving the others."""
    layer = await redis_layers(named=True)
    gone, kept = seqs.session(), seqs.session()
    on_gone, on_kept = Recorder(), Recorder()
    await layer.join(gone, on_gone, None)
    joined = await layer.join(kept, on_kept, None)
    await redis_layers.raw.delete(redis_layers.key("seq", gone))  # Redis lost it ...
    del seqs.reserved[gone]  # ... and the store deleted the session
    assert await redis_layers.kill_subscriber(layer) == 1
    await on_kept.until_closed()

    fresh = Recorder()
    await layer.join(kept, fresh, joined.last_seq)
    event = await layer.emit(kept, delta(1))
    assert await fresh.until_events(1) == parsed([event])
    await _until(lambda: layer.problem is None)  # the next probe comes back


async def _emitting_beside_another(
    redis_layers: RedisLayers, seqs: SeqBook
) -> tuple[RedisChannels, str, Recorder, Recorder]:
    """Process A and process B with a socket each on a new session: (A, the
    session, A's socket, B's socket)."""
    a, b = await redis_layers(), await redis_layers()
    session_id = seqs.session()
    on_a, on_b = Recorder(), Recorder()
    await a.join(session_id, on_a, None)
    await b.join(session_id, on_b, None)
    return a, session_id, on_a, on_b


async def test_an_emit_interrupted_as_it_completes_reaches_this_processs_sockets(
    redis_layers: RedisLayers, seqs: SeqBook, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An emit whose task is cancelled as Redis answers (redis-py may let the cancel
    land then, CPython gh-86296) raises the cancel, and the event, which the other
    processes got, still reaches this process's sockets."""
    a, session_id, on_a, on_b = await _emitting_beside_another(redis_layers, seqs)
    script = a._emit

    async def cancelled_as_it_answers(*call: Any) -> Any:
        seq = await script(*call)
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        return seq

    monkeypatch.setattr(a, "_emit", cancelled_as_it_answers)
    emitting = asyncio.create_task(a.emit(session_id, delta(1)))
    await asyncio.wait([emitting])
    assert emitting.cancelled()
    (frame,) = await on_b.until_events(1)
    assert await on_a.until_events(1) == [frame]


async def test_an_emit_whose_answer_is_lost_reaches_this_processs_sockets(
    redis_layers: RedisLayers, seqs: SeqBook, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An emit whose answer never comes back (the connection dropped after Redis
    ran it) fails, and this process's sockets read the event from the history."""
    a, session_id, on_a, on_b = await _emitting_beside_another(redis_layers, seqs)
    script = a._emit

    async def answer_lost(keys: Any, args: Any, settle: Any) -> Any:
        await script(keys, args, lambda reply: reply)  # Redis ran it; the reply is lost
        raise RedisConnectionError("connection lost before the answer")

    monkeypatch.setattr(a, "_emit", answer_lost)
    with pytest.raises(Unavailable):
        await a.emit(session_id, delta(1))
    (frame,) = await on_b.until_events(1)
    assert await on_a.until_events(1) == [frame]


async def _sessions_followed_elsewhere(
    redis_layers: RedisLayers, seqs: SeqBook, a: RedisChannels, count: int
) -> dict[str, Recorder]:
    """``count`` sessions, each with a socket on another process, each emitted to
    once by ``a`` (one at a time); the other process's socket of each session."""
    b = await redis_layers()
    followers = {seqs.session(): Recorder() for _ in range(count)}
    for session_id, follower in followers.items():
        await b.join(session_id, follower, None)
        await a.emit(session_id, delta(1))
        await follower.until_events(1)
    return followers


def _pipelines(monkeypatch: pytest.MonkeyPatch, layer: RedisChannels) -> list[int]:
    """The size of every pipeline of emits ``layer`` sends from now on."""
    sizes: list[int] = []
    send = layer._emit._pipeline

    async def recorded(calls: list[Any]) -> list[Any]:
        sizes.append(len(calls))
        return await send(calls)

    monkeypatch.setattr(layer._emit, "_pipeline", recorded)
    return sizes


async def test_emits_of_many_sessions_at_once_share_one_connection(
    redis_layers: RedisLayers, seqs: SeqBook, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Emits that come while the layer's lanes (4) are busy wait and go to Redis as
    one pipeline: a burst of 20 takes the 4 lanes' connections and one more, not
    one each, and every event is numbered and delivered as if sent alone."""
    a = await redis_layers(named=True)
    followers = await _sessions_followed_elsewhere(redis_layers, seqs, a, 20)
    pipelines = _pipelines(monkeypatch, a)

    async def emitting_connections() -> set[str]:
        clients = await redis_layers.raw.client_list()
        return {
            c["id"]
            for c in clients
            if c.get("name") == redis_layers.names[a] and c.get("cmd") == "evalsha"
        }

    before = await emitting_connections()
    events = await asyncio.gather(*(a.emit(s, delta(2)) for s in followers))
    assert [e.seq for e in events] == [2] * len(followers)
    assert pipelines == [16]
    assert len(await emitting_connections() - before) <= 5
    for session_id, follower in followers.items():
        frames = await follower.until_events(2)
        assert [(f["session_id"], f["seq"], f["text"]) for f in frames] == [
            (session_id, 1, "chunk 1"),
            (session_id, 2, "chunk 2"),
        ]


async def test_a_call_failing_in_a_batch_fails_alone(
    redis_layers: RedisLayers, seqs: SeqBook, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One emit of a pipeline that Redis refuses (its history key holds a string)
    raises Unavailable; the others of the same turn are numbered and delivered."""
    a = await redis_layers()
    followers = await _sessions_followed_elsewhere(redis_layers, seqs, a, 8)
    broken = list(followers)[6]  # queued behind the 4 lanes: in the pipeline
    await redis_layers.raw.set(redis_layers.key("hist", broken), "not a list")
    pipelines = _pipelines(monkeypatch, a)
    outcomes = await asyncio.gather(
        *(a.emit(s, delta(2)) for s in followers), return_exceptions=True
    )
    assert pipelines == [4]
    for session_id, outcome in zip(followers, outcomes, strict=True):
        if session_id == broken:
            assert isinstance(outcome, Unavailable)
            assert "WRONGTYPE" in str(outcome)
        else:
            assert isinstance(outcome, Event) and outcome.seq == 2
            assert [f["seq"] for f in await followers[session_id].until_events(2)] == [1, 2]


async def test_a_burst_of_emits_loads_the_script_again_after_redis_lost_it(
    redis_layers: RedisLayers, seqs: SeqBook
) -> None:
    """After Redis lost its scripts (a restart, SCRIPT FLUSH) a burst of emits, sent
    alone and in a pipeline, loads the script again and every emit goes out once."""
    a = await redis_layers()
    followers = await _sessions_followed_elsewhere(redis_layers, seqs, a, 8)
    await redis_layers.raw.script_flush()
    events = await asyncio.gather(*(a.emit(s, delta(2)) for s in followers))
    assert [e.seq for e in events] == [2] * len(followers)
    for follower in followers.values():
        assert [f["seq"] for f in await follower.until_events(2)] == [1, 2]
    for session_id in followers:
        assert await redis_layers.raw.get(redis_layers.key("seq", session_id)) == b"2"


async def test_an_emit_cancelled_while_queued_is_not_sent(
    redis_layers: RedisLayers, seqs: SeqBook
) -> None:
    """An emit whose task is cancelled while its call waits behind the busy lanes (an
    interrupt) is not sent: the next event of its session gets its seq."""
    a = await redis_layers()
    followers = await _sessions_followed_elsewhere(redis_layers, seqs, a, 5)
    *busy, (session_id, follower) = followers.items()
    lanes = [asyncio.create_task(a.emit(s, delta(2))) for s, _ in busy]
    emitting = asyncio.create_task(a.emit(session_id, delta(2)))
    await asyncio.sleep(0)  # a turn: 4 emits in flight, this one queued behind them
    emitting.cancel()
    await asyncio.wait([emitting, *lanes])
    assert emitting.cancelled()
    assert [task.result().seq for task in lanes] == [2, 2, 2, 2]
    assert (await a.emit(session_id, delta(3))).seq == 2
    frames = await follower.until_events(2)
    assert [(f["seq"], f["text"]) for f in frames] == [(1, "chunk 1"), (2, "chunk 3")]


async def test_emits_queued_as_the_layer_exits_end_and_a_later_one_fails(
    redis_layers: RedisLayers, seqs: SeqBook
) -> None:
    """Emits queued behind busy lanes as the layer exits are not left waiting: each
    ends, numbered or with Unavailable; an emit after the exit fails at once."""
    a = redis_layers.build()
    await a.__aenter__()
    sessions = [seqs.session() for _ in range(8)]
    for session_id in sessions:
        await a.emit(session_id, delta(1))
    emitting = [asyncio.create_task(a.emit(s, delta(2))) for s in sessions]
    await asyncio.sleep(0)  # a turn: 4 are in flight, 4 queued behind them
    await a.__aexit__(None, None, None)
    async with asyncio.timeout(WAIT):
        outcomes = await asyncio.gather(*emitting, return_exceptions=True)
    for outcome in outcomes:
        assert isinstance(outcome, Event) or (
            isinstance(outcome, Unavailable) and "shutting down" in str(outcome)
        ), outcome
    with pytest.raises(Unavailable, match="shutting down"):
        await a.emit(sessions[0], delta(3))


async def test_a_bad_inbox_message_is_skipped_and_the_rest_still_served(
    redis_layers: RedisLayers, seqs: SeqBook
) -> None:
    """A message the process cannot read (garbage on its inbox) is logged and
    skipped: its sockets stay open and keep getting events."""
    a, b = await redis_layers(), await redis_layers()
    session_id = seqs.session()
    sub = Recorder()
    await b.join(session_id, sub, None)
    (inbox,) = await _routed(redis_layers, session_id)
    await redis_layers.raw.publish(f"{redis_layers.prefix}inbox:{inbox}", "not a message")
    await redis_layers.raw.publish(f"{redis_layers.prefix}inbox:{inbox}", f"2:xx{2**70}|x")
    event = await a.emit(session_id, delta(1))
    assert await sub.until_events(1) == parsed([event])
    assert sub.closes == []


async def test_a_late_route_to_an_earlier_inbox_is_refused(redis_layers: RedisLayers) -> None:
    """route.lua: a +1 for an inbox of a process that already routes a later one
    (it came late, e.g. a retried call) is refused, and the later inbox stays."""
    raw, session_id = redis_layers.raw, f"sess-{secrets.token_hex(8)}"
    route = redis_layers.key("route", session_id)
    script = raw.register_script((Path(channels.__file__).parent / "route.lua").read_text())
    keys, alive = [route, redis_layers.key("seq", session_id)], redis_layers.key("alive", "")
    await raw.set(f"{alive}p", 1, ex=60)
    assert await script(keys=keys, args=["p.2", 1, "p", alive]) == -1  # no counter yet
    assert await script(keys=keys, args=["p.1", 1, "p", alive]) == -2
    assert await _routed(redis_layers, session_id) == ["p.2"]
    assert await script(keys=keys, args=["p.3", 1, "p", alive]) == -1  # a later one wins
    assert await _routed(redis_layers, session_id) == ["p.3"]


async def test_presence_counts_a_process_again_after_it_seemed_gone(
    redis_layers: RedisLayers, seqs: SeqBook
) -> None:
    """A live process whose liveness mark lapsed for a moment is fully counted once it is back."""
    a = await redis_layers(probe_seconds=5.0)  # its liveness mark is renewed only by the test here
    b = await redis_layers()
    session_id = seqs.session()
    await a.join(session_id, Recorder(), None)
    assert (await a.join(session_id, Recorder(), None)).viewers == 2
    (process,) = await _fields(redis_layers, "presence", session_id)  # A's process id
    alive = redis_layers.key("alive", process)

    # A stalls past its liveness TTL while B's socket joins, then renews it (as its probe does).
    assert await redis_layers.raw.delete(alive) == 1
    assert (await b.join(session_id, Recorder(), None)).viewers == 1
    await redis_layers.raw.set(alive, 1, ex=60)

    # A's two sockets never left: with a third one, A has 3 and B has 1.
    assert (await a.join(session_id, Recorder(), None)).viewers == 4


async def test_seq_survives_a_lost_counter(redis_layers: RedisLayers, seqs: SeqBook) -> None:
    """When Redis loses the counter and history, seq jumps past every used number, never back."""
    layer = await redis_layers()
    session_id = seqs.session()
    await layer.join(session_id, Recorder(), None)
    used = await emit_many(layer, session_id, 5)
    deleted = await redis_layers.raw.delete(
        redis_layers.key("seq", session_id), redis_layers.key("hist", session_id)
    )
    assert deleted == 2

    following = await emit_many(layer, session_id, 2)
    assert following[0].seq > max(e.seq for e in used)
    assert following[1].seq == following[0].seq + 1
    assert following[-1].seq <= seqs.reserved[session_id]  # every seq was reserved first
    joined = await layer.join(session_id, Recorder(), used[-1].seq)
    assert joined.replay is None
    assert joined.last_seq == following[-1].seq


async def _lose_next_publish(redis_layers: RedisLayers, session_id: str, n: int) -> str:
    """Number and store the session's next event as emit.lua would, but do not publish it."""
    raw = redis_layers.raw
    seq = await raw.incr(redis_layers.key("seq", session_id))
    seconds, micros = await raw.time()
    frame = {**delta(n), "session_id": session_id, "ts": "2026-01-01T00:00:00Z", "seq": seq}
    text = orjson.dumps(frame).decode()
    await raw.rpush(
        redis_layers.key("hist", session_id), f"{seconds * 1000 + micros // 1000}|{text}"
    )
    return text


async def test_a_missed_message_is_filled_from_history(
    redis_layers: RedisLayers, seqs: SeqBook
) -> None:
    """When a published event never reaches B, B's subscriber gets it from history, in order."""
    a, b = await redis_layers(), await redis_layers()
    session_id = seqs.session()
    sub = Recorder()
    await b.join(session_id, sub, None)
    first = await emit_many(a, session_id, 3)
    await sub.until_events(3)

    lost = await _lose_next_publish(redis_layers, session_id, 3)
    following = await a.emit(session_id, delta(4))
    frames = await sub.until_events(5)
    assert [f["seq"] for f in frames] == [e.seq for e in first] + [
        first[-1].seq + 1,
        following.seq,
    ]
    assert frames[3] == orjson.loads(lost)
    assert frames[4] == orjson.loads(following.text)
    assert sub.closes == []


async def test_events_that_wait_on_a_fill_go_out_in_seq_order(
    redis_layers: RedisLayers, seqs: SeqBook
) -> None:
    """Events that come while a gap is filled from history wait, and go out after
    it in seq order, none skipped, whatever order they came in. (A process's own
    emits can come before events of other processes still on their way to it;
    here two events published out of order above the history stand for that,
    deterministically.)"""
    a = await redis_layers()
    session_id = seqs.session()
    sub = Recorder()
    await a.join(session_id, sub, None)
    await emit_many(a, session_id, 3)
    await sub.until_events(3)
    kept = [await _lose_next_publish(redis_layers, session_id, n) for n in (4, 5, 6)]

    # 8 then 7 reach the inbox together: 8 opens the gap, 7 waits behind it; the
    # history read by the fill ends at 6.
    (inbox,) = await _routed(redis_layers, session_id)
    channel = f"{redis_layers.prefix}inbox:{inbox}"
    late = {}
    async with redis_layers.raw.pipeline(transaction=True) as both:
        for seq in (8, 7):
            late[seq] = orjson.dumps({**delta(seq), "session_id": session_id, "seq": seq})
            head = RedisChannels._addressed(session_id)
            both.publish(channel, f"{head}{seq}|{late[seq].decode()}")
        await both.execute()

    frames = await sub.until_events(8)
    assert [f["seq"] for f in frames] == list(range(1, 9))
    assert frames[3:6] == [orjson.loads(text) for text in kept]
    assert frames[6:] == [orjson.loads(late[7]), orjson.loads(late[8])]


async def test_a_gap_history_cannot_fill_closes_the_subscribers(
    redis_layers: RedisLayers, seqs: SeqBook
) -> None:
    """When a missed event is gone from history too, B's sockets close with 1001 to resume."""
    a, b = await redis_layers(), await redis_layers()
    session_id = seqs.session()
    sub = Recorder()
    await b.join(session_id, sub, None)
    await emit_many(a, session_id, 3)
    await sub.until_events(3)

    await _lose_next_publish(redis_layers, session_id, 3)
    await redis_layers.raw.delete(redis_layers.key("hist", session_id))
    await a.emit(session_id, delta(4))
    code, _ = await sub.until_closed()
    assert code == CloseCode.GOING_AWAY
    assert len(sub.events()) == 3  # no event after the gap was delivered


async def test_subscriber_connection_loss_closes_sockets_and_recovers(
    redis_layers: RedisLayers, seqs: SeqBook
) -> None:
    """A killed pub/sub connection closes local sockets with 1001; the layer then reconnects."""
    layer = await redis_layers(named=True)
    session_id = seqs.session()
    old = Recorder()
    joined = await layer.join(session_id, old, None)
    assert await redis_layers.kill_subscriber(layer) == 1
    code, _ = await old.until_closed()
    assert code == CloseCode.GOING_AWAY
    assert layer.problem is not None  # readiness shows the loss

    # The socket reconnects (join waits for the resubscription), then its old handler leaves.
    fresh = Recorder()
    rejoined = await layer.join(session_id, fresh, joined.last_seq)
    await layer.leave(session_id, old)
    assert rejoined.replay == []
    event = await layer.emit(session_id, delta(1))
    assert await fresh.until_events(1) == parsed([event])

    # ``problem`` clears when the next probe comes back: wait through delivery round trips.
    async with asyncio.timeout(WAIT):
        while layer.problem is not None:
            event = await layer.emit(session_id, {"type": "delta", "text": secrets.token_hex(2)})
            await fresh.until_seq(event.seq)
    assert fresh.closes == []


async def test_two_processes_emitting_at_once_deliver_every_seq_once_in_order(
    redis_layers: RedisLayers, seqs: SeqBook
) -> None:
    """A process hands its own events to its sockets without waiting for pub/sub;
    with another process emitting into the same session at the same time, each
    socket still gets every seq exactly once, in order."""
    a, b = await redis_layers(), await redis_layers()
    session_id = seqs.session()
    on_a, on_b = Recorder(), Recorder()
    await a.join(session_id, on_a, None)
    await b.join(session_id, on_b, None)
    await on_a.until(lambda: on_a.viewers()[-1:] == [2])

    async def emit_from(layer: ChannelLayer, name: str) -> list[Event]:
        return [
            await layer.emit(session_id, {"type": "delta", "text": f"{name}{i}"}) for i in range(60)
        ]

    from_a, from_b = await asyncio.gather(emit_from(a, "a"), emit_from(b, "b"))
    last = max(e.seq for e in from_a + from_b)
    first = min(e.seq for e in from_a + from_b)
    for sub in (on_a, on_b):
        await sub.until_seq(last)
        assert [e.seq for e in sub.events()] == list(range(first, last + 1))
    assert on_a.frames() == on_b.frames()


async def test_a_session_close_is_not_overtaken_by_a_later_event(
    redis_layers: RedisLayers, seqs: SeqBook
) -> None:
    """close_session takes effect on the calling process at once: an event emitted
    right after it (delivered locally without pub/sub) does not overtake it."""
    a = await redis_layers()
    session_id = seqs.session()
    seen: list[str] = []

    class Ordered(Recorder):
        def deliver(self, event: Event) -> None:
            seen.append(orjson.loads(event.text).get("text", "?"))
            super().deliver(event)

        def close(self, code: int, reason: str) -> None:
            seen.append(f"close {code}")
            super().close(code, reason)

    sub = Ordered()
    await a.join(session_id, sub, None)
    await a.emit(session_id, {"type": "delta", "text": "before"})
    await sub.until_events(1)
    await a.close_session(session_id, 4404, "session deleted")
    await a.emit(session_id, {"type": "delta", "text": "after"})
    await sub.until(lambda: len(sub.closes) >= 2)  # and the pub/sub copy of the close
    order = [s for s in seen if s != "?"]  # presence frames aside
    assert order[:2] == ["before", "close 4404"]
    assert "after" in order


async def test_the_lock_tells_whether_a_run_holds_the_lease(
    layer: ChannelLayer, seqs: SeqBook
) -> None:
    """Taking the lock answers "is a run in progress" (in the same round trip on Redis)."""
    session_id = seqs.session()
    async with layer.lock(session_id) as running:
        assert running is False
    assert await layer.acquire_run(session_id)
    async with layer.lock(session_id) as running:
        assert running is True
    await layer.release_run(session_id)
    async with layer.lock(session_id) as running:
        assert running is False


async def _evalsha_calls(raw: Any) -> int:
    stats = await raw.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


async def test_a_crowd_wanting_one_sessions_lock_waits_in_line(
    redis_layers: RedisLayers, seqs: SeqBook
) -> None:
    """Many tasks of one process wanting the same session's lock (a crowd of sockets
    joining) get it first come first served, each with one attempt on Redis, instead
    of all polling Redis and the unlucky ones waiting until the lock times out."""
    layer = await redis_layers()
    session_id = seqs.session()
    order: list[int] = []

    async def take(i: int) -> None:
        async with layer.lock(session_id):
            order.append(i)
            await asyncio.sleep(0.002)  # held as long as a join reading its snapshot

    before = await _evalsha_calls(redis_layers.raw)
    await asyncio.gather(*(take(i) for i in range(100)))
    calls = await _evalsha_calls(redis_layers.raw) - before
    assert order == list(range(100))
    assert calls <= 2 * 100 + 10, f"{calls} lock and unlock calls for 100 holders"


async def test_leaving_the_lock_does_not_wait_for_redis_to_take_it_back(
    redis_layers: RedisLayers, seqs: SeqBook
) -> None:
    """The holder goes on as soon as it leaves the block (a turn it queued starts a
    round trip sooner); giving the lock back to Redis runs behind it, and the next
    holder in this process waits until Redis has it back. Shown with Redis refusing
    writes for a while: the holder is out while the lock is still taken."""
    layer = await redis_layers()
    session_id = seqs.session()
    raw = redis_layers.raw
    key = redis_layers.key("lock", session_id)
    try:
        async with layer.lock(session_id):
            await raw.client_pause(10_000, all=False)  # writes wait, reads go on
        assert await raw.exists(key) == 1, "the holder waited for Redis to take the lock back"
        second = asyncio.create_task(_hold(layer, session_id))
    finally:
        await raw.client_unpause()
    await asyncio.wait_for(second, WAIT)
    await layer.__aexit__(None, None, None)  # gives back the locks on their way
    assert await raw.exists(key) == 0


async def test_a_lock_left_while_the_layer_closes_is_given_back_by_its_holder(
    redis_layers: RedisLayers, seqs: SeqBook
) -> None:
    """A holder that leaves the lock after the layer began to close (a store write
    finishing during shutdown) gives the lock back itself before it goes on: no task
    of the closing layer would own that round trip any more."""
    layer = await redis_layers()
    session_id = seqs.session()
    key = redis_layers.key("lock", session_id)
    inside, leave = asyncio.Event(), asyncio.Event()

    async def holder() -> int:
        async with layer.lock(session_id):
            inside.set()
            await leave.wait()
        return int(await redis_layers.raw.exists(key))

    task = asyncio.create_task(holder())
    await asyncio.wait_for(inside.wait(), WAIT)
    await layer.__aexit__(None, None, None)
    leave.set()
    assert await asyncio.wait_for(task, WAIT) == 0, "the lock was still taken after its holder left"


async def _hold(layer: ChannelLayer, session_id: str) -> None:
    async with layer.lock(session_id):
        pass
