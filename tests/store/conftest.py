"""One contract suite over every store backend.

Each backend is a factory in :data:`DATABASES`: given the test's ``tmp_path``,
it makes a fresh, empty database, yields an *opener* (each call gives a new,
not yet entered store over that same database, so tests can reopen it), and
drops or flushes the database on exit. The ``store`` fixture is parametrized
over the factories: SQLite on a file under ``tmp_path``, PostgreSQL on a
scratch database of the local server (``tests/pg.py``), dropped afterwards.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Protocol

import pytest

from realtime_agent.store.base import Store
from realtime_agent.store.postgres import PostgresStore
from realtime_agent.store.sqlite import SQLiteStore
from tests.pg import fresh_database


class MigratingStore(Store, Protocol):
    """A :class:`Store` that applies its own schema migrations, as every backend does."""

    async def migrate(self) -> list[int]:
        """Apply every migration not yet recorded; returns the versions applied."""


Opener = Callable[[], AbstractAsyncContextManager[MigratingStore]]
Database = Callable[[Path], AbstractAsyncContextManager[Opener]]


@asynccontextmanager
async def sqlite_database(tmp_path: Path) -> AsyncIterator[Opener]:
    """A fresh SQLite file under ``tmp_path`` (removed with it)."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    yield lambda: SQLiteStore(url)


@asynccontextmanager
async def postgres_database(tmp_path: Path) -> AsyncIterator[Opener]:
    """A fresh database on the local PostgreSQL server (dropped afterwards)."""
    async with fresh_database() as dsn:
        yield lambda: PostgresStore(dsn)


DATABASES: dict[str, Database] = {"sqlite": sqlite_database, "postgres": postgres_database}


@pytest.fixture(params=list(DATABASES))
async def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Opener]:
    """Opens stores over one fresh database of the backend under test."""
    async with DATABASES[request.param](tmp_path) as opener:
        yield opener


@pytest.fixture
async def store(open_store: Opener) -> AsyncIterator[MigratingStore]:
    """An open, migrated store over a fresh database."""
    async with open_store() as opened:
        yield opened
