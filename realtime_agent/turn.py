"""One turn in progress, as the agent loop sees its session (the ``TurnIO``).

Every durable change is written to the store, then announced, under the
session's lock; those writes run to their end even when the turn is
interrupted meanwhile (:meth:`Turn._complete`), so an interrupt never leaves
half a message or an event without its write.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from .approvals import Decision
from .channels.base import ChannelLayer
from .models import AutonomyLevel, Message, SessionStatus
from .protocol import RunErrorCode
from .runtime import TurnState
from .store.base import Store


async def announce_status(
    store: Store,
    channels: ChannelLayer,
    session_id: str,
    status: SessionStatus,
    previous: SessionStatus,
) -> None:
    """Write a status, then emit its ``status`` event (the caller holds the session lock)."""
    await store.set_status(session_id, status)
    await channels.emit(
        session_id, {"type": "status", "status": status.value, "previous": previous.value}
    )


@dataclass(eq=False)
class Turn:
    """One turn in progress; the :class:`~realtime_agent.runtime.TurnIO` of the agent."""

    store: Store
    channels: ChannelLayer
    session_id: str
    turn: int
    status: SessionStatus
    state: TurnState = field(default_factory=TurnState)
    task: asyncio.Task[None] | None = None
    inflight: set[asyncio.Task[object]] = field(default_factory=set)
    last_position: int = 0
    _approval_id: str | None = None
    _decision: asyncio.Future[Decision] | None = None
    _statuses: list[asyncio.Task[object]] = field(default_factory=list)  # started, unchecked

    def _start(self, coro: Coroutine[Any, Any, object]) -> asyncio.Task[object]:
        """A durable write that runs to its end even if the turn is interrupted meanwhile."""
        task = asyncio.ensure_future(coro)
        self.inflight.add(task)
        task.add_done_callback(self.inflight.discard)
        return task

    def _complete(self, coro: Coroutine[Any, Any, object]) -> asyncio.Future[object]:
        """Run a durable write to its end even if the turn is interrupted meanwhile."""
        return asyncio.shield(self._start(coro))

    def start_status(self, status: SessionStatus) -> None:
        """Start writing and announcing ``status``, and return at once (the model is
        asked meanwhile). Every later write or event of the turn waits for it first
        (:meth:`status_written`), so clients see the status before what the turn
        does in it."""
        if status == self.status:
            return
        previous, self.status = self.status, status
        before = self._statuses[-1] if self._statuses else None
        self._statuses.append(self._start(self._announce_status(before, status, previous)))

    async def _announce_status(
        self, before: asyncio.Task[object] | None, status: SessionStatus, previous: SessionStatus
    ) -> None:
        if before is not None:  # announced after the one started before (which may fail alone)
            await asyncio.wait([before])
        await self._locked(
            announce_status(self.store, self.channels, self.session_id, status, previous)
        )

    async def status_written(self) -> None:
        """Wait until every status started so far is written and announced; raise the
        first that failed (each failure is raised once). A waiter cancelled meanwhile
        leaves them to the next one."""
        if not self._statuses:
            return
        started = list(self._statuses)
        await asyncio.wait(started)
        self._statuses = [task for task in self._statuses if task not in started]
        failures = [task.exception() for task in started if not task.cancelled()]
        if (failed := next((exc for exc in failures if exc is not None), None)) is not None:
            raise failed

    async def set_status(self, status: SessionStatus) -> None:
        self.start_status(status)
        await self.status_written()

    async def emit(self, frame: dict[str, Any]) -> None:
        if self._statuses:  # checked here: a delta with nothing pending makes no coroutine
            await self.status_written()
        await self.channels.emit(self.session_id, frame)

    async def add_message(self, message: Message, *, result: bool = False) -> None:
        await self.status_written()
        await self._complete(self._locked(self._add(message, result)))

    async def _add(self, message: Message, result: bool) -> None:
        stored, _ = await self.store.append_message(message)
        self.last_position = max(self.last_position, stored.position)
        if result:
            await self.channels.emit(
                self.session_id,
                {
                    "type": "tool_result",
                    "call_id": stored.call_id,
                    "output": stored.content,
                    "is_error": bool(stored.is_error),
                },
            )
        await self.channels.emit(self.session_id, {"type": "message", "message": stored.to_wire()})

    async def fail(self, code: RunErrorCode, text: str) -> None:
        await self.emit({"type": "error", "code": code.value, "message": text})

    async def conversation(self) -> list[Message]:
        return await self.store.conversation(self.session_id)

    async def context(self) -> dict[str, Any]:
        session = await self.store.get_session(self.session_id)
        return session.context if session is not None else {}

    async def save_context(self, context: dict[str, Any]) -> None:
        await self.status_written()
        await self._complete(self.store.set_context(self.session_id, context))

    async def autonomy(self) -> AutonomyLevel:
        session = await self.store.get_session(self.session_id)
        return session.autonomy_level if session is not None else AutonomyLevel.READ_ONLY

    async def ask_approval(self, approval: dict[str, Any], *, announce: bool) -> Decision:
        await self.status_written()
        self._approval_id = approval["approval_id"]
        self._decision = asyncio.get_running_loop().create_future()
        if announce:
            await self._complete(self._locked(self._announce(approval)))
        decision = await self._decision
        await self.resolve_approval(approval["approval_id"], decision)
        return decision

    async def _announce(self, approval: dict[str, Any]) -> None:
        await self.store.set_pending_approval(self.session_id, approval)
        await self.channels.emit(
            self.session_id,
            {
                "type": "approval_required",
                "approval_id": approval["approval_id"],
                "calls": approval["calls"],
            },
        )
        previous, self.status = self.status, SessionStatus.WAITING_APPROVAL
        await announce_status(self.store, self.channels, self.session_id, self.status, previous)

    def decide(self, approval_id: str, decision: Decision) -> None:
        """The owner answered (delivered by a control signal); stale answers are ignored."""
        if approval_id == self._approval_id and self._decision and not self._decision.done():
            self._decision.set_result(decision)

    async def resolve_approval(self, approval_id: str, decision: Decision) -> None:
        await self.status_written()
        self._approval_id = self.state.approval_id = None
        await self._complete(self._locked(self._resolve(approval_id, decision)))

    async def _resolve(self, approval_id: str, decision: Decision) -> None:
        await self.store.set_pending_approval(self.session_id, None)
        frame: dict[str, Any] = {
            "type": "approval_resolved",
            "approval_id": approval_id,
            "approved": decision.approved,
        }
        if decision.reason:
            frame["reason"] = decision.reason
        await self.channels.emit(self.session_id, frame)

    async def _locked(self, coro: Coroutine[Any, Any, None]) -> None:
        async with self.channels.lock(self.session_id):
            await coro
