"""SQLite transcript store for the embedded mode (aiosqlite: no blocking call on the loop)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from typing import Any

import aiosqlite
import orjson

from ..models import AutonomyLevel, Message, Session, SessionStatus, utcnow
from . import migrations
from .base import MESSAGE_COLUMNS, SESSION_COLUMNS

_RUNNING = tuple(s.value for s in SessionStatus if s.running)


def _path_of(url: str) -> str:
    if not url.startswith("sqlite:///"):
        raise ValueError(f"not a SQLite URL: {url!r} (expected sqlite:///path.db)")
    return url.removeprefix("sqlite:///") or ":memory:"


def _message(row: aiosqlite.Row) -> Message:
    return Message(
        id=row[0],
        session_id=row[1],
        position=row[2],
        role=row[3],
        content=row[4],
        timestamp=datetime.fromisoformat(row[5]),
        client_id=row[6],
        tool_calls=orjson.loads(row[7]) if row[7] else None,
        call_id=row[8],
        name=row[9],
        is_error=None if row[10] is None else bool(row[10]),
        turn=row[11],
        priority=row[12],
        steered=bool(row[13]),
    )


def _session(row: Any) -> Session:
    return Session(
        id=row[0],
        character_id=row[1],
        autonomy_level=AutonomyLevel(row[2]),
        status=SessionStatus(row[3]),
        context=orjson.loads(row[4]),
        created_at=datetime.fromisoformat(row[5]),
        updated_at=datetime.fromisoformat(row[6]),
        pending_approval=orjson.loads(row[7]) if row[7] else None,
        viewer_generation=row[8],
    )


class SQLiteStore:
    """The :class:`~realtime_agent.store.base.Store` on one SQLite file.

    One connection in WAL mode; writes are serialised by an asyncio lock so a
    read-then-write (the next ``position``) is atomic. ``synchronous=NORMAL``
    in WAL mode survives a process crash; a power loss may drop the last
    commits (use PostgreSQL where that matters).
    """

    def __init__(self, url: str) -> None:
        self._path = _path_of(url)
        self._db: aiosqlite.Connection | None = None
        self._write = asyncio.Lock()

    async def __aenter__(self) -> SQLiteStore:
        if self._path != ":memory:":
            Path(self._path).parent.mkdir(parents=True, exist_ok=True)
        self._db = await aiosqlite.connect(self._path)
        try:
            await self._db.execute("PRAGMA journal_mode=WAL")
            await self._db.execute("PRAGMA synchronous=NORMAL")
            await self._db.execute("PRAGMA foreign_keys=ON")
            await self.migrate()
        except BaseException:
            await self._db.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("SQLiteStore is not open: use it as `async with SQLiteStore(url)`")
        return self._db

    async def migrate(self) -> list[int]:
        """Apply every migration not yet recorded; returns the versions applied."""
        db = self.db
        async with self._write:
            await db.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations"
                " (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
            )
            async with db.execute("SELECT version FROM schema_migrations") as cur:
                done = {row[0] async for row in cur}
            applied = []
            for m in migrations.load("sqlite"):
                if m.version in done:
                    continue
                await db.executescript(
                    f"BEGIN;\n{m.sql}\nINSERT INTO schema_migrations VALUES"
                    f" ({m.version}, '{m.name}', '{utcnow().isoformat()}');\nCOMMIT;"
                )
                applied.append(m.version)
            return applied

    async def ping(self) -> None:
        async with self.db.execute("SELECT 1") as cur:
            await cur.fetchone()

    async def create_session(self, session: Session) -> None:
        async with self._write:
            await self.db.execute(
                "INSERT INTO agent_sessions (id, character_id, autonomy_level, status, context,"
                " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    session.id,
                    session.character_id,
                    int(session.autonomy_level),
                    session.status.value,
                    orjson.dumps(session.context).decode(),
                    session.created_at.isoformat(),
                    session.updated_at.isoformat(),
                ),
            )
            await self.db.commit()

    async def get_session(self, session_id: str) -> Session | None:
        async with self.db.execute(
            f"SELECT {SESSION_COLUMNS} FROM agent_sessions WHERE id = ? AND archived = 0",
            (session_id,),
        ) as cur:
            row = await cur.fetchone()
        return None if row is None else _session(row)

    async def _set(self, session_id: str, column: str, value: Any) -> Session | None:
        async with self._write:
            async with self.db.execute(
                f"UPDATE agent_sessions SET {column} = ?, updated_at = ?"
                f" WHERE id = ? AND archived = 0 RETURNING {SESSION_COLUMNS}",
                (value, utcnow().isoformat(), session_id),
            ) as cur:
                row = await cur.fetchone()
            await self.db.commit()
        return None if row is None else _session(row)

    async def set_status(self, session_id: str, status: SessionStatus) -> Session | None:
        return await self._set(session_id, "status", status.value)

    async def set_context(self, session_id: str, context: dict[str, Any]) -> Session | None:
        return await self._set(session_id, "context", orjson.dumps(context).decode())

    async def set_autonomy(self, session_id: str, level: AutonomyLevel) -> Session | None:
        return await self._set(session_id, "autonomy_level", int(level))

    async def set_pending_approval(
        self, session_id: str, approval: dict[str, Any] | None
    ) -> Session | None:
        encoded = None if approval is None else orjson.dumps(approval).decode()
        return await self._set(session_id, "pending_approval", encoded)

    async def bump_viewer_generation(self, session_id: str) -> int:
        async with self._write:
            async with self.db.execute(
                "UPDATE agent_sessions SET viewer_generation = viewer_generation + 1,"
                " updated_at = ? WHERE id = ? RETURNING viewer_generation",
                (utcnow().isoformat(), session_id),
            ) as cur:
                row = await cur.fetchone()
            await self.db.commit()
        if row is None:
            raise KeyError(session_id)
        return int(row[0])

    async def current_turn(self, session_id: str) -> int:
        async with self.db.execute(
            "SELECT next_turn - 1 FROM agent_sessions WHERE id = ?", (session_id,)
        ) as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def archive_session(self, session_id: str) -> bool:
        async with self._write:
            cur = await self.db.execute(
                "UPDATE agent_sessions SET archived = 1, updated_at = ?"
                " WHERE id = ? AND archived = 0",
                (utcnow().isoformat(), session_id),
            )
            await self.db.commit()
            return cur.rowcount == 1

    async def append_message(self, message: Message) -> tuple[Message, bool]:
        db = self.db
        async with self._write:
            if message.client_id is not None:
                async with db.execute(
                    f"SELECT {MESSAGE_COLUMNS} FROM agent_messages"
                    " WHERE session_id = ? AND client_id = ?",
                    (message.session_id, message.client_id),
                ) as cur:
                    row = await cur.fetchone()
                if row is not None:
                    return _message(row), False
            async with db.execute(
                "SELECT COALESCE(MAX(position), 0) + 1 FROM agent_messages WHERE session_id = ?",
                (message.session_id,),
            ) as cur:
                (message.position,) = await cur.fetchone()  # type: ignore[misc]
            await db.execute(
                f"INSERT INTO agent_messages ({MESSAGE_COLUMNS})"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    message.id,
                    message.session_id,
                    message.position,
                    message.role,
                    message.content,
                    message.timestamp.isoformat(),
                    message.client_id,
                    orjson.dumps(message.tool_calls).decode() if message.tool_calls else None,
                    message.call_id,
                    message.name,
                    None if message.is_error is None else int(message.is_error),
                    message.turn,
                    message.priority,
                    int(message.steered),
                ),
            )
            await db.execute(
                "UPDATE agent_sessions SET updated_at = ? WHERE id = ?",
                (utcnow().isoformat(), message.session_id),
            )
            await db.commit()
            return message, True

    async def _messages(self, where: str, params: tuple[Any, ...]) -> list[Message]:
        async with self.db.execute(
            f"SELECT {MESSAGE_COLUMNS} FROM agent_messages WHERE {where}", params
        ) as cur:
            return [_message(row) async for row in cur]

    async def list_messages(self, session_id: str) -> list[Message]:
        return await self._messages("session_id = ? ORDER BY position", (session_id,))

    async def conversation(self, session_id: str) -> list[Message]:
        return await self._messages(
            "session_id = ? AND turn IS NOT NULL ORDER BY turn, position", (session_id,)
        )

    async def pending(self, session_id: str) -> list[Message]:
        return await self._messages(
            "session_id = ? AND turn IS NULL AND role = 'user' ORDER BY priority DESC, position",
            (session_id,),
        )

    async def take_next(self, session_id: str) -> Message | None:
        db = self.db
        async with self._write:
            found = await self.pending(session_id)
            if not found:
                return None
            message = found[0]
            async with db.execute(
                "UPDATE agent_sessions SET next_turn = next_turn + 1"
                " WHERE id = ? AND archived = 0 RETURNING next_turn - 1",
                (session_id,),
            ) as cur:
                row = await cur.fetchone()
            if row is None:  # archived
                return None
            message.turn = row[0]
            await db.execute(
                "UPDATE agent_messages SET turn = ? WHERE id = ?", (message.turn, message.id)
            )
            await db.commit()
            return message

    async def sessions_needing_attention(self) -> list[str]:
        marks = ", ".join("?" for _ in _RUNNING)
        async with self.db.execute(
            "SELECT id FROM agent_sessions s WHERE archived = 0 AND"
            f" (status IN ({marks}) OR EXISTS (SELECT 1 FROM agent_messages m"
            " WHERE m.session_id = s.id AND m.turn IS NULL AND m.role = 'user'))",
            _RUNNING,
        ) as cur:
            return [row[0] async for row in cur]

    async def reserve_seq(self, session_id: str, count: int) -> int:
        async with self._write:
            async with self.db.execute(
                "UPDATE agent_sessions SET seq_reserved = seq_reserved + ? WHERE id = ?"
                " RETURNING seq_reserved - ?",
                (count, session_id, count),
            ) as cur:
                row = await cur.fetchone()
            await self.db.commit()
        if row is None:
            raise KeyError(session_id)
        return int(row[0])
