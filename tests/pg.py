"""Scratch databases on the local PostgreSQL server, one per test."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest

SERVER = "postgresql://postgres@127.0.0.1:5432"


@asynccontextmanager
async def fresh_database() -> AsyncIterator[str]:
    """Create an empty database, yield its DSN, and drop it (closing its connections).

    Fails the test, never skips it, when the server cannot be reached.
    """
    try:
        admin = await asyncpg.connect(f"{SERVER}/postgres")
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(
            f"PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth) is needed"
            f" for these tests: {exc!r}",
            pytrace=False,
        )
    try:
        name = f"ra_test_{secrets.token_hex(8)}"
        await admin.execute(f"CREATE DATABASE {name}")
        try:
            yield f"{SERVER}/{name}"
        finally:
            await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
    finally:
        await admin.close()
