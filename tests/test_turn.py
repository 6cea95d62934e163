"""A turn's statuses, started without waiting, still go out before its later events."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from realtime_agent.models import SessionStatus
from realtime_agent.turn import Turn
from tests.helpers import Api, RunningServer, settings_for


async def test_a_status_still_being_written_goes_out_before_later_events(
    tmp_path: Path,
) -> None:
    """Statuses started one after another are announced in order, and an event the
    turn emits afterwards waits for them, even after a wait for them was cancelled
    (an interrupt or the model's timeout) while they were held up by the lock."""
    async with RunningServer(settings_for(tmp_path)) as server, Api(server.base_url) as api:
        created = await api.create()
        owner = await api.join(created)
        session_id, c = created["session_id"], server.components
        turn = Turn(c.sessions.store, c.channels, session_id, 1, SessionStatus.IDLE)
        async with contextlib.AsyncExitStack() as held:
            await held.enter_async_context(c.channels.lock(session_id))  # writes wait
            turn.start_status(SessionStatus.PLANNING)
            turn.start_status(SessionStatus.EXECUTING)
            with pytest.raises(TimeoutError):  # a waiter given up while they are held
                await asyncio.wait_for(turn.status_written(), 0.05)
            delta = {"type": "delta", "message_id": "msg-0123456789abcdef", "text": "after"}
            emitting = asyncio.create_task(turn.emit(delta))
        await emitting
        await owner.until(lambda e: e["type"] == "delta")
        kinds = [
            (e["type"], e.get("status")) for e in owner.events() if e["type"] in ("status", "delta")
        ]
        assert kinds == [("status", "planning"), ("status", "executing"), ("delta", None)]
        session = await c.sessions.store.get_session(session_id)
        assert session is not None and session.status == SessionStatus.EXECUTING
