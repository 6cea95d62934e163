"""In-process channel layer: one server process, no Redis."""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from ..models import rfc3339, utcnow
from ..protocol import encode
from .base import ControlHandler, Event, Joined, SeqReserver, Subscriber
from .history import History
from .presence import PresenceFlow

SEQ_BLOCK = 1000


@dataclass(slots=True)
class _Channel:
    history: History
    last_seq: int = 0
    seq_limit: int = 0
    subscribers: set[Subscriber] = field(default_factory=set)
    last_emit: float = field(default_factory=time.monotonic)
    presence: PresenceFlow = field(init=False)

    def __post_init__(self) -> None:
        self.presence = PresenceFlow(self.subscribers)

    def drop(self) -> None:
        """The channel is forgotten: nothing it holds may wake it."""
        self.presence.close()


class MemoryChannels:
    """Seq, history and fan-out for one process.

    ``seq`` survives restarts through ``reserve``: numbers are taken from the
    store in blocks, so a restarted process continues past every number the
    previous one could have used (a gap, never a repeat).
    """

    problem: str | None = None

    def __init__(
        self,
        reserve: SeqReserver,
        *,
        min_events: int,
        min_seconds: float,
        max_events: int,
        max_bytes: int,
        idle_seconds: float = 86_400,
    ) -> None:
        """``idle_seconds``: a session with no socket and no event for that long is
        forgotten (its history freed; its seq continues from the next reserved block)."""
        self._reserve = reserve
        self._history_args = (min_events, min_seconds, max_events, max_bytes)
        self._idle = idle_seconds
        self._channels: dict[str, _Channel] = {}
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._runs: set[str] = set()
        self._watchers: dict[str, list[ControlHandler]] = {}
        self._next_sweep = 0.0
        self._seq_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    async def __aenter__(self) -> MemoryChannels:
        return self

    async def __aexit__(self, *exc: object) -> None:
        for chan in self._channels.values():
            chan.drop()
        self._channels.clear()

    async def _channel(self, session_id: str) -> _Channel:
        chan = self._channels.get(session_id)
        if chan is None or chan.last_seq >= chan.seq_limit:
            lock = self._seq_locks.setdefault(session_id, asyncio.Lock())
            async with lock:
                chan = self._channels.get(session_id)
                if chan is None:
                    chan = _Channel(History(*self._history_args))
                    chan.last_seq = chan.seq_limit = await self._reserve(session_id, SEQ_BLOCK)
                    chan.seq_limit += SEQ_BLOCK
                    self._channels[session_id] = chan
                elif chan.last_seq >= chan.seq_limit:
                    chan.seq_limit = await self._reserve(session_id, SEQ_BLOCK) + SEQ_BLOCK
        return chan

    def held(self) -> tuple[int, int]:
        histories = [chan.history for chan in self._channels.values()]
        return sum(map(len, histories)), sum(h.size for h in histories)

    async def emit(self, session_id: str, frame: dict[str, Any]) -> Event:
        chan = await self._channel(session_id)
        # From here to the end there is no await: seq order is delivery order.
        chan.last_seq += 1
        frame["session_id"] = session_id
        frame["seq"] = chan.last_seq
        frame["ts"] = rfc3339(utcnow())
        now = chan.last_emit = time.monotonic()
        event = Event(chan.last_seq, frame["type"], encode(frame), now)
        chan.history.append(event)
        for sub in tuple(chan.subscribers):
            sub.deliver(event)
        self._sweep(now)
        return event

    async def join(self, session_id: str, sub: Subscriber, after: int | None) -> Joined:
        chan = await self._channel(session_id)
        chan.subscribers.add(sub)
        replay = None if after is None else chan.history.since(after, chan.last_seq)
        self._presence(chan, joining=sub)
        return Joined(chan.last_seq, replay, len(chan.subscribers))

    async def leave(self, session_id: str, sub: Subscriber) -> None:
        chan = self._channels.get(session_id)
        if chan is not None and sub in chan.subscribers:
            chan.subscribers.discard(sub)
            self._presence(chan)

    async def close_session(self, session_id: str, code: int, reason: str) -> None:
        chan = self._channels.pop(session_id, None)
        if chan is not None:
            chan.drop()
            for sub in tuple(chan.subscribers):
                sub.close(code, reason)

    def close_local(self, code: int, reason: str) -> None:
        for chan in self._channels.values():
            for sub in tuple(chan.subscribers):
                sub.close(code, reason)

    @asynccontextmanager
    async def lock(self, session_id: str) -> AsyncIterator[bool]:
        lock = self._locks.setdefault(session_id, asyncio.Lock())
        async with lock:
            yield session_id in self._runs

    async def acquire_run(self, session_id: str) -> bool:
        if session_id in self._runs:
            return False
        self._runs.add(session_id)
        return True

    async def release_run(self, session_id: str) -> None:
        self._runs.discard(session_id)

    async def run_active(self, session_id: str) -> bool:
        return session_id in self._runs

    async def signal(self, session_id: str, kind: str) -> None:
        for handler in tuple(self._watchers.get(session_id, ())):
            handler(kind)

    @asynccontextmanager
    async def watch(self, session_id: str, handler: ControlHandler) -> AsyncIterator[None]:
        handlers = self._watchers.setdefault(session_id, [])
        handlers.append(handler)
        try:
            yield
        finally:
            handlers.remove(handler)
            if not handlers:
                del self._watchers[session_id]

    def _presence(self, chan: _Channel, joining: Subscriber | None = None) -> None:
        """Tell every socket the new count (a joining one learns it from ``hello``)."""
        event = Event(0, "presence", encode({"type": "presence", "viewers": len(chan.subscribers)}))
        chan.presence.offer(event, skip=joining)

    def _sweep(self, now: float) -> None:
        """Forget channels nobody follows once their history window has passed."""
        if now < self._next_sweep:
            return
        self._next_sweep = now + min(self._idle / 4, 60.0)
        horizon = now - self._idle
        idle = [
            sid
            for sid, chan in self._channels.items()
            if not chan.subscribers and chan.last_emit < horizon
        ]
        for sid in idle:
            self._channels.pop(sid).drop()
