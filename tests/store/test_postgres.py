"""What only the PostgreSQL store has: shared migrations and several processes at once.

Two stores on one database stand for two server processes: each has its own
pool, so their statements really run concurrently in the server.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from realtime_agent.models import Message, Session, new_message_id, new_session_id
from realtime_agent.store import migrations
from realtime_agent.store.factory import open_store
from realtime_agent.store.postgres import PostgresStore
from realtime_agent.store.sqlite import SQLiteStore
from tests.pg import fresh_database

VERSIONS = [m.version for m in migrations.load("postgres")]


@pytest.fixture
async def dsn() -> AsyncIterator[str]:
    """The DSN of a fresh, empty database."""
    async with fresh_database() as url:
        yield url


@pytest.fixture
async def two() -> AsyncIterator[tuple[PostgresStore, PostgresStore]]:
    """Two open stores, each with its own pool, on one fresh database."""
    async with (
        fresh_database() as url,
        PostgresStore(url) as first,
        PostgresStore(url) as second,
    ):
        yield first, second


async def enter_all(stack: AsyncExitStack, stores: Iterable[PostgresStore]) -> None:
    """Enter (connect and migrate) every store at once; ``stack`` closes them."""
    async with asyncio.TaskGroup() as tg:
        for store in stores:
            tg.create_task(stack.enter_async_context(store))


async def new_session(store: PostgresStore) -> str:
    """Create a session; return its id."""
    session = Session(id=new_session_id(), character_id=7)
    await store.create_session(session)
    return session.id


def user_message(session_id: str, content: str = "hi", client_id: str | None = None) -> Message:
    return Message(
        id=new_message_id(),
        session_id=session_id,
        role="user",
        content=content,
        client_id=client_id,
    )


async def test_migrations_are_recorded_once(dsn: str) -> None:
    """Opening records every migration in ``schema_migrations``; reopening applies none."""
    async with PostgresStore(dsn) as store:
        rows = await store.pool.fetch(
            "SELECT version, name, applied_at FROM schema_migrations ORDER BY version"
        )
        assert [(r["version"], r["name"]) for r in rows] == [
            (m.version, m.name) for m in migrations.load("postgres")
        ]
        assert all(r["applied_at"].tzinfo is not None for r in rows)
        assert await store.migrate() == []
    async with PostgresStore(dsn) as again:
        assert await again.migrate() == []
        assert await again.pool.fetchval("SELECT count(*) FROM schema_migrations") == len(rows)


async def test_concurrent_migrations_apply_each_once(dsn: str) -> None:
    """Five stores starting at once on an empty database migrate it exactly once, without error."""
    stores = [PostgresStore(dsn) for _ in range(5)]
    async with AsyncExitStack() as stack:
        await enter_all(stack, stores)
        count = await stores[0].pool.fetchval("SELECT count(*) FROM schema_migrations")
        assert count == len(VERSIONS)
        await stores[0].pool.execute(
            "DROP FUNCTION ra_take_next;"
            " DROP TABLE agent_messages, agent_sessions, schema_migrations"
        )
        applied = await asyncio.gather(*(store.migrate() for store in stores))
        assert sorted(v for versions in applied for v in versions) == VERSIONS
        assert sorted(applied, key=len) == [[]] * 4 + [VERSIONS]


async def test_context_is_stored_as_jsonb(dsn: str) -> None:
    """The session context is a JSONB document the database can query."""
    async with PostgresStore(dsn) as store:
        sid = await new_session(store)
        await store.set_context(sid, {"notes": ["ünïcode 😀"], "n": 2})
        row = await store.pool.fetchrow(
            "SELECT jsonb_typeof(context) AS kind, context->'notes'->>0 AS note, context"
            " FROM agent_sessions WHERE id = $1",
            sid,
        )
        assert (row["kind"], row["note"]) == ("object", "ünïcode 😀")
        assert row["context"] == {"notes": ["ünïcode 😀"], "n": 2}


async def test_concurrent_appends_get_distinct_positions(
    two: tuple[PostgresStore, PostgresStore],
) -> None:
    """Twenty appends racing from two pools to one session get positions 1..20, once each."""
    sid = await new_session(two[0])
    results = await asyncio.gather(
        *(two[i % 2].append_message(user_message(sid, f"m{i}")) for i in range(20))
    )
    assert all(created for _, created in results)
    assert sorted(stored.position for stored, _ in results) == list(range(1, 21))
    listed = await two[1].list_messages(sid)
    assert [m.position for m in listed] == list(range(1, 21))
    assert {m.id for m in listed} == {stored.id for stored, _ in results}


async def test_concurrent_take_next_never_takes_a_message_twice(
    two: tuple[PostgresStore, PostgresStore],
) -> None:
    """Takes racing from two pools hand out each waiting message once, with turns 1..n."""
    sid = await new_session(two[0])
    waiting = [await two[0].append_message(user_message(sid, f"m{i}")) for i in range(12)]
    taken = await asyncio.gather(*(two[i % 2].take_next(sid) for i in range(20)))
    got = [m for m in taken if m is not None]
    assert sorted(m.id for m in got) == sorted(stored.id for stored, _ in waiting)
    assert sorted(m.turn for m in got if m.turn is not None) == list(range(1, 13))
    assert await two[1].pending(sid) == []
    assert [m.turn for m in await two[0].conversation(sid)] == list(range(1, 13))


async def test_concurrent_same_client_id_is_stored_once(
    two: tuple[PostgresStore, PostgresStore],
) -> None:
    """One ``client_id`` appended at once from two pools is stored once; all see that message."""
    sid = await new_session(two[0])
    results = await asyncio.gather(
        *(two[i % 2].append_message(user_message(sid, f"try {i}", "c-1")) for i in range(10))
    )
    assert sum(created for _, created in results) == 1
    assert len({stored.id for stored, _ in results}) == 1
    listed = await two[0].list_messages(sid)
    assert [(m.id, m.position) for m in listed] == [(results[0][0].id, 1)]


async def test_open_store_picks_the_backend(dsn: str, tmp_path: Path) -> None:
    """``open_store`` gives SQLite for ``sqlite:///`` and PostgreSQL for both Postgres schemes."""
    assert isinstance(open_store(f"sqlite:///{tmp_path / 'a.db'}"), SQLiteStore)
    assert isinstance(open_store("postgres://postgres@127.0.0.1/x"), PostgresStore)
    assert isinstance(open_store(dsn), PostgresStore)
    async with open_store(dsn) as store:
        await store.ping()


def test_open_store_rejects_an_unknown_scheme() -> None:
    """Another scheme is a ``ValueError`` that names the scheme but not the password."""
    with pytest.raises(ValueError, match="unsupported database URL scheme 'mysql'") as info:
        open_store("mysql://root:secret@localhost/db")
    assert "secret" not in str(info.value)
