"""Lanes on a real Redis: a script's reply on a connection of its own, whatever
happened to the call before (a lost script, a cancel, a timeout, a connection
Redis closed), and a drained pool that does not hold the calls up."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
from redis.asyncio import BlockingConnectionPool, Redis
from redis.commands.core import AsyncScript

from realtime_agent.channels.lanes import Lanes
from tests.helpers import poll
from tests.redis_util import REDIS_URL, hold_the_only_connection, redis_client

# Numbers each call: the reply says which call it answers, and the count how often
# the script ran.
COUNT = "return {redis.call('INCR', KEYS[1]), ARGV[1]}"
NAME = f"test-lanes-{secrets.token_hex(4)}"  # the clients' connections, in CLIENT LIST


@dataclass
class Setup:
    raw: Redis  # the test's own client: CLIENT LIST, PAUSE, KILL
    client: Redis  # the lanes' client, its connections named NAME
    lanes: Lanes
    script: AsyncScript
    key: str

    async def run(self, tag: str) -> list[int | bytes]:
        reply: list[int | bytes] = await asyncio.wait_for(
            self.lanes.run(self.script, [self.key], [tag]), 5
        )
        return reply

    async def named(self, count: int, flag: str = "") -> None:
        """Until Redis has ``count`` connections named NAME (with ``flag``: "b", blocked)."""

        async def reached() -> bool:
            clients = await self.raw.client_list()
            return sum(c.get("name") == NAME and flag in c.get("flags", "") for c in clients) == (
                count
            )

        await poll(reached, every=0.01, limit=5)


Make = Callable[..., Awaitable[Setup]]


@pytest.fixture
async def make() -> AsyncIterator[Make]:
    """``await make(size, **pool_settings)``: lanes on a client of their own; at the
    end Redis takes writes again and everything is closed and deleted."""
    raw = await redis_client()
    key = f"test-lanes:{secrets.token_hex(6)}"
    made: list[Setup] = []

    async def build(size: int, **settings: object) -> Setup:
        pool = BlockingConnectionPool.from_url(REDIS_URL, client_name=NAME, **settings)
        client = Redis.from_pool(pool)
        setup = Setup(raw, client, Lanes(client, size), client.register_script(COUNT), key)
        made.append(setup)
        return setup

    try:
        yield build
    finally:
        await raw.client_unpause()
        for setup in made:
            await setup.lanes.aclose()
            await setup.client.aclose()
        await raw.delete(key, f"{key}:hold")
        await raw.aclose()


async def test_a_call_runs_its_script_once_and_answers_it(make: Make) -> None:
    s = await make(2)
    assert [await s.run(n) for n in "abc"] == [[1, b"a"], [2, b"b"], [3, b"c"]]


async def test_a_script_redis_lost_is_loaded_and_run_once(make: Make) -> None:
    """After SCRIPT FLUSH (a restarted Redis) the call answers NOSCRIPT, which means
    it did not run; it runs through the pool's script, which loads it, once."""
    s = await make(1)
    assert await s.run("a") == [1, b"a"]
    await s.client.script_flush()
    assert await s.run("b") == [2, b"b"]
    assert await s.run("c") == [3, b"c"]


async def test_after_a_cancelled_call_the_next_one_gets_its_own_reply(make: Make) -> None:
    """A call cancelled while Redis holds its reply back leaves no reply behind on
    its lane: the next call on that lane reads its own, not the stale one."""
    s = await make(1)
    await s.run("warm")  # the lane exists and knows the script
    await s.raw.client_pause(10_000, all=False)  # scripts wait; the connection stays up
    cancelled = asyncio.create_task(s.run("cancelled"))
    await s.named(1, "b")
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    await s.raw.client_unpause()
    assert (await s.run("next"))[1] == b"next"


async def test_a_call_redis_does_not_answer_times_out_and_the_lane_serves_again(
    make: Make,
) -> None:
    """The pool's socket timeout bounds a call on a lane too; the lane then connects
    again and the next call gets its own reply."""
    s = await make(1, socket_timeout=0.3)
    await s.run("warm")
    await s.raw.client_pause(10_000, all=False)
    with pytest.raises(TimeoutError):
        await s.run("late")
    await s.raw.client_unpause()
    assert (await s.run("next"))[1] == b"next"


async def test_without_a_timeout_in_the_url_a_lane_has_redis_pys_default(make: Make) -> None:
    """The pool's connections time out after redis-py's default when the URL sets
    none; a lane's call does too (a lane's own connection has no socket timeout)."""
    s = await make(1)
    pool = s.client.connection_pool
    like = pool.connection_class(**pool.connection_kwargs)
    assert like.socket_timeout is not None
    assert s.lanes._timeout == like.socket_timeout


async def test_a_lane_redis_closed_while_idle_connects_again_before_sending(make: Make) -> None:
    """Redis closed the idle lane's connection (a restart, its idle timeout, a proxy):
    the next call connects again before it sends, and answers, instead of failing."""
    s = await make(1)
    await s.run("a")
    await s.named(1)
    (lane,) = [c for c in await s.raw.client_list() if c.get("name") == NAME]
    await s.raw.client_kill_filter(_id=lane["id"])
    await s.named(0)
    assert await s.run("b") == [2, b"b"]


async def test_calls_beyond_the_lanes_go_through_the_pool_and_a_drained_pool_holds_none_up(
    make: Make,
) -> None:
    """Two lanes and five calls at once: three use the pool. With the pool's only
    connection held elsewhere, the calls on lanes still answer at once."""
    s = await make(2, max_connections=1, timeout=10)
    await s.script(keys=[s.key], args=["load"])  # known to Redis before the pool is held
    holding = await hold_the_only_connection(s.client, s.raw, f"{s.key}:hold")
    on_lanes, pooled = [
        [asyncio.create_task(s.lanes.run(s.script, [s.key], [n])) for n in tags]
        for tags in ("ab", "cde")
    ]
    replies = await asyncio.wait_for(asyncio.gather(*on_lanes), 5)
    assert sorted(r[1] for r in replies) == [b"a", b"b"]
    assert not any(task.done() for task in pooled)  # waiting for the pool's connection
    await s.raw.rpush(f"{s.key}:hold", "go")
    await holding
    replies = await asyncio.wait_for(asyncio.gather(*pooled), 5)
    assert sorted(r[1] for r in replies) == [b"c", b"d", b"e"]
    assert await s.raw.get(s.key) == b"6"


async def test_close_disconnects_the_idle_lanes_and_a_busy_one_when_its_call_ends(
    make: Make,
) -> None:
    s = await make(2)
    await asyncio.gather(s.run("a"), s.run("b"))
    await s.named(2)
    await s.raw.client_pause(10_000, all=False)
    busy = asyncio.create_task(s.run("busy"))
    await s.named(1, "b")
    await s.lanes.aclose()
    await s.named(1)  # the idle one went, the busy one waits
    await s.raw.client_unpause()
    assert (await busy)[1] == b"busy"
    await s.named(0)
