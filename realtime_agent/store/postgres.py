"""PostgreSQL transcript store for the distributed mode (asyncpg pool)."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import orjson

from ..errors import translate
from ..models import AutonomyLevel, Message, Session, SessionStatus, utcnow
from . import migrations
from .base import MESSAGE_COLUMNS, SESSION_COLUMNS

# pg_advisory_lock key held while migrating: the bytes b"ra-migr" as one bigint.
_MIGRATION_LOCK = 0x72_61_2D_6D_69_67_72
_RUNNING = [s.value for s in SessionStatus if s.running]


async def _init_connection(conn: Any) -> None:
    await conn.set_type_codec(
        "jsonb",
        encoder=lambda value: orjson.dumps(value).decode(),
        decoder=orjson.loads,
        schema="pg_catalog",
        format="text",
    )


async def _reset_connection(conn: Any) -> None:
    """What a connection needs before it goes back to the pool.

    asyncpg's default sends a reset query (advisory unlock, ``CLOSE ALL``,
    ``UNLISTEN``, ``RESET ALL``) on every release: one more round trip per
    statement, a third of the time of a message append. Nothing here leaves
    session state on a pooled connection (:meth:`PostgresStore.migrate` locks
    on a connection of its own), so only a transaction that an interruption
    left open needs undoing.
    """
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


# A write's ``updated_at`` is taken by the database once it holds the row, and is
# always later than the row's: the write that commits last carries the newest
# version, whatever the clocks of the processes (the Redis cache keeps the
# newest version it is given, so a version taken before waiting for the row's lock
# could leave it behind).
_TOUCH = "updated_at = GREATEST(clock_timestamp(), updated_at + interval '1 microsecond')"


def _session(row: Any) -> Session:
    level, status = AutonomyLevel(row["autonomy_level"]), SessionStatus(row["status"])
    return Session(**{**row, "autonomy_level": level, "status": status})


def _message(row: Any) -> Message:
    # The selected columns are named exactly as the Message fields.
    return Message(**dict(row))


def _connection_trouble(exc: BaseException) -> bool:
    """Errors that mean "the database cannot be reached now", not "this query is wrong":
    network errors, the client's own connection state, and SQLSTATE classes 08
    (connection), 53 (resources), 57 (operator intervention) and 55000 (e.g. the
    database does not accept connections)."""
    if isinstance(exc, asyncpg.PostgresError):
        state = exc.sqlstate or ""
        return state[:2] in ("08", "53", "57") or state == "55000"
    return True


@translate(
    OSError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    service="PostgreSQL",
    when=_connection_trouble,
)
class PostgresStore:
    """The :class:`~realtime_agent.store.base.Store` on a PostgreSQL database.

    Several server processes share one database, so no in-process lock can
    make a read-then-write atomic. Instead, every such write first locks the
    session row, in one round trip: :meth:`append_message` with the ``UPDATE``
    of the session's position counter (one statement), :meth:`take_next` with
    ``SELECT ... FOR UPDATE`` in the function ``ra_take_next``. Writers of one
    session queue up on that row, writers of different sessions never wait
    for each other. The reads after the lock in ``ra_take_next`` are separate
    statements on purpose: under READ COMMITTED each statement takes a fresh
    snapshot, so it sees what the previous lock holder committed (a subquery
    inside the locking statement would not; an ``UPDATE`` re-reads the row it
    waited for, which is why the counter is safe in one statement). ``UNIQUE
    (session_id, position)`` and ``UNIQUE (session_id, client_id)`` back this
    up in the schema.
    :meth:`reserve_seq` is a single ``UPDATE``, atomic on its own.
    :meth:`migrate` serialises concurrent starts with a session-level
    advisory lock.
    """

    def __init__(self, dsn: str, *, min_size: int = 1, max_size: int = 10) -> None:
        self._dsn = dsn
        self._min_size = min_size
        self._max_size = max_size
        self._pool: asyncpg.Pool | None = None

    async def __aenter__(self) -> PostgresStore:
        self._pool = await asyncpg.create_pool(
            self._dsn,
            min_size=self._min_size,
            max_size=self._max_size,
            init=_init_connection,
            reset=_reset_connection,
        )
        try:
            await self.migrate()
        except (Exception, asyncio.CancelledError):
            await self._close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._close()

    async def _close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            await pool.close()
        except (Exception, asyncio.CancelledError):
            # Interrupted graceful close (asyncpg's own pattern): drop every
            # connection now rather than leak them, then let the error propagate.
            pool.terminate()
            raise

    @property
    def pool(self) -> asyncpg.Pool:
        """The open ``asyncpg.Pool``."""
        if self._pool is None:
            raise RuntimeError(
                "PostgresStore is not open: use it as `async with PostgresStore(dsn)`"
            )
        return self._pool

    async def migrate(self) -> list[int]:
        """Apply every migration not yet recorded; returns the versions applied.

        Safe to run from several processes at once: the whole run holds an
        advisory lock, and each migration commits with its record.
        """
        conn = await asyncpg.connect(self._dsn)  # the lock dies with it, whatever happens
        try:
            await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
            try:
                await conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
                    " name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL)"
                )
                done = {
                    r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")
                }
                applied = []
                for m in migrations.load("postgres"):
                    if m.version in done:
                        continue
                    async with conn.transaction():
                        await conn.execute(m.sql)
                        await conn.execute(
                            "INSERT INTO schema_migrations VALUES ($1, $2, $3)",
                            m.version,
                            m.name,
                            utcnow(),
                        )
                    applied.append(m.version)
                return applied
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
        finally:
            await conn.close()

    async def ping(self) -> None:
        await self.pool.fetchval("SELECT 1")

    async def create_session(self, session: Session) -> None:
        await self.pool.execute(
            "INSERT INTO agent_sessions (id, character_id, autonomy_level, status, context,"
            " created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            session.id,
            session.character_id,
            int(session.autonomy_level),
            session.status.value,
            session.context,
            session.created_at,
            session.updated_at,
        )

    async def get_session(self, session_id: str) -> Session | None:
        row = await self.pool.fetchrow(
            f"SELECT {SESSION_COLUMNS} FROM agent_sessions WHERE id = $1 AND NOT archived",
            session_id,
        )
        return None if row is None else _session(row)

    async def set_status(self, session_id: str, status: SessionStatus) -> Session | None:
        return await self._set(session_id, "status", status.value)

    async def set_context(self, session_id: str, context: dict[str, Any]) -> Session | None:
        return await self._set(session_id, "context", context)

    async def set_autonomy(self, session_id: str, level: AutonomyLevel) -> Session | None:
        return await self._set(session_id, "autonomy_level", int(level))

    async def set_pending_approval(
        self, session_id: str, approval: dict[str, Any] | None
    ) -> Session | None:
        return await self._set(session_id, "pending_approval", approval)

    async def bump_viewer_generation(self, session_id: str) -> int:
        generation = await self.pool.fetchval(
            "UPDATE agent_sessions SET viewer_generation = viewer_generation + 1,"
            f" {_TOUCH} WHERE id = $1 RETURNING viewer_generation",
            session_id,
        )
        if generation is None:
            raise KeyError(session_id)
        return int(generation)

    async def current_turn(self, session_id: str) -> int:
        turn = await self.pool.fetchval(
            "SELECT next_turn - 1 FROM agent_sessions WHERE id = $1", session_id
        )
        return int(turn or 0)

    async def _set(self, session_id: str, column: str, value: Any) -> Session | None:
        row = await self.pool.fetchrow(
            f"UPDATE agent_sessions SET {column} = $2, {_TOUCH}"
            f" WHERE id = $1 AND NOT archived RETURNING {SESSION_COLUMNS}",
            session_id,
            value,
        )
        return None if row is None else _session(row)

    async def archive_session(self, session_id: str) -> bool:
        archived = await self.pool.fetchval(
            f"UPDATE agent_sessions SET archived = TRUE, {_TOUCH}"
            " WHERE id = $1 AND NOT archived RETURNING id",
            session_id,
        )
        return archived is not None

    async def append_message(self, message: Message) -> tuple[Message, bool]:
        sid = message.session_id
        # One statement, one round trip: the UPDATE takes the session row's lock
        # and, under READ COMMITTED, re-reads its latest counter, so concurrent
        # appends get distinct, increasing positions. A repeated client_id writes
        # nothing (only two racing copies of one can leave a harmless gap). The
        # GREATEST catches the counter up with positions written by a process of
        # the previous version (MAX()+1) during a rolling upgrade.
        inserted = await self.pool.fetchval(
            "WITH s AS (UPDATE agent_sessions SET last_position = GREATEST(last_position,"
            " (SELECT COALESCE(MAX(position), 0) FROM agent_messages WHERE session_id = $2))"
            " + 1,"
            f" {_TOUCH} WHERE id = $2 AND NOT EXISTS (SELECT 1 FROM agent_messages"
            " WHERE session_id = $2 AND client_id = $6::text) RETURNING last_position)"
            f" INSERT INTO agent_messages ({MESSAGE_COLUMNS})"
            " SELECT $1::text, $2::text, s.last_position, $3::text, $4::text,"
            " $5::timestamptz, $6::text, $7::jsonb, $8::text, $9::text, $10::boolean,"
            " $11::bigint, $12::smallint, $13::boolean"
            " FROM s ON CONFLICT (session_id, client_id) DO NOTHING RETURNING position",
            message.id,
            sid,
            message.role,
            message.content,
            message.timestamp,
            message.client_id,
            message.tool_calls or None,
            message.call_id,
            message.name,
            message.is_error,
            message.turn,
            message.priority,
            message.steered,
        )
        if inserted is None:  # a repeated client_id (nothing written), or no such session
            row = await self.pool.fetchrow(
                f"SELECT {MESSAGE_COLUMNS} FROM agent_messages"
                " WHERE session_id = $1 AND client_id = $2",
                sid,
                message.client_id,
            )
            if row is None:
                raise LookupError(f"no session {sid!r} to append a message to")
            return _message(row), False
        message.position = int(inserted)
        return message, True

    async def _messages(self, where: str, session_id: str) -> list[Message]:
        rows = await self.pool.fetch(
            f"SELECT {MESSAGE_COLUMNS} FROM agent_messages WHERE {where}", session_id
        )
        return [_message(row) for row in rows]

    async def list_messages(self, session_id: str) -> list[Message]:
        return await self._messages("session_id = $1 ORDER BY position", session_id)

    async def conversation(self, session_id: str) -> list[Message]:
        return await self._messages(
            "session_id = $1 AND turn IS NOT NULL ORDER BY turn, position", session_id
        )

    async def pending(self, session_id: str) -> list[Message]:
        return await self._messages(
            "session_id = $1 AND turn IS NULL AND role = 'user' ORDER BY priority DESC, position",
            session_id,
        )

    async def take_next(self, session_id: str) -> Message | None:
        # ra_take_next (migration 0004) is the locking transaction in one round trip.
        row = await self.pool.fetchrow(
            f"SELECT {MESSAGE_COLUMNS} FROM ra_take_next($1)", session_id
        )
        return None if row is None else _message(row)

    async def sessions_needing_attention(self) -> list[str]:
        rows = await self.pool.fetch(
            "SELECT id FROM agent_sessions s WHERE NOT archived AND"
            " (status = ANY($1::text[]) OR EXISTS (SELECT 1 FROM agent_messages m"
            " WHERE m.session_id = s.id AND m.turn IS NULL AND m.role = 'user'))"
            " ORDER BY created_at, id",
            _RUNNING,
        )
        return [row["id"] for row in rows]

    async def reserve_seq(self, session_id: str, count: int) -> int:
        before = await self.pool.fetchval(
            "UPDATE agent_sessions SET seq_reserved = seq_reserved + $2 WHERE id = $1"
            " RETURNING seq_reserved - $2",
            session_id,
            count,
        )
        if before is None:
            raise KeyError(session_id)
        return int(before)
