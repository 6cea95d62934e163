"""Autonomy levels, approvals, steering and user tools, over real sockets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.helpers import Api, Frame, RunningServer, WSClient, standin_settings
from tests.standin_anthropic import AnthropicStandIn, Text, ToolCalls

TIME: tuple[str, str, dict[str, Any]] = ("toolu_t", "current_time", {})
NOTE: tuple[str, str, dict[str, Any]] = ("toolu_n", "session_note", {"note": "tea is hot"})


def kinds(client: WSClient) -> list[str]:
    return [e["type"] if e["type"] != "status" else e["status"] for e in client.events()]


def results(client: WSClient) -> dict[str, Frame]:
    return {e["call_id"]: e for e in client.events() if e["type"] == "tool_result"}


async def start(api: Api, level: int) -> tuple[dict[str, Any], WSClient]:
    created = await api.create(autonomy_level=level)
    return created, await api.join(created)


@pytest.mark.parametrize(
    ("level", "calls", "waits", "refused"),
    [
        (0, [TIME, NOTE], False, {"toolu_n"}),
        (1, [TIME], False, set()),
        (1, [TIME, NOTE], True, set()),
        (2, [TIME, NOTE], False, set()),
        (2, [TIME, ("toolu_t2", "current_time", {}), NOTE], True, set()),
        (
            2,
            [TIME, ("toolu_t2", "current_time", {}), ("toolu_t3", "current_time", {})],
            False,
            set(),
        ),
        (3, [TIME, ("toolu_t2", "current_time", {}), NOTE], False, set()),
    ],
)
async def test_autonomy_matrix(
    claude: Api,
    standin: AnthropicStandIn,
    level: int,
    calls: list[Any],
    waits: bool,
    refused: set[str],
) -> None:
    """Each level runs reads, and refuses, asks for or runs changes as PROTOCOL.md's table says."""
    standin.push(ToolCalls(calls), Text(["ok"]))
    _created, owner = await start(claude, level)
    await owner.message("go", "c-1")
    if waits:
        required = await owner.until_type("approval_required")
        assert [c["call_id"] for c in required["calls"]] == ["toolu_n"]
        assert (await owner.until_type("status"))["status"] == "waiting_approval"
        assert not results(owner)  # nothing ran before the owner's answer
        await owner.send({"type": "approve", "approval_id": required["approval_id"]})
    end = await owner.until_idle()
    assert "approval_required" in kinds(owner) if waits else "approval_required" not in kinds(owner)
    got = results(owner)
    assert set(got) == {c[0] for c in calls}
    assert {cid for cid, r in got.items() if r["is_error"]} == refused
    if refused:
        assert "read_only" in got["toolu_n"]["output"]
    assert end["status"] == "completed"  # a refused call is not a failed tool


async def test_approve_runs_the_change_and_the_order_of_events(
    claude: Api, standin: AnthropicStandIn
) -> None:
    """approval_required, waiting_approval, approval_resolved, executing, then the tool runs."""
    standin.push(ToolCalls([NOTE]), Text(["noted"]))
    created, owner = await start(claude, 1)
    await owner.message("remember tea", "c-1")
    required = await owner.until_type("approval_required")
    await owner.send({"type": "approve", "approval_id": required["approval_id"]})
    await owner.until_idle()
    sequence = kinds(owner)
    i = sequence.index("approval_required")
    assert sequence[i : i + 5] == [
        "approval_required",
        "waiting_approval",
        "approval_resolved",
        "executing",
        "tool_call",
    ]
    resolved = next(e for e in owner.events() if e["type"] == "approval_resolved")
    assert resolved["approved"] is True
    session = (
        await claude.http.get(
            f"/agent/session/{created['session_id']}",
            headers={"Authorization": f"Bearer {created['owner_token']}"},
        )
    ).json()
    assert [n["note"] for n in session["context"]["notes"]] == ["tea is hot"]
    await owner.send({"type": "approve", "approval_id": required["approval_id"], "id": 9})
    again = await owner.until_type("error")
    assert again["code"] == "unknown_approval" and again["ref"] == 9


async def test_reject_sends_error_results_and_the_run_goes_on(
    claude: Api, standin: AnthropicStandIn
) -> None:
    """reject: the model gets is_error tool_result blocks saying the user declined."""
    standin.push(ToolCalls([NOTE]), Text(["fine, I won't"]))
    _created, owner = await start(claude, 1)
    await owner.message("remember tea", "c-1")
    required = await owner.until_type("approval_required")
    await owner.send(
        {"type": "reject", "approval_id": required["approval_id"], "reason": "not now"}
    )
    assert (await owner.until_idle())["status"] == "completed"
    resolved = next(e for e in owner.events() if e["type"] == "approval_resolved")
    assert resolved == {**resolved, "approved": False, "reason": "not now"}
    requests = await standin.wait_for_requests(2)
    result = requests[1]["messages"][-1]["content"][0]
    assert result["type"] == "tool_result" and result["is_error"] is True
    assert "declined" in result["content"] and "not now" in result["content"]


async def test_interrupt_while_waiting_cancels_the_approval(
    claude: Api, standin: AnthropicStandIn
) -> None:
    """interrupt during waiting_approval: approval_resolved(false), then interrupted."""
    standin.push(ToolCalls([NOTE]))
    _created, owner = await start(claude, 1)
    await owner.message("remember tea", "c-1")
    required = await owner.until_type("approval_required")
    await owner.send({"type": "interrupt"})
    assert (await owner.until_idle())["status"] == "interrupted"
    resolved = next(e for e in owner.events() if e["type"] == "approval_resolved")
    assert resolved["approved"] is False and resolved["approval_id"] == required["approval_id"]
    assert kinds(owner)[-2:] == ["message", "interrupted"]
    await owner.send({"type": "approve", "approval_id": required["approval_id"]})
    assert (await owner.until_type("error"))["code"] == "unknown_approval"


async def test_viewer_sees_the_prompt_but_cannot_answer(
    claude: Api, standin: AnthropicStandIn
) -> None:
    """A viewer's approve is forbidden; the owner's reconnect still shows the pending approval."""
    standin.push(ToolCalls([NOTE]), Text(["done"]))
    created, owner = await start(claude, 1)
    viewer = await claude.join(created, "viewer")
    await owner.message("remember tea", "c-1")
    required = await viewer.until_type("approval_required")
    await viewer.send({"type": "approve", "approval_id": required["approval_id"]})
    assert (await viewer.until_type("error"))["code"] == "forbidden"
    await owner.close()
    back = await claude.connect(created["session_id"], created["owner_token"])
    hello = await back.recv()
    assert hello["pending_approval"] == {
        "approval_id": required["approval_id"],
        "calls": required["calls"],
    }
    assert hello["status"] == "waiting_approval"
    assert (await back.recv())["pending_approval"] == hello["pending_approval"]
    await back.send({"type": "approve", "approval_id": required["approval_id"]})
    assert (await viewer.until_idle())["status"] == "completed"


async def test_approval_survives_a_server_restart(
    tmp_path: Path, standin: AnthropicStandIn
) -> None:
    """A pending approval is durable: after a restart the owner approves and the run goes on."""
    settings = standin_settings(tmp_path, standin)
    standin.push(ToolCalls([NOTE]), Text(["noted after restart"]))
    async with RunningServer(settings) as server, Api(server.base_url) as api:
        created, owner = await start(api, 1)
        await owner.message("remember tea", "c-1")
        required = await owner.until_type("approval_required")
        await owner.until_status("waiting_approval")
        await server.restart()
        back = await api.connect(created["session_id"], created["owner_token"])
        hello = await back.recv()
        assert hello["status"] == "waiting_approval"
        assert hello["pending_approval"]["approval_id"] == required["approval_id"]
        await back.recv()  # snapshot
        await back.send({"type": "approve", "approval_id": required["approval_id"]})
        assert (await back.until_idle())["status"] == "completed"
        requests = await standin.wait_for_requests(2)
        assert requests[1]["messages"][-1]["content"][0]["tool_use_id"] == "toolu_n"


async def test_patch_changes_the_autonomy_level_and_announces_it(api: Api) -> None:
    """PATCH autonomy_level (owner only) emits an autonomy event; the demo note then runs."""
    created = await api.create()
    owner = await api.join(created)
    url = f"/agent/session/{created['session_id']}"
    as_viewer = await api.http.patch(
        url,
        json={"autonomy_level": 3},
        headers={"Authorization": f"Bearer {created['viewer_token']}"},
    )
    assert as_viewer.status_code == 403
    bad = await api.http.patch(
        url,
        json={"autonomy_level": 7},
        headers={"Authorization": f"Bearer {created['owner_token']}"},
    )
    assert bad.status_code == 422
    ok = await api.http.patch(
        url,
        json={"autonomy_level": 3},
        headers={"Authorization": f"Bearer {created['owner_token']}"},
    )
    assert ok.json() == {"id": created["session_id"], "autonomy_level": 3}
    event = await owner.until_type("autonomy")
    assert event["autonomy_level"] == 3 and event["previous"] == 1
    await owner.message("remember that the sky is green", "c-1")
    await owner.until_idle()
    assert "approval_required" not in kinds(owner)


async def test_demo_model_asks_for_approval_by_default(api: Api) -> None:
    """Offline, "remember that ..." calls session_note, which waits at the default level."""
    created = await api.create()
    owner = await api.join(created)
    await owner.message("remember that the sky is green", "c-1")
    required = await owner.until_type("approval_required")
    assert required["calls"][0]["name"] == "session_note"
    await owner.send({"type": "approve", "approval_id": required["approval_id"]})
    assert (await owner.until_idle())["status"] == "completed"


async def test_steering_joins_the_running_turn(claude: Api, standin: AnthropicStandIn) -> None:
    """A steer message is echoed at once (steered: true) and the model's next call carries it."""
    standin.push(ToolCalls([NOTE]), Text(["blue it is"]))
    _created, owner = await start(claude, 1)
    await owner.message("remember a colour", "c-1")
    required = await owner.until_type("approval_required")
    await owner.message("actually, make it blue", "c-2", on_busy="steer")
    echo = await owner.until(lambda f: f["type"] == "message" and f["message"].get("steered"))
    assert echo["message"]["client_id"] == "c-2"
    await owner.send({"type": "approve", "approval_id": required["approval_id"]})
    assert (await owner.until_idle())["status"] == "completed"
    assert "queued" not in kinds(owner)
    requests = await standin.wait_for_requests(2)
    last_user = requests[1]["messages"][-1]
    texts = [b.get("text") for b in last_user["content"] if b["type"] == "text"]
    assert texts == ["actually, make it blue"]
    assert last_user["content"][0]["type"] == "tool_result"
    assert len(requests) == 2  # steering did not start a turn of its own


async def test_user_tools_load_from_ra_tools_and_time_out(
    tmp_path: Path, standin: AnthropicStandIn
) -> None:
    """RA_TOOLS loads @tool functions; a slow tool hits the per-call timeout as an error result."""
    settings = standin_settings(
        tmp_path,
        standin,
        tools="tests.web.user_tools:TOOLS",
        tool_timeout_seconds=0.2,
    )
    standin.push(ToolCalls([("toolu_s", "slow_lookup", {"key": "k"})]), Text(["too slow"]))
    async with RunningServer(settings) as server, Api(server.base_url) as api:
        listed = (await api.http.get("/agent/tools")).json()["tools"]
        by_name = {t["name"]: t for t in listed}
        assert by_name["add_item"]["changes"] is True
        assert by_name["slow_lookup"]["changes"] is False
        _created, owner = await start(api, 1)
        await owner.message("look it up", "c-1")
        assert (await owner.until_idle())["status"] == "completed_with_errors"
        result = results(owner)["toolu_s"]
        assert result["is_error"] is True and "timed out" in result["output"]
