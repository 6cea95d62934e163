"""The local Redis for tests: a checked client, a key prefix per test, and its cleanup."""

from __future__ import annotations

import asyncio
import secrets

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from tests.helpers import poll

REDIS_URL = "redis://127.0.0.1:6379/0"


async def redis_client() -> Redis:
    """A client of the local Redis; fails the test (never skips it) when Redis is not there."""
    client = Redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        await client.aclose()
        pytest.fail(
            f"Redis on 127.0.0.1:6379 is needed for these tests ({REDIS_URL}): {exc!r}",
            pytrace=False,
        )
    return client


def unique_prefix() -> str:
    """A key prefix no other test uses, so a test deletes only its own keys."""
    return f"ratest:{secrets.token_hex(6)}:"


async def delete_prefix(redis: Redis, prefix: str) -> None:
    """Delete every key under ``prefix`` (SCAN, never FLUSHDB: Redis may be shared)."""
    batch: list[bytes] = []
    async for key in redis.scan_iter(match=f"{prefix}*", count=500):
        batch.append(key)
        if len(batch) >= 500:
            await redis.delete(*batch)
            batch.clear()
    if batch:
        await redis.delete(*batch)


async def hold_the_only_connection(client: Redis, raw: Redis, key: str) -> asyncio.Task[None]:
    """Take the only connection of ``client``'s pool with a blocking read of ``key``, until
    a push to it; returns once Redis shows the read waiting (``raw`` asks)."""

    async def hold() -> None:
        await client.blpop([key], 0)

    holding = asyncio.create_task(hold())

    async def held() -> bool:
        return any(c.get("cmd") == "blpop" for c in await raw.client_list())

    await poll(held, every=0.02, limit=5)
    return holding
