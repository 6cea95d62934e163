"""ScriptBatch on a real Redis: a lost script loaded again in a pipeline, and close()."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import pytest
from redis.asyncio import BlockingConnectionPool, Redis

from realtime_agent.channels.batch import ScriptBatch, _Call
from realtime_agent.errors import Unavailable
from tests.redis_util import REDIS_URL, hold_the_only_connection, redis_client


async def test_a_pipeline_loads_again_a_script_redis_lost_and_keeps_the_order() -> None:
    """Every call of a pipeline sent after Redis lost the script (a restart, SCRIPT
    FLUSH) answers NoScript; each is run again, loaded, once, in order."""
    raw = await redis_client()
    key = f"test-batch:{secrets.token_hex(6)}"
    try:
        script = raw.register_script("return redis.call('RPUSH', KEYS[1], ARGV[1])")
        batch: ScriptBatch[Any] = ScriptBatch(raw, script, asyncio.create_task)
        await raw.script_flush()
        loop = asyncio.get_running_loop()
        calls = [_Call([key], [n], lambda reply: reply, loop.create_future()) for n in "abc"]
        assert await batch._pipeline(calls) == [1, 2, 3]
        assert await raw.lrange(key, 0, -1) == [b"a", b"b", b"c"]
    finally:
        await raw.delete(key)
        await raw.aclose()


async def test_close_fails_the_queued_calls_at_once_and_lets_the_one_in_flight_end() -> None:
    """A call queued behind a busy lane fails with Unavailable as soon as the batch
    closes, even while the lane's own call still waits on Redis (here for the
    pool's only connection); the call in flight ends normally, and only it ran."""
    raw = await redis_client()
    client = Redis.from_pool(BlockingConnectionPool.from_url(REDIS_URL, max_connections=1))
    key, hold = f"test-batch:{secrets.token_hex(6)}", f"test-batch:{secrets.token_hex(6)}"
    try:
        script = client.register_script("return redis.call('RPUSH', KEYS[1], ARGV[1])")
        batch: ScriptBatch[Any] = ScriptBatch(client, script, asyncio.create_task, lanes=1)

        holding = await hold_the_only_connection(client, raw, hold)
        in_flight = asyncio.create_task(batch([key], ["a"], lambda reply: reply))
        queued = asyncio.create_task(batch([key], ["b"], lambda reply: reply))
        await asyncio.sleep(0)  # a turn: one call holds the lane, the other is queued
        batch.close()
        with pytest.raises(Unavailable, match="shutting down"):
            async with asyncio.timeout(5):
                await queued
        assert not in_flight.done()
        await raw.rpush(hold, "go")
        await holding
        assert await in_flight == 1
        assert await raw.lrange(key, 0, -1) == [b"a"]
    finally:
        await raw.delete(key, hold)
        await client.aclose()
        await raw.aclose()
