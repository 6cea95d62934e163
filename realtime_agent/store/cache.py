"""The seed's hybrid cache: session state in Redis with a TTL, in front of the store.

Reads try Redis first and restore a miss from the store; every change is
written to the store first, then through to the cache. Writes carry the
session's ``updated_at`` as a version, and an archived session leaves a
tombstone, so a late write from another process never puts back an older
state or a deleted session (``cache_set.lua``). Messages are not cached: the
transcript is always read from the store.
"""

from __future__ import annotations

import logging
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from ..errors import describe, translate
from ..models import AutonomyLevel, Message, Session, SessionStatus
from .base import Store

log = logging.getLogger(__name__)
_TOMBSTONE = b"!"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _encode(session: Session) -> bytes:
    # orjson writes datetimes as RFC 3339 and enums as their values.
    return orjson.dumps({f.name: getattr(session, f.name) for f in fields(Session)})


def _decode(raw: bytes) -> Session:
    data: dict[str, Any] = orjson.loads(raw.partition(b"|")[2])
    data["autonomy_level"] = AutonomyLevel(data["autonomy_level"])
    data["status"] = SessionStatus(data["status"])
    data["created_at"] = datetime.fromisoformat(data["created_at"])
    data["updated_at"] = datetime.fromisoformat(data["updated_at"])
    return Session(**data)


@translate(RedisError, OSError, service="Redis")
class CachedStore:
    """A :class:`~realtime_agent.store.base.Store` with sessions cached in Redis."""

    def __init__(self, store: Store, redis: Redis, *, prefix: str, ttl_seconds: int) -> None:
        self.store = store
        self._redis = redis
        self._prefix = prefix
        self._ttl = ttl_seconds
        self._set = redis.register_script(
            resources.files(__package__).joinpath("cache_set.lua").read_text()
        )

    def _key(self, session_id: str) -> str:
        return f"{self._prefix}session:{session_id}"

    async def _write(self, session: Session) -> None:
        version = (session.updated_at - _EPOCH) // _MICROSECOND  # exact, unlike a float
        await self._set(keys=[self._key(session.id)], args=[version, _encode(session), self._ttl])

    async def _refresh(self, session_id: str) -> None:
        session = await self.store.get_session(session_id)
        if session is not None:
            await self._write(session)

    async def get_session(self, session_id: str) -> Session | None:
        """Redis first; a miss is read from the store and restored to the cache. With
        Redis down, reads still answer from the store."""
        try:
            raw: bytes | None = await self._redis.get(self._key(session_id))  # type: ignore[assignment]
        except (RedisError, OSError) as exc:
            log.warning(
                "session cache unavailable, reading %s from the store: %s",
                session_id,
                describe(exc),
            )
            return await self.store.get_session(session_id)
        if raw == _TOMBSTONE:
            return None
        if raw is not None:
            return _decode(raw)
        session = await self.store.get_session(session_id)
        if session is not None:
            try:
                await self._write(session)
            except (RedisError, OSError) as exc:  # the read itself succeeded
                log.warning("could not restore %s to the cache: %s", session_id, describe(exc))
        return session

    async def create_session(self, session: Session) -> None:
        await self.store.create_session(session)
        await self._write(session)

    async def _through(self, written: Session | None) -> Session | None:
        """Write the session a setter returned through to the cache."""
        if written is not None:
            await self._write(written)
        return written

    async def set_status(self, session_id: str, status: SessionStatus) -> Session | None:
        return await self._through(await self.store.set_status(session_id, status))

    async def set_context(self, session_id: str, context: dict[str, Any]) -> Session | None:
        return await self._through(await self.store.set_context(session_id, context))

    async def set_autonomy(self, session_id: str, level: AutonomyLevel) -> Session | None:
        return await self._through(await self.store.set_autonomy(session_id, level))

    async def set_pending_approval(
        self, session_id: str, approval: dict[str, Any] | None
    ) -> Session | None:
        return await self._through(await self.store.set_pending_approval(session_id, approval))

    async def bump_viewer_generation(self, session_id: str) -> int:
        generation = await self.store.bump_viewer_generation(session_id)
        await self._refresh(session_id)
        return generation

    async def current_turn(self, session_id: str) -> int:
        return await self.store.current_turn(session_id)

    async def archive_session(self, session_id: str) -> bool:
        archived = await self.store.archive_session(session_id)
        await self._redis.set(self._key(session_id), _TOMBSTONE, ex=self._ttl)
        return archived

    # --- the rest goes straight to the store -------------------------------------

    async def ping(self) -> None:
        await self.store.ping()

    async def append_message(self, message: Message) -> tuple[Message, bool]:
        return await self.store.append_message(message)

    async def list_messages(self, session_id: str) -> list[Message]:
        return await self.store.list_messages(session_id)

    async def conversation(self, session_id: str) -> list[Message]:
        return await self.store.conversation(session_id)

    async def take_next(self, session_id: str) -> Message | None:
        return await self.store.take_next(session_id)

    async def pending(self, session_id: str) -> list[Message]:
        return await self.store.pending(session_id)

    async def sessions_needing_attention(self) -> list[str]:
        return await self.store.sessions_needing_attention()

    async def reserve_seq(self, session_id: str, count: int) -> int:
        return await self.store.reserve_seq(session_id, count)
