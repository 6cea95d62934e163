"""The channel layer contract: one small Protocol, two backends.

A backend numbers a session's events (``seq``), keeps a bounded recent history
for resume, and hands every event to each local subscriber of the session.
Delivery never awaits a socket: :meth:`Subscriber.deliver` only writes to a
buffer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..wsframe import text_frame

#: Reserve a block of ``n`` seq numbers for a session; returns the last seq that
#: may already have been used (the new block is ``start + 1 .. start + n``).
SeqReserver = Callable[[str, int], Awaitable[int]]
#: Receives a control signal (``kind`` or ``kind|argument``); must not block.
ControlHandler = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Event:
    """One encoded server frame. ``seq == 0`` marks a transient frame (presence)."""

    seq: int
    type: str
    text: str
    at: float = 0.0
    _frame: bytes | None = field(default=None, compare=False, repr=False)

    @property
    def frame(self) -> bytes:
        """The websocket frame carrying :attr:`text`, built on first use and shared
        by every socket the event is written to."""
        frame = self._frame
        if frame is None:
            frame = text_frame(self.text)
            object.__setattr__(self, "_frame", frame)  # a cache, not a change of value
        return frame


class Subscriber(Protocol):
    """A local socket of a session, as the channel layer sees it."""

    def deliver(self, event: Event) -> None:
        """Queue ``event`` for sending. Must not block or raise."""

    def close(self, code: int, reason: str) -> None:
        """Ask the socket to close with ``code`` (e.g. the session was deleted)."""


@dataclass(frozen=True, slots=True)
class Joined:
    """What a joining socket learns, atomically with its registration.

    ``replay`` holds every event after the requested ``after`` in order, or is
    ``None`` when they are not all available any more (send a snapshot instead).
    Live events with ``seq > last_seq`` reach the subscriber afterwards.
    """

    last_seq: int
    replay: list[Event] | None
    viewers: int


class ChannelLayer(Protocol):
    """Numbering, history and fan-out of session events."""

    #: Why the layer cannot serve right now (``None`` when healthy); ``/readyz`` shows it.
    problem: str | None

    def held(self) -> tuple[int, int]:
        """Resume history this process holds in memory: (events, bytes: text and frames)."""

    async def emit(self, session_id: str, frame: dict[str, Any]) -> Event:
        """Give ``frame`` the next ``seq`` and ``ts``, keep it in history, deliver it."""

    async def join(self, session_id: str, sub: Subscriber, after: int | None) -> Joined:
        """Register ``sub`` and answer what it missed since ``after``."""

    async def leave(self, session_id: str, sub: Subscriber) -> None:
        """Unregister ``sub``; is idempotent."""

    async def close_session(self, session_id: str, code: int, reason: str) -> None:
        """Close every socket of the session, on every process."""

    def close_local(self, code: int, reason: str) -> None:
        """Close every socket of this process (a shutdown)."""

    def lock(self, session_id: str) -> AbstractAsyncContextManager[bool]:
        """Serialise transcript changes with snapshots (held for milliseconds).

        Enters with whether a run held the session's lease (on any process) when
        the lock was taken: asked in the same round trip.
        """

    async def acquire_run(self, session_id: str) -> bool:
        """Take the session's run lease (one run at a time, across processes).

        The layer keeps a lease it granted alive until :meth:`release_run`.
        """

    async def release_run(self, session_id: str) -> None:
        """Give the run lease back; is idempotent."""

    async def run_active(self, session_id: str) -> bool:
        """Whether any process holds the session's run lease."""

    async def signal(self, session_id: str, kind: str) -> None:
        """Send a control signal (e.g. ``interrupt``) to the session's watchers everywhere."""

    def watch(self, session_id: str, handler: ControlHandler) -> AbstractAsyncContextManager[None]:
        """Call ``handler(kind)`` for every signal of the session while entered."""
