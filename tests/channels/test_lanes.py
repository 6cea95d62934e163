"""Lanes on a real Redis: a script's reply on a connection of its own, whatever
happened to the call before (a lost script, a cancel, a timeout), and a drained
pool that does not hold the calls up."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import BlockingConnectionPool, Redis

from realtime_agent.channels.lanes import Lanes
from tests.helpers import poll
from tests.redis_util import REDIS_URL, redis_client

# Numbers each call: the reply says which call it answers, and the count how often
# the script ran.
COUNT = "return {redis.call('INCR', KEYS[1]), ARGV[1]}"


@pytest.fixture
async def key() -> AsyncIterator[str]:
    raw = await redis_client()
    name = f"test-lanes:{secrets.token_hex(6)}"
    try:
        yield name
    finally:
        await raw.client_unpause()
        await raw.delete(name)
        await raw.aclose()


NAME = f"test-lanes-{secrets.token_hex(4)}"  # the lanes' connections, in CLIENT LIST


async def _client(**settings: object) -> Redis:
    pool = BlockingConnectionPool.from_url(REDIS_URL, client_name=NAME, **settings)
    return Redis.from_pool(pool)


async def _named(raw: Redis, name: str, flag: str = "") -> int:
    """How many connections named ``name`` Redis has (with ``flag``: "b", blocked)."""
    return sum(
        c.get("name") == name and flag in c.get("flags", "") for c in await raw.client_list()
    )


async def _until_count(raw: Redis, name: str, count: int, flag: str = "") -> None:
    async def reached() -> bool:
        return await _named(raw, name, flag) == count

    await poll(reached, every=0.01, limit=5)


async def test_a_call_runs_its_script_once_and_answers_it(key: str) -> None:
    client = await _client()
    lanes = Lanes(client, 2)
    try:
        script = client.register_script(COUNT)
        replies = [await lanes.run(script, [key], [n]) for n in "abc"]
        assert replies == [[1, b"a"], [2, b"b"], [3, b"c"]]
    finally:
        await lanes.aclose()
        await client.aclose()


async def test_a_script_redis_lost_is_loaded_and_run_once(key: str) -> None:
    """After SCRIPT FLUSH (a restarted Redis) the call answers NOSCRIPT, which means
    it did not run; it runs through the pool's script, which loads it, once."""
    client = await _client()
    lanes = Lanes(client, 1)
    try:
        script = client.register_script(COUNT)
        assert await lanes.run(script, [key], ["a"]) == [1, b"a"]
        await client.script_flush()
        assert await lanes.run(script, [key], ["b"]) == [2, b"b"]
        assert await lanes.run(script, [key], ["c"]) == [3, b"c"]
    finally:
        await lanes.aclose()
        await client.aclose()


async def test_after_a_cancelled_call_the_next_one_gets_its_own_reply(key: str) -> None:
    """A call cancelled while Redis holds its reply back leaves no reply behind on
    its lane: the next call on that lane reads its own, not the stale one."""
    raw, client = await redis_client(), await _client()
    lanes = Lanes(client, 1)
    try:
        script = client.register_script(COUNT)
        await lanes.run(script, [key], ["warm"])  # the lane exists and knows the script
        await raw.client_pause(10_000, all=False)  # scripts wait; the connection stays up
        cancelled = asyncio.create_task(lanes.run(script, [key], ["cancelled"]))
        await _until_count(raw, NAME, 1, "b")
        cancelled.cancel()
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        await raw.client_unpause()
        reply = await asyncio.wait_for(lanes.run(script, [key], ["next"]), 5)
        assert reply[1] == b"next"
    finally:
        await lanes.aclose()
        await client.aclose()
        await raw.aclose()


async def test_a_call_redis_does_not_answer_times_out_and_the_lane_serves_again(
    key: str,
) -> None:
    """The pool's socket timeout bounds a call on a lane too; the lane then connects
    again and the next call gets its own reply."""
    raw, client = await redis_client(), await _client(socket_timeout=0.3)
    lanes = Lanes(client, 1)
    try:
        script = client.register_script(COUNT)
        await lanes.run(script, [key], ["warm"])
        await raw.client_pause(10_000, all=False)
        with pytest.raises(TimeoutError):
            await lanes.run(script, [key], ["late"])
        await raw.client_unpause()
        reply = await asyncio.wait_for(lanes.run(script, [key], ["next"]), 5)
        assert reply[1] == b"next"
    finally:
        await lanes.aclose()
        await client.aclose()
        await raw.aclose()


async def test_a_lane_redis_closed_while_idle_connects_again_before_sending(key: str) -> None:
    """Redis closed the idle lane's connection (a restart, its idle timeout, a proxy):
    the next call connects again before it sends, and answers, instead of failing."""
    raw, client = await redis_client(), await _client()
    lanes = Lanes(client, 1)
    try:
        script = client.register_script(COUNT)
        await lanes.run(script, [key], ["a"])
        await _until_count(raw, NAME, 1)
        (lane,) = [c for c in await raw.client_list() if c.get("name") == NAME]
        await raw.client_kill_filter(_id=lane["id"])
        await _until_count(raw, NAME, 0)
        assert await lanes.run(script, [key], ["b"]) == [2, b"b"]
    finally:
        await lanes.aclose()
        await client.aclose()
        await raw.aclose()


async def test_without_a_timeout_in_the_url_a_lane_has_redis_pys_default() -> None:
    """The pool's connections time out after redis-py's default when the URL sets
    none; a lane's call does too (a lane's own connection has no socket timeout)."""
    client = await _client()
    try:
        pool = client.connection_pool
        like = pool.connection_class(**pool.connection_kwargs)
        assert like.socket_timeout is not None
        assert Lanes(client, 1)._timeout == like.socket_timeout
    finally:
        await client.aclose()


async def test_calls_beyond_the_lanes_go_through_the_pool_and_a_drained_pool_holds_none_up(
    key: str,
) -> None:
    """Two lanes and five calls at once: three use the pool. With the pool's only
    connection held elsewhere, the calls on lanes still answer at once."""
    raw, client = await redis_client(), await _client(max_connections=1, timeout=10)
    lanes = Lanes(client, 2)
    hold = f"{key}:hold"
    try:
        script = client.register_script(COUNT)
        await script(keys=[key], args=["load"])  # known to Redis before the pool is held

        async def hold_the_connection() -> None:
            await client.blpop([hold], 0)  # the pool's only connection, until a push

        holding = asyncio.create_task(hold_the_connection())

        async def held() -> bool:
            return any(c.get("cmd") == "blpop" for c in await raw.client_list())

        await poll(held, every=0.02, limit=5)
        on_lanes = [asyncio.create_task(lanes.run(script, [key], [n])) for n in "ab"]
        pooled = [asyncio.create_task(lanes.run(script, [key], [n])) for n in "cde"]
        replies = await asyncio.wait_for(asyncio.gather(*on_lanes), 5)
        assert sorted(r[1] for r in replies) == [b"a", b"b"]
        assert not any(task.done() for task in pooled)  # waiting for the pool's connection
        await raw.rpush(hold, "go")
        await holding
        replies = await asyncio.wait_for(asyncio.gather(*pooled), 5)
        assert sorted(r[1] for r in replies) == [b"c", b"d", b"e"]
        assert await raw.get(key) == b"6"
    finally:
        await raw.delete(hold)
        await lanes.aclose()
        await client.aclose()
        await raw.aclose()


async def test_close_disconnects_the_idle_lanes_and_a_busy_one_when_its_call_ends(
    key: str,
) -> None:
    raw, client = await redis_client(), await _client()
    lanes = Lanes(client, 2)
    try:
        script = client.register_script(COUNT)
        await asyncio.gather(*(lanes.run(script, [key], [n]) for n in "ab"))
        await _until_count(raw, NAME, 2)
        await raw.client_pause(10_000, all=False)
        busy = asyncio.create_task(lanes.run(script, [key], ["busy"]))
        await _until_count(raw, NAME, 1, "b")
        await lanes.aclose()
        await _until_count(raw, NAME, 1)  # the idle one went, the busy one waits
        await raw.client_unpause()
        assert (await asyncio.wait_for(busy, 5))[1] == b"busy"
        await _until_count(raw, NAME, 0)
    finally:
        await lanes.aclose()
        await client.aclose()
        await raw.aclose()
