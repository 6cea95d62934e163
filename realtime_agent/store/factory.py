"""Pick the store backend from the database URL."""

from __future__ import annotations

import contextlib

from ..config import POSTGRES_SCHEMES, SQLITE_SCHEME, scheme_problem
from .base import Store
from .postgres import PostgresStore
from .sqlite import SQLiteStore


def open_store(url: str) -> contextlib.AbstractAsyncContextManager[Store]:
    """The store for ``url``, not yet entered: enter it to connect and migrate.

    ``sqlite:///path.db`` gives the embedded SQLite store, ``postgresql://...``
    (or ``postgres://...``) the PostgreSQL store; any other URL is a
    ``ValueError``.
    """
    if url.startswith(SQLITE_SCHEME):
        return SQLiteStore(url)
    if url.startswith(POSTGRES_SCHEMES):
        return PostgresStore(url)
    raise ValueError(f"unsupported database URL {scheme_problem(url)}")
