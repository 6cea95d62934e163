"""Start-up recovery: a run the process died in is closed, waiting messages run."""

from __future__ import annotations

from pathlib import Path

from realtime_agent.models import Message, Session, SessionStatus, new_message_id
from realtime_agent.store.sqlite import SQLiteStore
from tests.helpers import Api, RunningServer, settings_for


async def test_run_left_open_by_a_crash_is_closed_and_the_queue_runs(tmp_path: Path) -> None:
    """A session left 'planning' gets run_lost + error; its queued message then runs."""
    settings = settings_for(tmp_path)
    async with SQLiteStore(settings.database_url) as store:
        session = Session(id="sess-0123456789abcdef", character_id=1)
        await store.create_session(session)
        for client_id, content in (("c-1", "was running"), ("c-2", "was waiting")):
            await store.append_message(
                Message(
                    id=new_message_id(),
                    session_id=session.id,
                    role="user",
                    content=content,
                    client_id=client_id,
                )
            )
        taken = await store.take_next(session.id)
        assert taken is not None and taken.client_id == "c-1"
        await store.set_status(session.id, SessionStatus.PLANNING)
    async with RunningServer(settings) as server, Api(server.base_url) as api:
        token = server_token(server, session.id)
        viewer = await api.connect(session.id, token, after=0)
        hello = await viewer.recv()
        assert hello["resumed"] is True
        await viewer.until_status("completed")
        kinds = [
            (e["type"], e.get("code") or e.get("status"))
            for e in viewer.events()
            if e["type"] in ("error", "status")
        ]
        assert kinds == [
            ("error", "run_lost"),
            ("status", "error"),
            ("status", "executing_queued"),
            ("status", "planning"),
            ("status", "completed"),
        ]
        response = await api.http.get(
            f"/agent/session/{session.id}", headers={"Authorization": f"Bearer {token}"}
        )
        messages = response.json()["messages"]
        assert [m["role"] for m in messages] == ["user", "user", "assistant"]
        assert "was waiting" in messages[2]["content"]


def server_token(server: RunningServer, session_id: str) -> str:
    from realtime_agent.auth import TokenSigner

    secret = server.settings.secret
    assert secret is not None
    return TokenSigner(secret.get_secret_value().encode(), 3600).issue(session_id, "viewer")
