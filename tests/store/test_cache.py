"""The seed's hybrid cache: Redis in front of PostgreSQL, with a TTL, written through."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from realtime_agent.models import Session, SessionStatus
from realtime_agent.store.cache import CachedStore
from realtime_agent.store.postgres import PostgresStore
from tests.pg import fresh_database
from tests.redis_util import delete_prefix, redis_client, unique_prefix


@pytest.fixture
async def cached() -> AsyncIterator[tuple[CachedStore, PostgresStore, Redis, str]]:
    prefix = unique_prefix()
    redis = await redis_client()
    async with fresh_database() as dsn, PostgresStore(dsn) as store:
        try:
            yield CachedStore(store, redis, prefix=prefix, ttl_seconds=86_400), store, redis, prefix
        finally:
            await delete_prefix(redis, prefix)
            await redis.aclose()


async def test_a_miss_is_read_from_postgres_and_restored_with_the_ttl(
    cached: tuple[CachedStore, PostgresStore, Redis, str],
) -> None:
    """A session not in Redis is read from Postgres and put back with the 24 h TTL."""
    cache, store, redis, prefix = cached
    await store.create_session(Session(id="sess-00000000000a", character_id=4))
    key = f"{prefix}session:sess-00000000000a"
    assert await redis.get(key) is None
    loaded = await cache.get_session("sess-00000000000a")
    assert loaded is not None and loaded.character_id == 4
    assert 0 < await redis.ttl(key) <= 86_400


async def test_changes_are_written_through_and_delete_leaves_a_tombstone(
    cached: tuple[CachedStore, PostgresStore, Redis, str],
) -> None:
    """Status and context changes reach Redis; a deleted session reads as gone from Redis."""
    cache, store, redis, prefix = cached
    await cache.create_session(Session(id="sess-00000000000b", character_id=1))
    await cache.set_status("sess-00000000000b", SessionStatus.PLANNING)
    await cache.set_context("sess-00000000000b", {"notes": ["x"]})
    await store.set_status("sess-00000000000b", SessionStatus.COMPLETED)  # behind the cache
    cached_session = await cache.get_session("sess-00000000000b")
    assert cached_session is not None
    assert cached_session.status == SessionStatus.PLANNING  # served from Redis
    assert cached_session.context == {"notes": ["x"]}
    assert await cache.archive_session("sess-00000000000b")
    assert await redis.get(f"{prefix}session:sess-00000000000b") == b"!"
    assert await cache.get_session("sess-00000000000b") is None
    assert await store.get_session("sess-00000000000b") is None  # archived, not erased


async def test_reads_fall_back_to_postgres_when_redis_is_gone(
    cached: tuple[CachedStore, PostgresStore, Redis, str],
) -> None:
    """With Redis unreachable a session read still answers from Postgres."""
    _, store, _, prefix = cached
    await store.create_session(Session(id="sess-00000000000c", character_id=9))
    dead = Redis.from_url("redis://127.0.0.1:1/0")
    try:
        blind = CachedStore(store, dead, prefix=prefix, ttl_seconds=60)
        loaded = await blind.get_session("sess-00000000000c")
    finally:
        await dead.aclose()
    assert loaded is not None and loaded.character_id == 9


async def test_the_last_write_wins_in_the_cache_whatever_the_clocks(
    cached: tuple[CachedStore, PostgresStore, Redis, str],
) -> None:
    """The cache keeps the newest version it is given, so versions must follow the order
    in which writes commit. A process whose clock runs an hour ahead wrote a status, and
    a read put that row in the cache; a later write from a process with the right clock
    still reaches the cache: the database stamps each write later than the row it
    updates."""
    cache, store, _, _ = cached
    sid = "sess-00000000000c"
    await store.create_session(Session(id=sid, character_id=1))
    await store.pool.execute(  # the write of the process whose clock is ahead
        "UPDATE agent_sessions SET status = 'planning', updated_at = now() + interval '1 hour'"
        " WHERE id = $1",
        sid,
    )
    ahead = await cache.get_session(sid)  # a miss: read from PostgreSQL, cached
    assert ahead is not None and ahead.status == SessionStatus.PLANNING
    written = await cache.set_status(sid, SessionStatus.COMPLETED)
    assert written is not None and written.updated_at > ahead.updated_at
    now_cached = await cache.get_session(sid)
    assert now_cached is not None and now_cached.status == SessionStatus.COMPLETED
    assert now_cached == await store.get_session(sid)
