"""The emit pipeline's own step on a real Redis: a script Redis lost is loaded again."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from realtime_agent.channels.batch import ScriptBatch, _Call
from tests.redis_util import redis_client


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
