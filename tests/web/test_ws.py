"""The websocket protocol end to end: a real server, real sockets, the real SDK."""

from __future__ import annotations

import asyncio
import gc
import secrets
from typing import Any

import jsonschema
import pytest
from websockets.exceptions import InvalidStatus

from realtime_agent.models import Message, Session
from realtime_agent.protocol import json_schema
from realtime_agent.web.wsprotocol import DirectWebSocketProtocol
from tests.helpers import TIMEOUT, Api, Frame, RunningServer, poll, standin_settings
from tests.standin_anthropic import AnthropicStandIn, Error, Text, ToolCalls

VALIDATOR = jsonschema.Draft202012Validator(json_schema())


def assert_valid_frames(frames: list[Frame]) -> None:
    for frame in frames:
        errors = list(VALIDATOR.iter_errors(frame))
        assert not errors, (frame, errors[0].message)


def contiguous(events: list[Frame]) -> bool:
    seqs = [e["seq"] for e in events]
    return seqs == list(range(seqs[0], seqs[0] + len(seqs)))


async def test_demo_conversation_streams_to_two_clients(api: Api) -> None:
    """Owner and viewer see identical events with contiguous seq; deltas join to the message."""
    created = await api.create()
    owner = await api.join(created)
    viewer = await api.join(created, "viewer")
    await owner.until_type("presence")
    await owner.message("hello there", "c-1")
    await owner.until_idle()
    await viewer.until_idle()
    assert owner.events() == viewer.events()
    events = owner.events()
    assert events[0]["seq"] == 1 and contiguous(events)
    reply = [e for e in events if e["type"] == "message" and e["message"]["role"] == "assistant"]
    assert len(reply) == 1
    deltas = "".join(e["text"] for e in events if e["type"] == "delta")
    assert deltas == reply[0]["message"]["content"]
    assert "offline demo model" in deltas
    statuses = [e["status"] for e in events if e["type"] == "status"]
    assert statuses == ["planning", "completed"]
    assert_valid_frames(owner.frames + viewer.frames)


async def test_demo_tool_round_trip(api: Api) -> None:
    """Asking the demo for the time runs current_time and answers with its result."""
    created = await api.create()
    owner = await api.join(created)
    await owner.message("What time is it?", "c-1")
    await owner.until_idle()
    kinds = [e["type"] for e in owner.events()]
    assert kinds.index("tool_call") < kinds.index("tool_result")
    result = next(e for e in owner.events() if e["type"] == "tool_result")
    assert result["is_error"] is False and "UTC" in result["output"]
    statuses = [e["status"] for e in owner.events() if e["type"] == "status"]
    assert statuses == ["planning", "executing", "planning", "completed"]
    tool_msg = [
        e["message"]
        for e in owner.events()
        if e["type"] == "message" and e["message"]["role"] == "tool"
    ]
    assert tool_msg[0]["call_id"] == result["call_id"] and tool_msg[0]["name"] == "current_time"
    assert_valid_frames(owner.frames)


async def test_resume_mid_stream_has_no_gap_and_no_duplicate(
    claude: Api, standin: AnthropicStandIn
) -> None:
    """A client that drops mid-stream and resumes with after=N sees every event exactly once."""
    chunks = [f"part {i}. " for i in range(10)]
    standin.push(Text(chunks, hold_after=4))
    created = await claude.create()
    owner = await claude.join(created)
    watcher = await claude.join(created, "viewer")
    await owner.message("tell me a story", "c-1")
    await watcher.until(lambda f: f["type"] == "delta" and "part 1. " in f["text"])
    last = watcher.events()[-1]["seq"]
    await watcher.close()
    standin.release()
    await owner.until_idle()
    resumed = await claude.connect(created["session_id"], created["viewer_token"], after=last)
    hello = await resumed.recv()
    assert hello["resumed"] is True and hello["last_seq"] == owner.events()[-1]["seq"]
    while not resumed.events() or resumed.events()[-1]["seq"] < hello["last_seq"]:
        await resumed.recv()
    seen = watcher.events() + resumed.events()
    assert seen == owner.events()
    assert_valid_frames(resumed.frames)


async def test_resume_outside_the_window_gets_a_snapshot(api: Api) -> None:
    """after beyond last_seq is not resumable: resumed false and a full snapshot."""
    created = await api.create()
    owner = await api.join(created)
    await owner.message("hi", "c-1")
    await owner.until_idle()
    late = await api.connect(created["session_id"], created["owner_token"], after=10_000)
    hello = await late.recv()
    snapshot = await late.recv()
    assert hello["resumed"] is False and snapshot["type"] == "snapshot"
    assert snapshot["last_seq"] == owner.events()[-1]["seq"]
    assert [m["role"] for m in snapshot["messages"]] == ["user", "assistant"]
    up_to_date = await api.connect(
        created["session_id"], created["owner_token"], after=snapshot["last_seq"]
    )
    hello = await up_to_date.recv()
    assert hello["resumed"] is True
    await up_to_date.send({"type": "ping", "id": 1})
    assert await up_to_date.recv() == {"type": "pong", "id": 1}


async def test_same_client_id_twice_is_stored_and_run_once(api: Api) -> None:
    """A resent message (same client_id) is neither stored nor run again."""
    created = await api.create()
    owner = await api.join(created)
    await owner.message("once", "same-id")
    await owner.until_idle()
    await owner.message("once", "same-id")
    await owner.send({"type": "ping", "id": "after"})
    await owner.until_type("pong")
    response = await api.http.get(
        f"/agent/session/{created['session_id']}",
        headers={"Authorization": f"Bearer {created['owner_token']}"},
    )
    roles = [m["role"] for m in response.json()["messages"]]
    assert roles == ["user", "assistant"]
    assert sum(1 for e in owner.events() if e["type"] == "message") == 2


async def test_message_during_a_run_is_queued_then_run(
    claude: Api, standin: AnthropicStandIn
) -> None:
    """A second message while busy gets queued(position 1), then runs from the queue."""
    standin.push(Text(["first ", "answer"], hold_after=1), Text(["second answer"]))
    created = await claude.create()
    owner = await claude.join(created)
    await owner.message("one", "c-1")
    await owner.until_type("delta")
    await owner.message("two", "c-2")
    queued = await owner.until_type("queued")
    assert queued["client_id"] == "c-2" and queued["position"] == 1
    standin.release()
    await owner.until_idle()
    second = await owner.until_idle()
    statuses = [e["status"] for e in owner.events() if e["type"] == "status"]
    assert statuses == ["planning", "completed", "executing_queued", "planning", "completed"]
    assert second["status"] == "completed"
    requests = await standin.wait_for_requests(2)
    texts = [
        b["text"] for m in requests[1]["messages"] for b in m["content"] if b["type"] == "text"
    ]
    assert texts == ["one", "first answer", "two"]


async def test_on_busy_reject_and_interrupt(claude: Api, standin: AnthropicStandIn) -> None:
    """reject refuses with busy and stores nothing; interrupt stops the run and goes next."""
    standin.push(Text(["slow ", "reply"], hold_after=1), Text(["the new answer"]))
    created = await claude.create()
    owner = await claude.join(created)
    await owner.message("one", "c-1")
    await owner.until_type("delta")
    await owner.message("refused", "c-2", on_busy="reject", id="r")
    error = await owner.until_type("error")
    assert error == {"type": "error", "code": "busy", "message": error["message"], "ref": "r"}
    await owner.message("instead", "c-3", on_busy="interrupt")
    interrupted = await owner.until_idle()
    assert interrupted["status"] == "interrupted"
    done = await owner.until_idle()
    assert done["status"] == "completed"
    standin.release()
    messages = [e["message"] for e in owner.events() if e["type"] == "message"]
    assert [(m["role"], m["content"]) for m in messages] == [
        ("user", "one"),
        ("user", "instead"),
        ("assistant", "slow "),
        ("assistant", "the new answer"),
    ]


async def test_interrupt_keeps_partial_text_and_answers_open_tool_calls(
    claude: Api, standin: AnthropicStandIn
) -> None:
    """Interrupt mid tool step: partial text kept, synthetic results, next request valid."""
    standin.push(
        ToolCalls(
            [("toolu_1", "current_time", {}), ("toolu_2", "current_time", {})],
            text_chunks=["checking "],
        ),
        Text(["after ", "tools"], hold_after=1),
        Text(["fresh start"]),
    )
    created = await claude.create()
    owner = await claude.join(created)
    await owner.message("time twice", "c-1")
    await owner.until(lambda f: f["type"] == "delta" and "after " in f["text"])
    await owner.send({"type": "interrupt"})
    end = await owner.until_idle()
    assert end["status"] == "interrupted"
    partial = [
        e for e in owner.events() if e["type"] == "message" and e["message"]["content"] == "after "
    ]
    assert len(partial) == 1
    await owner.message("again", "c-2")
    await owner.until_idle()
    requests = await standin.wait_for_requests(3)
    # The stand-in refuses unanswered tool_use: the third request passed its validation.
    last = requests[2]["messages"]
    assert [m["role"] for m in last] == ["user", "assistant", "user", "assistant", "user"]
    standin.release()


async def test_interrupt_while_a_tool_runs_answers_the_call(
    claude: Api, standin: AnthropicStandIn
) -> None:
    """A tool call that never ran gets an 'interrupted' error result in the transcript."""
    standin.push(
        ToolCalls([("toolu_1", "current_time", {"timezone": "Europe/Paris"})]),
        Text(["done"], hold_after=0),
    )
    created = await claude.create()
    owner = await claude.join(created)
    await owner.message("time", "c-1")
    await owner.until_status("planning")
    await owner.until(lambda f: f["type"] == "status" and f["previous"] == "executing")
    await owner.send({"type": "interrupt"})
    assert (await owner.until_idle())["status"] == "interrupted"
    standin.release()
    results = [e for e in owner.events() if e["type"] == "tool_result"]
    assert [r["call_id"] for r in results] == ["toolu_1"] and not results[0]["is_error"]
    await owner.send({"type": "interrupt"})  # nothing runs: does nothing
    await owner.send({"type": "ping"})
    assert (await owner.recv()) == {"type": "pong"}


async def test_tool_round_trip_sends_tool_result_to_the_model(
    claude: Api, standin: AnthropicStandIn
) -> None:
    """The model's tool_use and our tool_result go back in the next request."""
    standin.push(
        ToolCalls([("toolu_9", "current_time", {"timezone": "Asia/Tokyo"})]),
        Text(["It is late in Tokyo."]),
    )
    created = await claude.create()
    owner = await claude.join(created)
    await owner.message("time in Tokyo?", "c-1")
    assert (await owner.until_idle())["status"] == "completed"
    requests = await standin.wait_for_requests(2)
    assistant, user = requests[1]["messages"][1:3]
    assert assistant["content"][-1] == {
        "type": "tool_use",
        "id": "toolu_9",
        "name": "current_time",
        "input": {"timezone": "Asia/Tokyo"},
    }
    result = user["content"][0]
    assert result["type"] == "tool_result" and result["tool_use_id"] == "toolu_9"
    assert "Asia/Tokyo" in result["content"] and result["is_error"] is False
    tools = {t["name"] for t in requests[0]["tools"]}
    assert {"current_time", "session_note"} <= tools


async def test_failing_tool_gives_error_result_and_completed_with_errors(
    claude: Api, standin: AnthropicStandIn
) -> None:
    """A tool that raises is an is_error result; the run goes on to completed_with_errors."""
    standin.push(
        ToolCalls(
            [
                ("toolu_1", "current_time", {"timezone": "Mars/Olympus"}),
                ("toolu_2", "no_such_tool", {}),
            ]
        ),
        Text(["Sorry, that failed."]),
    )
    created = await claude.create()
    owner = await claude.join(created)
    await owner.message("time on Mars?", "c-1")
    end = await owner.until_idle()
    assert end["status"] == "completed_with_errors"
    results = [e for e in owner.events() if e["type"] == "tool_result"]
    assert [r["is_error"] for r in results] == [True, True]
    assert "no_such_tool" in results[1]["output"]


async def test_llm_failure_then_recovery(claude: Api, standin: AnthropicStandIn) -> None:
    """An API error gives a session error event and status error; the next message works."""
    standin.push(Error(529, "overloaded_error", "Overloaded"), Text(["back again"]))
    created = await claude.create()
    owner = await claude.join(created)
    await owner.message("first", "c-1")
    end = await owner.until_idle()
    assert end["status"] == "error"
    error = next(e for e in owner.events() if e["type"] == "error")
    assert error["code"] == "llm_error" and "529" in error["message"]
    assert error["seq"] == end["seq"] - 1
    await owner.message("second", "c-2")
    assert (await owner.until_idle())["status"] == "completed"


async def test_iteration_cap_ends_the_run_with_error(
    tmp_path: Any, standin: AnthropicStandIn
) -> None:
    """A model that keeps calling tools is stopped at the cap with an error and a message."""

    settings = standin_settings(
        tmp_path,
        standin,
        max_iterations=2,
    )
    standin.push(
        ToolCalls([("toolu_a", "current_time", {})]),
        ToolCalls([("toolu_b", "current_time", {})]),
        Text(["again ok"]),
    )
    async with RunningServer(settings) as server, Api(server.base_url) as api:
        created = await api.create()
        owner = await api.join(created)
        await owner.message("loop forever", "c-1")
        end = await owner.until_idle()
        assert end["status"] == "error"
        kinds = [e["type"] for e in owner.events()]
        error = next(e for e in owner.events() if e["type"] == "error")
        assert error["code"] == "max_iterations"
        last_message = [e for e in owner.events() if e["type"] == "message"][-1]["message"]
        assert last_message["role"] == "assistant" and "limit of 2" in last_message["content"]
        assert kinds[-3:] == ["message", "error", "status"]
        results = [e for e in owner.events() if e["type"] == "tool_result"]
        assert [r["call_id"] for r in results] == ["toolu_a", "toolu_b"]
        assert results[1]["is_error"] is True
        await owner.message("next", "c-2")
        assert (await owner.until_idle())["status"] == "completed"
        requests = await standin.wait_for_requests(3)
        assert len(requests) == 3


async def test_bad_frames_get_connection_errors_and_change_nothing(api: Api) -> None:
    """Every bad frame gets the documented error code, no seq, and the socket lives on."""
    created = await api.create()
    owner = await api.join(created)
    viewer = await api.join(created, "viewer")
    await owner.until_type("presence")
    cases: list[tuple[str | bytes, str]] = [
        ("not json", "bad_json"),
        ("[1, 2]", "bad_frame"),
        ('{"no": "type"}', "bad_frame"),
        ('{"type": "dance"}', "unknown_type"),
        ('{"type": "message", "content": 5, "client_id": "x"}', "bad_frame"),
        ('{"type": "message", "content": "hi"}', "bad_frame"),
        ('{"type": "message", "content": "hi", "client_id": "x", "extra": 1}', "bad_frame"),
        ('{"type": "message", "content": "   ", "client_id": "x"}', "bad_frame"),
        ('{"type": "message", "content": "hi", "client_id": "x", "on_busy": "never"}', "bad_frame"),
        (b"\x00\x01binary", "bad_frame"),
        ('{"type": "approve", "approval_id": "nope"}', "unknown_approval"),
        ('{"type": "reject", "approval_id": "nope"}', "unknown_approval"),
    ]
    for raw, code in cases:
        await owner.conn.send(raw)
        error = await owner.recv()
        assert error["type"] == "error" and error["code"] == code, (raw, error)
        assert "seq" not in error and error["message"]
    too_long = "x" * 100_001
    await owner.send({"type": "message", "content": too_long, "client_id": "x", "id": 42})
    assert await owner.recv() == {
        "type": "error",
        "code": "too_long",
        "message": (owner.frames[-1])["message"],
        "ref": 42,
    }
    await viewer.send({"type": "message", "content": "let me in", "client_id": "v", "id": "m"})
    forbidden = await viewer.until_type("error")
    assert forbidden["code"] == "forbidden" and forbidden["ref"] == "m"
    for kind in ("interrupt", "approve"):
        await viewer.send(
            {"type": kind, "approval_id": "a"} if kind == "approve" else {"type": kind}
        )
        assert (await viewer.until_type("error"))["code"] == "forbidden"
    await owner.send({"type": "ping", "id": "alive"})
    assert await owner.recv() == {"type": "pong", "id": "alive"}
    response = await api.http.get(
        f"/agent/session/{created['session_id']}",
        headers={"Authorization": f"Bearer {created['owner_token']}"},
    )
    assert response.json()["messages"] == [] and response.json()["status"] == "idle"
    assert owner.events() == [] and viewer.events() == []
    assert_valid_frames(owner.frames + viewer.frames)


async def test_frame_over_the_limit_closes_1009(api: Api) -> None:
    """A frame over 1 MiB closes the socket with 1009."""
    created = await api.create()
    owner = await api.join(created)
    await owner.conn.send('{"type": "ping", "id": "' + "x" * (1 << 20) + '"}')
    assert await owner.closed() == 1009


async def test_refused_handshakes(api: Api) -> None:
    """Bad or foreign tokens get 403, an unknown session 404, a foreign origin 403."""
    a = await api.create()
    b = await api.create()
    cases: list[tuple[str, str | None, dict[str, Any], int]] = [
        (a["session_id"], None, {}, 403),
        (a["session_id"], "garbage", {}, 403),
        (a["session_id"], b["owner_token"], {}, 403),
        (a["session_id"], a["owner_token"][:-2] + "xx", {}, 403),
        (a["session_id"], a["owner_token"], {"origin": "https://evil.example"}, 403),
    ]
    for session_id, token, kw, status in cases:
        with pytest.raises(InvalidStatus) as refused:
            await api.connect(session_id, token, **kw)
        assert refused.value.response.status_code == status
        assert b"hello" not in refused.value.response.body
    deleted = await api.http.delete(
        f"/agent/session/{b['session_id']}", headers={"Authorization": f"Bearer {b['owner_token']}"}
    )
    assert deleted.status_code == 200
    with pytest.raises(InvalidStatus) as gone:
        await api.connect(b["session_id"], b["owner_token"])
    assert gone.value.response.status_code == 404
    ok = await api.connect(a["session_id"], a["owner_token"], origin=api.base_url)
    assert (await ok.recv())["type"] == "hello"
    via_subprotocol = await api.connect(
        a["session_id"],
        None,
        subprotocols=["realtime-agent.v1", f"bearer.{a['viewer_token']}"],
    )
    assert via_subprotocol.conn.subprotocol == "realtime-agent.v1"
    assert (await via_subprotocol.recv())["role"] == "viewer"


async def test_delete_closes_sockets_with_4404(api: Api) -> None:
    """Deleting a session closes its sockets with 4404 and hides it from reads."""
    created = await api.create()
    owner = await api.join(created)
    viewer = await api.join(created, "viewer")
    response = await api.http.delete(
        f"/agent/session/{created['session_id']}",
        headers={"Authorization": f"Bearer {created['owner_token']}"},
    )
    assert response.json() == {"message": "Session deleted", "session_id": created["session_id"]}
    assert await owner.closed() == 4404
    assert await viewer.closed() == 4404
    read = await api.http.get(
        f"/agent/session/{created['session_id']}",
        headers={"Authorization": f"Bearer {created['owner_token']}"},
    )
    assert read.status_code == 404


async def test_presence_counts_every_socket(api: Api) -> None:
    """hello and presence count the session's open sockets."""
    created = await api.create()
    owner = await api.join(created)
    assert owner.frames[0]["viewers"] == 1
    viewer = await api.join(created, "viewer")
    assert viewer.frames[0]["viewers"] == 2
    assert await owner.until_type("presence") == {"type": "presence", "viewers": 2}
    await viewer.close()
    assert await owner.until_type("presence") == {"type": "presence", "viewers": 1}


async def test_an_open_socket_does_not_keep_its_snapshot(api: Api) -> None:
    """The greeting is not held while the socket stays open: its snapshot is the whole
    transcript, which every viewer would otherwise keep a copy of. Once the run has
    ended and a viewer has its snapshot, no message of the session, nor the session
    as read for the greeting or the handshake, is alive in the server (one held
    would be there until the sockets leave)."""
    created = await api.create()
    owner = await api.join(created)
    await owner.message("hello", "c-1")
    await owner.until_idle()
    viewer = await api.join(created, "viewer")
    snapshot = viewer.frames[1]
    assert snapshot["type"] == "snapshot" and len(snapshot["messages"]) >= 2

    sid = created["session_id"]

    async def none_alive() -> bool:
        gc.collect()  # what is left is held, not garbage waiting for a collection
        return not any(
            (isinstance(o, Message) and o.session_id == sid)
            or (isinstance(o, Session) and o.id == sid)
            for o in gc.get_objects()
        )

    try:
        await poll(none_alive, limit=5)  # the run's last steps may still hold one briefly
    except TimeoutError:
        pytest.fail("the session or its messages stay alive in the server after the greeting")
    assert (await api.join(created, "viewer")).frames[0]["type"] == "hello"  # still served


async def test_an_open_socket_lets_go_of_its_handshake(api: Api) -> None:
    """Once the handshake's response is sent, the server's protocol drops the request
    and response uvicorn keeps (their headers: about 2 KB and 9 objects the garbage
    collector walks per socket, for the socket's whole life); the socket still works,
    keep-alive included."""
    created = await api.create()
    owner = await api.join(created)
    protocols = [  # the open ones: sockets of earlier tests may not be collected yet
        o
        for o in gc.get_objects()
        if type(o) is DirectWebSocketProtocol and not o.transport.is_closing()
    ]
    assert protocols, "no open server socket found"
    assert all(p.request is None and p.response is None for p in protocols)
    await owner.send({"type": "ping", "id": "still served"})
    assert (await owner.until_type("pong"))["id"] == "still served"
    pong = await owner.conn.ping()
    async with asyncio.timeout(TIMEOUT):
        await pong  # uvicorn still answers the websocket ping


async def test_a_socket_does_not_keep_the_last_frame_it_read(api: Api) -> None:
    """A frame is let go once handled: an idle socket whose client last sent a large
    frame (up to RA_MAX_FRAME_BYTES, 1 MiB) holds none of it while it waits for the
    next one, or every socket could keep a megabyte."""
    created = await api.create()
    owner = await api.join(created)
    marker = "kept-" + secrets.token_hex(8)
    await owner.send({"type": "dance", "pad": marker + "x" * 200_000})
    assert (await owner.until_type("error"))["code"] == "unknown_type"

    def has_marker(value: object) -> bool:
        if isinstance(value, dict):  # the ASGI message (a dict of strings is not tracked)
            value = value.get("text")
        return isinstance(value, str) and marker + "xxxx" in value  # not our own marker

    def held() -> bool:  # by the locals of a coroutine suspended in the server
        return any(
            type(o).__name__ == "coroutine"
            and o.cr_frame is not None
            and any(has_marker(v) for v in o.cr_frame.f_locals.values())
            for o in gc.get_objects()
        )

    assert not held(), "the socket keeps the frame it read last"
    await owner.send({"type": "ping", "id": "still served"})
    assert (await owner.until_type("pong"))["id"] == "still served"


async def test_transcript_and_seq_survive_a_restart(server: RunningServer, api: Api) -> None:
    """After a restart the transcript is intact, seq only grows, resume gets a snapshot."""
    created = await api.create()
    owner = await api.join(created)
    await owner.message("remember me", "c-1")
    await owner.until_idle()
    last = owner.events()[-1]["seq"]
    await server.restart()
    assert await owner.closed() in (1001, 1012)  # the server's shutdown closed the socket
    back = await api.connect(created["session_id"], created["owner_token"], after=last)
    hello = await back.recv()
    snapshot = await back.recv()
    assert hello["resumed"] is False and snapshot["type"] == "snapshot"
    assert hello["last_seq"] >= last
    assert snapshot["messages"][0]["content"] == "remember me"
    await back.message("and again", "c-2")
    await back.until_idle()
    seqs = [e["seq"] for e in back.events()]
    assert seqs[0] > last and contiguous(back.events())


async def test_viewer_follows_a_run_started_over_rest(api: Api) -> None:
    """POST /agent/chat answers at once; the run streams to the websocket."""
    created = await api.create()
    viewer = await api.join(created, "viewer")
    response = await api.http.post(
        "/agent/chat",
        json={"message": "hi from REST", "session_id": created["session_id"], "character_id": 7},
        headers={"Authorization": f"Bearer {created['owner_token']}"},
    )
    assert response.status_code == 200 and response.json()["session_id"] == created["session_id"]
    await viewer.until_idle()
    first = viewer.events()[0]
    assert first["type"] == "message" and first["message"]["content"] == "hi from REST"
