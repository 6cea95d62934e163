"""A model that hangs or drops its stream halfway: clients get an error, nothing is lost."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from tests.helpers import TIMEOUT, Api, RunningServer, standin_settings
from tests.standin_anthropic import AnthropicStandIn, Drop, Hang, Text


async def _transcript(api: Api, created: dict[str, str]) -> list[dict[str, object]]:
    response = await api.http.get(
        f"/agent/session/{created['session_id']}",
        headers={"Authorization": f"Bearer {created['owner_token']}"},
    )
    messages: list[dict[str, object]] = response.json()["messages"]
    return messages


async def test_a_hanging_model_times_out_into_an_error(
    tmp_path: Path, standin: AnthropicStandIn
) -> None:
    """A stream that stops answering ends with llm_error after RA_LLM_TIMEOUT_SECONDS."""
    settings = standin_settings(
        tmp_path,
        standin,
        llm_timeout_seconds=0.5,
    )
    standin.push(Hang(), Text(["fine now"]))
    async with RunningServer(settings) as server, Api(server.base_url) as api:
        created = await api.create()
        owner = await api.join(created)
        await owner.message("hello?", "c-1")
        assert (await owner.until_idle())["status"] == "error"
        error = next(e for e in owner.events() if e["type"] == "error")
        assert error["code"] == "llm_error" and "in time" in error["message"]
        await owner.message("again", "c-2")
        assert (await owner.until_idle())["status"] == "completed"
        users = [m["content"] for m in await _transcript(api, created) if m["role"] == "user"]
        assert users == ["hello?", "again"]


async def test_a_dropped_stream_keeps_its_partial_text(
    claude: Api, standin: AnthropicStandIn
) -> None:
    """A stream cut halfway: the partial text is kept once, the run ends in llm_error."""
    standin.push(Drop(["half ", "a reply "]), Text(["whole reply"]))
    created = await claude.create()
    owner = await claude.join(created)
    await owner.message("talk", "c-1")
    assert (await owner.until_idle())["status"] == "error"
    await owner.message("again", "c-2")
    assert (await owner.until_idle())["status"] == "completed"
    messages = await _transcript(claude, created)
    assert [(m["role"], m["content"]) for m in messages] == [
        ("user", "talk"),
        ("assistant", "half a reply "),
        ("user", "again"),
        ("assistant", "whole reply"),
    ]


async def test_the_model_is_asked_while_the_turns_status_is_written(
    tmp_path: Path, standin: AnthropicStandIn
) -> None:
    """A turn starts writing its status and asks the model at once: with the
    session's lock held (the status write waits for it), the model still gets the
    request. Its reply waits for the status, so clients see the status first."""
    standin.push(Text(["answered"]))
    async with (
        RunningServer(standin_settings(tmp_path, standin)) as server,
        Api(server.base_url) as api,
    ):
        created = await api.create()
        owner = await api.join(created)
        session_id, c = created["session_id"], server.components
        async with contextlib.AsyncExitStack() as held:
            await c.sessions.submit(session_id, "go", "c-1")
            # Taken before the turn runs: its status write will wait for it.
            await held.enter_async_context(c.channels.lock(session_id))
            async with asyncio.timeout(TIMEOUT):  # not after the lock is given back
                await standin.wait_for_requests(1)
            assert not any(e["type"] in ("status", "delta") for e in owner.events())
        assert (await owner.until_idle())["status"] == "completed"
        kinds = [
            (e["type"], e.get("status")) for e in owner.events() if e["type"] in ("status", "delta")
        ]
        assert kinds == [("status", "planning"), ("delta", None), ("status", "completed")]
