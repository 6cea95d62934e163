"""The session service: the one door to the store and the channel layer.

Every change of durable session state is written to the store and then
announced as an event, both under the session's channel lock, so a snapshot
taken under the same lock always agrees with its ``last_seq``. Runs are
owned here: one drain task per busy session takes queued messages in turn
and runs each through the :class:`~realtime_agent.runtime.Agent`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from .aio import wait_unless
from .approvals import Decision
from .channels.base import ChannelLayer, Joined, Subscriber
from .errors import Unavailable, describe
from .models import (
    AutonomyLevel,
    Message,
    Session,
    SessionStatus,
    new_message_id,
    new_session_id,
)
from .protocol import CloseCode, ErrorCode, FrameError, OnBusy, RunErrorCode
from .runtime import Agent, answer_unanswered, finish_interrupted
from .store.base import Store
from .turn import Turn, announce_status

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Welcome:
    """What a joining socket is told first: the session, and a replay or a snapshot."""

    session: Session
    joined: Joined
    snapshot: list[Message] | None


@dataclass(slots=True)
class _Drain:
    """The task running a session's queued messages one turn at a time."""

    task: asyncio.Task[None] | None = None
    run: Turn | None = None
    more: bool = False  # a message arrived while the drain looked for the next one
    last_end: int = 0  # the position of the last message the previous turn stored
    deleted: bool = False


class SessionService:
    """Create, read, archive sessions; accept messages; own their runs."""

    def __init__(
        self,
        store: Store,
        channels: ChannelLayer,
        agent: Agent,
        *,
        rescan_seconds: float | None = None,
        max_queued: int = 20,
        max_runs: int = 64,
    ) -> None:
        """``rescan_seconds``: how often to look for runs whose process died (several
        processes share the sessions); ``None`` looks once, at start-up."""
        self.store = store
        self.channels = channels
        self.agent = agent
        self._rescan = rescan_seconds
        self._max_queued = max_queued
        self._run_slots = asyncio.Semaphore(max_runs)  # more runs than this wait their turn
        self._drains: dict[str, _Drain] = {}
        self._watchdog: asyncio.Task[None] | None = None
        self._closing = False  # a shutdown began: no new turn starts

    async def __aenter__(self) -> SessionService:
        await self.recover()
        if self._rescan is not None:
            self._watchdog = asyncio.create_task(self._watch_leases(self._rescan))
        return self

    async def finish_runs(self, grace: float, hurry: asyncio.Event) -> None:
        """Let runs in progress end by themselves for up to ``grace`` seconds, or
        until ``hurry`` is set.

        From now on no new turn starts here: messages are stored and acknowledged
        and wait in the queue for the next process (or this one after a restart).
        """
        self._closing = True
        running = [d.task for d in self._drains.values() if d.task is not None and d.run]
        if not running:
            return
        # Cancelling asyncio.wait leaves the runs be.
        if await wait_unless(asyncio.wait(running), hurry, grace) == "hurried":
            log.warning("a second signal: the runs still going are interrupted now")

    async def stop_runs(self) -> None:
        """Interrupt every run now (partial text kept) and wait for them to end."""
        tasks = [d.task for d in self._drains.values() if d.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def __aexit__(self, *exc: object) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            await asyncio.gather(self._watchdog, return_exceptions=True)
        await self.stop_runs()

    async def recover(self) -> None:
        """Start a drain for every session left running or with waiting messages.

        A drain that gets the run lease of a session still marked running knows
        its previous run died with its process and closes it (``run_lost``).
        """
        for sid in await self.store.sessions_needing_attention():
            if sid not in self._drains and not await self.channels.run_active(sid):
                self._ensure_drain(sid, from_queue=True)

    async def _watch_leases(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            try:
                await self.recover()
            except Exception:  # the store or Redis is down: try again next round
                log.warning("looking for lost runs failed", exc_info=True)

    # --- reads and lifecycle ---------------------------------------------------

    async def create(self, character_id: int, autonomy: AutonomyLevel) -> Session:
        session = Session(id=new_session_id(), character_id=character_id, autonomy_level=autonomy)
        await self.store.create_session(session)
        return session

    async def get(self, session_id: str) -> Session | None:
        return await self.store.get_session(session_id)

    async def transcript(self, session_id: str) -> list[Message]:
        return await self.store.list_messages(session_id)

    async def delete(self, session_id: str) -> bool:
        """Archive the session, stop its run and close its sockets with 4404."""
        async with self.channels.lock(session_id):  # a join either sees it gone or is closed
            if not await self.store.archive_session(session_id):
                return False
            await self.channels.close_session(
                session_id, CloseCode.SESSION_DELETED, "session deleted"
            )
        drain = self._drains.pop(session_id, None)
        if drain is not None and drain.task is not None:
            drain.deleted = True
            drain.task.cancel()
            await asyncio.gather(drain.task, return_exceptions=True)
        else:
            await self.channels.signal(session_id, "delete")
        return True

    async def join(self, session_id: str, sub: Subscriber, after: int | None) -> Welcome | None:
        """Register a socket; ``None`` if the session is gone."""
        async with self.channels.lock(session_id):
            session = await self.store.get_session(session_id)
            if session is None:
                return None
            joined = await self.channels.join(session_id, sub, after)
            snapshot = None
            if joined.replay is None:
                snapshot = await self.store.list_messages(session_id)
        return Welcome(session, joined, snapshot)

    async def leave(self, session_id: str, sub: Subscriber) -> None:
        await self.channels.leave(session_id, sub)

    # --- messages and runs ------------------------------------------------------

    async def busy(self, session_id: str) -> bool:
        """Whether a run is in progress, here or on another process."""
        here = self._running_here(session_id)
        return here if here is not None else await self.channels.run_active(session_id)

    def _running_here(self, session_id: str) -> bool | None:
        """Whether this process's drain of the session is in a run; ``None`` when the
        session has no drain here (only the channel layer knows then)."""
        drain = self._drains.get(session_id)
        return None if drain is None else drain.run is not None

    async def submit(
        self, session_id: str, content: str, client_id: str, on_busy: OnBusy = "queue"
    ) -> tuple[Message, bool]:
        """Store a user message, echo it, and run it now or after the current run.

        Returns the stored message and whether it is new (a repeated
        ``client_id`` is stored and run once). Raises :class:`FrameError`
        ``busy`` for ``on_busy="reject"`` during a run (nothing stored).
        """
        async with self.channels.lock(session_id) as run_active:
            here = self._running_here(session_id)  # busy(), without another round trip
            busy = here if here is not None else run_active
            if busy and on_busy == "reject":
                raise FrameError(ErrorCode.BUSY, "a run is in progress and on_busy is 'reject'")
            if busy and on_busy in ("queue", "interrupt"):
                queued_now = len(await self.store.pending(session_id))
                if queued_now >= self._max_queued:
                    raise FrameError(
                        ErrorCode.BUSY,
                        f"the queue is full ({queued_now} messages wait); try later",
                    )
            steer = busy and on_busy == "steer"
            message = Message(
                id=new_message_id(),
                session_id=session_id,
                role="user",
                content=content,
                client_id=client_id,
                priority=1 if busy and on_busy == "interrupt" else 0,
                steered=steer,
            )
            if steer:  # join the running turn: the model sees it at its next call
                message.turn = await self.store.current_turn(session_id)
            stored, created = await self.store.append_message(message)
            if created:
                await self.channels.emit(
                    session_id, {"type": "message", "message": stored.to_wire()}
                )
                if busy and on_busy in ("queue", "steer") and not stored.steered:
                    waiting = await self.store.pending(session_id)
                    position = next(
                        (i for i, m in enumerate(waiting, 1) if m.id == stored.id), None
                    )
                    if position is not None:  # None: the run already took it (another process)
                        await self.channels.emit(
                            session_id,
                            {"type": "queued", "client_id": client_id, "position": position},
                        )
        if created:
            if busy and on_busy == "interrupt":
                await self.interrupt(session_id)
            self._ensure_drain(session_id)
        return stored, created

    async def interrupt(self, session_id: str) -> None:
        """Cancel the run in progress, wherever it runs; queued messages stay queued."""
        await self.channels.signal(session_id, "interrupt")

    async def answer_approval(self, session_id: str, approval_id: str, decision: Decision) -> None:
        """The owner's answer to the pending approval, sent to the run wherever it runs.

        Raises :class:`FrameError` ``unknown_approval`` when no approval with that
        id is pending (never was, or was answered already).
        """
        session = await self.store.get_session(session_id)
        pending = session.pending_approval if session is not None else None
        if pending is None or pending["approval_id"] != approval_id:
            raise FrameError(
                ErrorCode.UNKNOWN_APPROVAL, f"no pending approval with id {approval_id!r}"
            )
        verdict = "approve" if decision.approved else "reject"
        await self.channels.signal(session_id, f"{verdict}|{approval_id}|{decision.reason or ''}")

    async def revoke_viewers(self, session_id: str) -> int:
        """Make every viewer token issued so far invalid and close open viewer sockets."""
        generation = await self.store.bump_viewer_generation(session_id)
        await self.channels.signal(session_id, f"revoke-viewers|{generation}")
        return generation

    async def set_autonomy(self, session_id: str, level: AutonomyLevel) -> Session | None:
        """Change the autonomy level and announce it (an ``autonomy`` event)."""
        async with self.channels.lock(session_id):
            session = await self.store.get_session(session_id)
            if session is None:
                return None
            await self.store.set_autonomy(session_id, level)
            await self.channels.emit(
                session_id,
                {
                    "type": "autonomy",
                    "autonomy_level": int(level),
                    "previous": int(session.autonomy_level),
                },
            )
            session.autonomy_level = level
            return session

    def _on_signal(self, session_id: str, signal: str) -> None:
        drain = self._drains.get(session_id)
        if drain is None:
            return
        kind, _, arg = signal.partition("|")
        run = drain.run
        if kind == "interrupt" and run is not None and run.task is not None:
            run.task.cancel()
        elif kind == "delete" and drain.task is not None:
            drain.deleted = True
            drain.task.cancel()
        elif kind == "lease-lost" and drain.task is not None:
            drain.task.cancel()  # another process may run this session now: stop here
        elif kind in ("approve", "reject") and run is not None:
            approval_id, _, reason = arg.partition("|")
            run.decide(approval_id, Decision(kind == "approve", reason or None))

    def _ensure_drain(self, session_id: str, *, from_queue: bool = False) -> None:
        if self._closing:
            return
        drain = self._drains.get(session_id)
        if drain is not None:
            drain.more = True
            return
        drain = self._drains[session_id] = _Drain()
        drain.task = asyncio.create_task(
            self._drain(session_id, drain, recovered=from_queue), name=f"drain {session_id}"
        )

    async def _drain(self, session_id: str, drain: _Drain, *, recovered: bool) -> None:
        """Run the session's waiting messages, one turn at a time, under its run lease."""
        try:
            while await self.channels.acquire_run(session_id):
                try:
                    async with self.channels.watch(
                        session_id, lambda kind: self._on_signal(session_id, kind)
                    ):
                        read = await self._close_lost_run(session_id, drain)
                        await self._turns(session_id, drain, recovered, read)
                finally:
                    await asyncio.shield(self.channels.release_run(session_id))
                # A message stored by another process while we held the lease
                # found it taken and left the message to us.
                if self._closing or not await self.store.pending(session_id):
                    return
                recovered = True  # those messages waited in the queue
        except Unavailable as exc:  # the watchdog (or the next message) starts it again
            log.warning("queue of %s stopped: %s", session_id, exc)
        except Exception:  # the one broad catch of a drain: log it, never lose it silently
            log.exception("queue of %s failed", session_id)
        finally:
            if self._drains.get(session_id) is drain:
                del self._drains[session_id]

    async def _close_lost_run(self, session_id: str, drain: _Drain) -> Session | None:
        """We hold the lease, yet the session says running: its process died mid-run.

        A turn that was waiting for the owner's approval is taken up again (the
        approval is durable); any other is closed with ``run_lost``. Returns the
        session as read when there was nothing to close: only the lease holder
        changes a status, so the first turn may start from it.
        """
        session = await self.store.get_session(session_id)
        if session is None or not session.status.running:
            return session
        approval = session.pending_approval
        if session.status == SessionStatus.WAITING_APPROVAL and approval is not None:
            turn = await self.store.current_turn(session_id)
            run = drain.run = Turn(self.store, self.channels, session_id, turn, session.status)
            try:
                async with self._run_slots:
                    await self._run(drain, run, self.agent.resume_turn(run, run.state, approval))
            finally:
                drain.run = None
            return None
        if session.status.running:
            log.warning("run of %s was lost with its process; closing it", session_id)
            async with self.channels.lock(session_id):
                await self.channels.emit(
                    session_id,
                    {
                        "type": "error",
                        "code": RunErrorCode.RUN_LOST.value,
                        "message": "the server stopped during this run",
                    },
                )
                await announce_status(
                    self.store, self.channels, session_id, SessionStatus.ERROR, session.status
                )
        return None

    async def _turns(
        self, session_id: str, drain: _Drain, recovered: bool, read: Session | None
    ) -> None:
        """Run waiting messages one turn at a time; ``read``: the session as read just
        now under this lease (saves the first turn reading it again)."""
        while not self._closing:
            drain.more = False
            message = await self.store.take_next(session_id)
            if message is None:
                if drain.more:
                    continue
                return
            assert message.turn is not None
            session, read = read or await self.store.get_session(session_id), None
            if session is None:
                return
            run = drain.run = Turn(
                self.store, self.channels, session_id, message.turn, session.status
            )
            # From the queue: it arrived while the previous turn was still storing messages.
            queued = message.priority == 0 and (recovered or message.position < drain.last_end)
            recovered = False
            try:
                async with self._run_slots:
                    await self._run(drain, run, self.agent.run_turn(run, run.state, queued=queued))
            finally:
                drain.run = None
                drain.last_end = max(drain.last_end, run.last_position)

    async def _run(self, drain: _Drain, run: Turn, turn: Coroutine[Any, Any, None]) -> None:
        task = run.task = asyncio.create_task(turn)
        try:
            await asyncio.wait([task])
        except asyncio.CancelledError:  # shutdown or delete: interrupt the turn, then stop
            waiting = run.state.approval_id is not None
            task.cancel()
            await asyncio.wait([task])
            # A turn waiting for the owner stays waiting: the approval is durable and
            # the next process to take the session's lease picks the turn up again.
            if not drain.deleted and not waiting:
                await asyncio.shield(self._finish(run, task))
            raise
        await self._finish(run, task)

    async def _finish(self, run: Turn, task: asyncio.Task[None]) -> None:
        """Store what a turn left when it was interrupted or crashed."""
        if run.inflight:
            await asyncio.wait(run.inflight)
        try:  # a status the turn started and never waited for: its end is written below
            await run.status_written()
        except Exception as failed:
            log.error("a status of %s could not be written: %s", run.session_id, describe(failed))
        if task.cancelled():
            await finish_interrupted(run, run.state)
        elif (exc := task.exception()) is not None:
            log.error("run of %s crashed", run.session_id, exc_info=exc)
            await answer_unanswered(run, run.state, "not run: the server failed during this run")
            await run.fail(RunErrorCode.INTERNAL, "the server failed during this run")
            await run.set_status(SessionStatus.ERROR)
