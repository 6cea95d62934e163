"""The terminal client (``realtime-agent chat`` / ``watch``): its protocol logic with values
in and out, and the command as a subprocess against a real server."""

from __future__ import annotations

import asyncio
import io
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pexpect
import pytest
from pexpect import fdpexpect

from realtime_agent.client.connection import backoff
from realtime_agent.client.errors import ClientError
from realtime_agent.client.items import EndText, Line, Notice, Text
from realtime_agent.client.sinks import JsonSink, PlainSink
from realtime_agent.client.state import SessionState
from realtime_agent.client.style import DIM, dim, printable, use_color
from realtime_agent.client.typed import (
    Approve,
    Interrupt,
    Quit,
    Reject,
    Say,
    ShowStatus,
    Unknown,
    parse_line,
)
from realtime_agent.client.urls import http_base, socket_url
from tests import standin_anthropic as scripted
from tests.client_util import (
    TIMEOUT,
    ClientProcess,
    Frame,
    TcpProxy,
    client_env,
    command,
    run_client,
    spawn_in_pty,
)
from tests.helpers import Api, RunningServer, settings_for
from tests.standin_anthropic import AnthropicStandIn

SID = "sess-0123456789abcdef"


def hello(**fields: Any) -> Frame:
    base: Frame = {
        "type": "hello",
        "protocol": 1,
        "session_id": SID,
        "role": "owner",
        "status": "idle",
        "last_seq": 0,
        "resumed": False,
        "viewers": 1,
        "pending_approval": None,
    }
    return base | fields


def event(seq: int, kind: str, **payload: Any) -> Frame:
    return {"type": kind, "session_id": SID, "seq": seq, "ts": "2026-11-24T11:41:15Z"} | payload


def status(seq: int, new: str, previous: str) -> Frame:
    return event(seq, "status", status=new, previous=previous)


def user(seq: int, content: str, client_id: str) -> Frame:
    message = {"id": f"msg-u{seq}", "role": "user", "content": content, "client_id": client_id}
    return event(seq, "message", message=message)


def connected(**fields: Any) -> SessionState:
    state = SessionState()
    state.receive(hello(**fields))
    state.receive({"type": "snapshot", "status": "idle", "last_seq": 0, "messages": []})
    return state


# --- protocol logic (no I/O) ------------------------------------------------------


def test_state_drops_replayed_events_and_resumes_after_the_last_seq() -> None:
    """Events with a seq at or below the last one are dropped; a resumed hello keeps it."""
    state = connected()
    assert state.receive(status(1, "planning", "idle")) == [Line("· status: planning", dim=True)]
    assert state.receive(status(1, "planning", "idle")) is None
    assert state.last_seq == 1 and state.running
    items = state.receive(hello(status="completed", last_seq=3, resumed=True))
    assert items == [Line("· reconnected: resumed after seq 1", dim=True)]
    assert state.status == "planning", "a resumed hello leaves the status to the replay"
    assert state.receive(status(2, "completed", "planning")) is not None
    assert state.last_seq == 2 and not state.running


def test_state_streams_deltas_and_ends_the_line_at_the_message() -> None:
    """Deltas print as they come; the final message only ends the line."""
    state = connected()
    assert state.receive(event(1, "delta", message_id="msg-a", text="Hel")) == [Text("Hel")]
    assert state.receive(event(2, "delta", message_id="msg-a", text="lo")) == [Text("lo")]
    message = {"id": "msg-a", "role": "assistant", "content": "Hello"}
    assert state.receive(event(3, "message", message=message)) == [EndText()]
    unstreamed = {"id": "msg-b", "role": "assistant", "content": "Stopped."}
    assert state.receive(event(4, "message", message=unstreamed)) == [Line("Stopped.")]


def test_state_renders_tools_queue_errors_and_presence() -> None:
    """Tool calls and results, queue positions and presence are dim; a session error is not."""
    state = connected()
    call = event(1, "tool_call", call_id="c1", name="current_time", input={})
    assert state.receive(call) == [Line("· tool call: current_time {}", dim=True)]
    result = event(2, "tool_result", call_id="c1", output="12:00\nUTC", is_error=False)
    assert state.receive(result) == [Line("· tool result: current_time: 12:00 UTC", dim=True)]
    queued = event(3, "queued", client_id="other", position=2)
    assert state.receive(queued) == [Line("· a message is queued at position 2", dim=True)]
    error = event(4, "error", code="llm_error", message="boom")
    assert state.receive(error) == [Line("error (llm_error): boom")]
    assert state.receive({"type": "presence", "viewers": 3}) == [Line("· 3 connected", dim=True)]
    assert state.viewers == 3
    assert state.receive({"type": "pong"}) == []


def test_state_tracks_the_pending_approval() -> None:
    """approve/reject carry the pending approval's id (from hello or approval_required)."""
    calls = [{"call_id": "c1", "name": "session_note", "input": {"note": "x"}}]
    state = connected(pending_approval={"approval_id": "ap-1", "calls": calls})
    assert state.approval_frame(True) == {"type": "approve", "approval_id": "ap-1"}
    assert state.approval_frame(False, "not now") == {
        "type": "reject",
        "approval_id": "ap-1",
        "reason": "not now",
    }
    state.receive(event(1, "approval_resolved", approval_id="ap-1", approved=True))
    assert state.approval_frame(True) is None
    items = state.receive(event(2, "approval_required", approval_id="ap-2", calls=calls))
    assert items == [
        Line('approval needed for session_note {"note":"x"}: /approve or /reject [reason]')
    ]
    assert state.approval_frame(False) == {"type": "reject", "approval_id": "ap-2"}
    assert "approval pending: ap-2" in state.status_line()
    state.receive(status(3, "interrupted", "waiting_approval"))
    assert state.approval_frame(True) is None


def test_state_attributes_each_run_to_its_message() -> None:
    """A message's run is the one that starts after the runs queued ahead of it."""
    state = connected()
    first = state.message_frame("one", "c-1")
    assert first == {"type": "message", "content": "one", "client_id": "c-1", "id": "c-1"}
    state.receive(user(1, "one", "c-1"))
    state.receive(status(2, "planning", "idle"))
    state.message_frame("two", "c-2")
    state.receive(user(3, "x", "someone-else"))
    state.receive(event(4, "queued", client_id="someone-else", position=1))
    state.receive(user(5, "two", "c-2"))
    state.receive(event(6, "queued", client_id="c-2", position=2))
    assert not state.sent("c-2").done
    state.receive(status(7, "completed", "planning"))
    assert state.sent("c-1").outcome == "completed"
    state.receive(status(8, "executing_queued", "completed"))
    state.receive(status(9, "error", "executing_queued"))
    assert state.sent("c-2").outcome is None, "that run was someone else's"
    state.receive(status(10, "executing_queued", "error"))
    state.receive(status(11, "planning", "executing_queued"))
    state.receive(status(12, "interrupted", "planning"))
    assert state.sent("c-2").outcome == "interrupted"
    assert state.all_done()


def test_state_marks_a_refused_message_and_resends_unechoed_ones() -> None:
    """A connection error whose ref is a message's id refuses it; unechoed ones are resent."""
    state = connected()
    state.message_frame("too long", "c-1")
    state.message_frame("lost", "c-2")
    items = state.receive({"type": "error", "code": "too_long", "message": "over", "ref": "c-1"})
    assert items == [Notice("warning: over (too_long)")]
    assert state.sent("c-1").refused == "over (too_long)" and state.sent("c-1").done
    assert [f["client_id"] for f in state.unanswered()] == ["c-2"]
    state.receive(user(1, "lost", "c-2"))
    assert state.unanswered() == []


def test_state_hides_own_echo_at_the_prompt() -> None:
    """At a prompt, this client's own message is not printed again; others' are."""
    state = SessionState(echo_own=False)
    state.receive(hello())
    state.message_frame("mine", "c-1")
    assert state.receive(user(1, "mine", "c-1")) == []
    assert state.receive(user(2, "theirs", "c-9")) == [Line("> theirs")]


def test_state_snapshot_after_reconnect_shows_only_new_messages() -> None:
    """A snapshot that replaced lost events prints the messages not seen yet."""
    state = connected()
    state.receive(user(1, "hi", "c-9"))
    reply = {"id": "msg-r", "role": "assistant", "content": "Hi there"}
    items = state.receive(hello(status="completed", last_seq=1000, resumed=False))
    assert items == [
        Line("· reconnected: too much was missed to replay; the transcript follows", dim=True)
    ]
    snapshot = {
        "type": "snapshot",
        "status": "completed",
        "last_seq": 1000,
        "messages": [{"id": "msg-u1", "role": "user", "content": "hi"}, reply],
    }
    assert state.receive(snapshot) == [Line("Hi there")]
    assert state.last_seq == 1000 and state.status == "completed"


def test_state_snapshot_settles_a_run_whose_end_was_missed() -> None:
    """Own message, then a reply, in a snapshot with a final status: its run ended so."""
    state = connected()
    state.message_frame("hi", "c-1")
    state.receive(user(1, "hi", "c-1"))
    state.receive(status(2, "planning", "idle"))
    state.receive(hello(status="error", last_seq=1000, resumed=False))
    messages = [
        {"id": "msg-u1", "role": "user", "content": "hi", "client_id": "c-1"},
        {"id": "msg-r", "role": "assistant", "content": "partial"},
    ]
    state.receive({"type": "snapshot", "status": "error", "last_seq": 1000, "messages": messages})
    assert state.sent("c-1").outcome == "error"


def test_ctrl_c_interrupts_a_run_once_then_quits() -> None:
    """Ctrl-C interrupts the owner's run the first time and quits the second, or when idle."""
    state = connected()
    assert state.on_ctrl_c() == "quit"
    state.receive(status(1, "planning", "idle"))
    assert state.on_ctrl_c() == "interrupt"
    assert state.on_ctrl_c() == "quit"
    state.receive(status(2, "interrupted", "planning"))
    state.receive(status(3, "planning", "interrupted"))
    assert state.on_ctrl_c() == "interrupt"
    viewer = connected(role="viewer", status="planning")
    assert viewer.on_ctrl_c() == "quit"


def test_status_line_names_status_viewers_and_role() -> None:
    """``/status`` answers with the status, the viewer count, the role and the last seq."""
    assert SessionState().status_line() == "status: not connected yet"
    state = connected(viewers=2)
    assert state.status_line() == "status: idle · viewers: 2 · role: owner · last seq: 0"


def test_typed_lines_parse_to_commands() -> None:
    """Slash commands parse; other lines are messages; // escapes a leading slash."""
    assert parse_line("  hello  ") == Say("hello")
    assert parse_line("") is None and parse_line("   ") is None
    assert parse_line("/interrupt") == Interrupt()
    assert parse_line("/approve") == Approve()
    assert parse_line("/reject") == Reject(None)
    assert parse_line("/reject too risky") == Reject("too risky")
    assert parse_line("/STATUS") == ShowStatus()
    assert parse_line("/quit") == Quit()
    assert parse_line("/nope") == Unknown("/nope")
    assert parse_line("//etc/hosts") == Say("/etc/hosts")


def test_output_is_safe_and_dim_only_on_a_terminal() -> None:
    """Control characters from the server are neutralised; dim needs a TTY and no NO_COLOR."""
    assert printable("a\x1b[31mb\rc\n\td\x9b") == "a\ufffd[31mb\ufffdc\n\td\ufffd"
    assert dim("x", True) == f"{DIM}x\x1b[0m" and dim("x", False) == "x"
    assert not use_color(io.StringIO(), {})

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert use_color(Tty(), {}) and not use_color(Tty(), {"NO_COLOR": "1"})


def test_plain_sink_ends_a_streamed_line_before_the_next_line() -> None:
    """Streamed text stays on its line until a whole line or the message's end."""
    out, err = io.StringIO(), io.StringIO()
    sink = PlainSink(out, err, color=False)
    sink.show([Text("Hel"), Text("lo"), Line("· status: completed", dim=True), Text("x")])
    sink.show([EndText(), EndText(), Notice("warning: w")])
    assert out.getvalue() == "Hello\n· status: completed\nx\n"
    assert err.getvalue() == "warning: w\n"


def test_json_sink_prints_compact_frames_only() -> None:
    """``--json`` prints each frame on one compact line; notices go to stderr."""
    out, err = io.StringIO(), io.StringIO()
    sink = JsonSink(out, err)
    sink.frame({"type": "delta", "text": "é\n"})
    sink.show([Line("ignored"), Notice("warning: w")])
    assert out.getvalue() == '{"type":"delta","text":"é\\n"}\n'
    assert err.getvalue() == "warning: w\n"


def test_urls_and_backoff() -> None:
    """Server URLs normalise to an HTTP base; the socket URL carries token and after."""
    assert http_base("http://127.0.0.1:8000/") == "http://127.0.0.1:8000"
    assert http_base("localhost:9000") == "http://localhost:9000"
    assert http_base("wss://example.com/ra") == "https://example.com/ra"
    with pytest.raises(ClientError):
        http_base("ftp://example.com")
    assert socket_url("https://example.com/ra", SID, "t.o.k", 7) == (
        f"wss://example.com/ra/agent/ws/{SID}?token=t.o.k&after=7"
    )
    assert socket_url("http://h:1", SID, "t") == f"ws://h:1/agent/ws/{SID}?token=t"
    delays = [backoff(n) for n in range(10)]
    assert delays == sorted(delays) and delays[0] == 0.25 and delays[-1] == 10.0


# --- help --------------------------------------------------------------------------


def test_help_explains_chat_and_watch() -> None:
    """``--help`` of the command, ``chat`` and ``watch`` exits 0 and explains with examples."""

    def helped(*args: str) -> str:
        result = subprocess.run(
            [command(), *args, "--help"],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            env=client_env(),
            check=False,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    top = helped()
    assert "chat" in top and "watch" in top
    chat = helped("chat")
    assert chat.startswith("usage: realtime-agent chat")
    for word in ("--send", "--json", "--session", "--token", "--api-key", "RA_API_KEY"):
        assert word in chat, word
    assert "/interrupt" in chat and "/approve" in chat and "examples:" in chat
    watch = helped("watch")
    assert watch.startswith("usage: realtime-agent watch")
    assert "read-only" in watch and "examples:" in watch and "--json" in watch


# --- scripted sends ----------------------------------------------------------------


async def test_send_runs_each_text_in_turn_and_exits_0(server: RunningServer) -> None:
    """``--send`` twice: both texts run one after the other; the replies are shown; exit 0."""
    result = await run_client(
        "chat", server.base_url, "--send", "hello", "--send", "what time is it?"
    )
    assert result.code == 0, result.stderr
    out = result.stdout
    assert re.search(r"^session  sess-[0-9a-f]{16}$", out, re.M), out
    assert re.search(r"^watch    realtime-agent watch .* --token sess-\S+\.v\.", out, re.M), out
    assert out.count("offline demo model") >= 2
    assert out.index("> hello") < out.index('You said: "hello"') < out.index("> what time")
    assert "· tool call: current_time" in out and "The current time is" in out
    assert out.rstrip().endswith("· status: completed")
    assert "\x1b[" not in out, "no styling when stdout is not a terminal"


async def test_send_exits_1_when_the_run_fails(claude: Api, standin: AnthropicStandIn) -> None:
    """A run that ends in ``error`` (the model is overloaded) makes the exit code 1."""
    standin.push(scripted.Error(529, "overloaded_error", "Overloaded"))
    result = await run_client("chat", claude.base_url, "--send", "hello")
    assert result.code == 1, result.stderr
    assert "error (llm_error)" in result.stdout and "· status: error" in result.stdout


async def test_json_prints_every_frame_as_one_line(server: RunningServer) -> None:
    """``--json``: each stdout line is a frame; seqs are contiguous; deltas join to the reply."""
    result = await run_client(
        "chat", server.base_url, "--json", "--send", "hello", "--send", "what time is it?"
    )
    assert result.code == 0, result.stderr
    frames = result.frames()
    assert all(isinstance(f, dict) and isinstance(f.get("type"), str) for f in frames)
    assert [f["type"] for f in frames[:2]] == ["hello", "snapshot"]
    assert frames[0]["session_id"] in result.stderr, "the session header goes to stderr"
    events = [f for f in frames if "seq" in f]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    replies = [
        e["message"]
        for e in events
        if e["type"] == "message" and e["message"]["role"] == "assistant"
    ]
    assert any("offline demo model" in r["content"] for r in replies)
    for reply in replies:
        deltas = [e["text"] for e in events if e.get("message_id") == reply["id"]]
        assert "".join(deltas) == reply["content"]
    assert events[-1]["type"] == "status" and events[-1]["status"] == "completed"


async def test_ctrl_c_interrupts_a_scripted_run(claude: Api, standin: AnthropicStandIn) -> None:
    """SIGINT during a ``--send`` run sends ``interrupt``; the run ends interrupted: exit 1."""
    standin.push(scripted.Text(["Hel", "lo"], hold_after=1))
    client = await ClientProcess.start("chat", claude.base_url, "--json", "--send", "hi")
    try:
        await client.frame_until(lambda f: f["type"] == "delta")
        code = await client.interrupt()
    finally:
        await client.kill()
    assert code == 1, client.stderr
    statuses = [f["status"] for f in client.frames() if f["type"] == "status"]
    assert statuses[-1] == "interrupted"


async def test_lines_from_a_pipe_are_sent_and_commands_run(server: RunningServer) -> None:
    """With stdin not a terminal, each line is a message or command; at its end the client
    waits for its runs and exits 0."""
    result = await run_client("chat", server.base_url, stdin=b"hello\n/status\n/approve\n/bogus\n")
    assert result.code == 0, result.stderr
    out = result.stdout
    assert "offline demo model" in out
    assert re.search(r"^status: \w+ · viewers: 1 · role: owner", out, re.M), out
    assert "nothing to answer: no approval is pending" in out
    assert "unknown command /bogus" in out


# --- watch -------------------------------------------------------------------------


async def test_watch_prints_the_events_of_another_clients_run(
    server: RunningServer, api: Api
) -> None:
    """``watch --json`` with the viewer token prints the same events as the owner saw;
    SIGINT exits 0."""
    created = await api.create()
    watcher = await ClientProcess.start(
        "watch",
        server.base_url,
        "--session",
        created["session_id"],
        "--token",
        created["viewer_token"],
        "--json",
    )
    try:
        first = await watcher.frame_until(lambda f: f["type"] == "hello")
        assert first["role"] == "viewer"
        owner = await api.join(created)
        await owner.message("what time is it?", "c-1")
        final = await owner.until_idle()
        await watcher.frame_until(lambda f: f.get("seq") == final["seq"])
        code = await watcher.interrupt()
    finally:
        await watcher.kill()
    assert code == 0, watcher.stderr
    watched = [(f["seq"], f["type"]) for f in watcher.frames() if "seq" in f]
    assert watched == [(e["seq"], e["type"]) for e in owner.events()]


async def test_watch_resumes_after_a_dropped_connection(server: RunningServer, api: Api) -> None:
    """A dropped connection reconnects with ``after=<last seq>``: the missed events are
    replayed (``resumed: true``), none twice."""
    created = await api.create()
    async with TcpProxy(server.port) as proxy:
        watcher = await ClientProcess.start(
            "watch",
            proxy.base_url,
            "--session",
            created["session_id"],
            "--token",
            created["viewer_token"],
            "--json",
        )
        try:
            await watcher.frame_until(lambda f: f["type"] == "hello")
            owner = await api.join(created)
            await owner.message("hello", "c-1")
            first = await owner.until_idle()
            await watcher.frame_until(lambda f: f.get("seq") == first["seq"])
            proxy.paused = True
            proxy.cut()
            await owner.message("what time is it?", "c-2")
            second = await owner.until_idle()
            proxy.paused = False
            again = await watcher.frame_until(lambda f: f["type"] == "hello")
            await watcher.frame_until(lambda f: f.get("seq") == second["seq"])
            code = await watcher.interrupt()
        finally:
            await watcher.kill()
    assert again["resumed"] is True
    assert f"after={first['seq']}" in proxy.requests[-1], proxy.requests
    assert "after=" not in proxy.requests[0]
    watched = [(f["seq"], f["type"]) for f in watcher.frames() if "seq" in f]
    assert watched == [(e["seq"], e["type"]) for e in owner.events()]
    assert "connection lost" in watcher.stderr
    assert code == 0


async def test_watch_reconnects_after_a_server_restart(server: RunningServer, api: Api) -> None:
    """The server restarts (close 1012): the watcher retries until it is back, says so,
    and shows the next run in text."""
    created = await api.create()
    watcher = await ClientProcess.start(
        "watch",
        server.base_url,
        "--session",
        created["session_id"],
        "--token",
        created["viewer_token"],
    )
    try:
        while "connected to" not in await watcher.line():
            pass
        await server.restart()
        while "reconnected" not in await watcher.line():
            pass
        async with Api(server.base_url) as fresh:
            owner = await fresh.join(created)
            await owner.message("hello", "c-1")
            await owner.until_idle()
            while "status: completed" not in await watcher.line():
                pass
        code = await watcher.interrupt()
    finally:
        await watcher.kill()
    assert code == 0
    out = "".join(watcher.lines)
    assert "> hello" in out and "offline demo model" in out
    assert re.search(r"connection lost \(close code 10(01|12)\)", watcher.stderr), watcher.stderr


# --- errors ------------------------------------------------------------------------


async def test_unreachable_server_exits_2(free_socket: Any) -> None:
    """Nobody listening: exit 2 with "cannot reach URL: connection refused" on stderr."""
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    url = f"http://127.0.0.1:{port}"
    chat = await run_client("chat", url, "--send", "hello")
    watch = await run_client("watch", url, "--session", SID, "--token", "t")
    for result in (chat, watch):
        assert result.code == 2
        assert f"cannot reach {url}: connection refused" in result.stderr
        assert "Traceback" not in result.stderr


async def test_bad_token_and_unknown_session_exit_2(server: RunningServer, api: Api) -> None:
    """A refused token (403) and a deleted session (404) exit 2 with a clear message."""
    created = await api.create()
    sid = created["session_id"]
    bad = await run_client("watch", server.base_url, "--session", sid, "--token", "nope")
    assert bad.code == 2 and "the token was refused" in bad.stderr
    deleted = await api.http.delete(
        f"/agent/session/{sid}", headers={"Authorization": f"Bearer {created['owner_token']}"}
    )
    assert deleted.status_code == 200
    gone = await run_client(
        "chat", server.base_url, "--session", sid, "--token", created["owner_token"], "--send", "x"
    )
    assert gone.code == 2 and f"no such session: {sid}" in gone.stderr
    half = await run_client("chat", server.base_url, "--session", sid)
    assert half.code == 2 and "--session and --token go together" in half.stderr


async def test_watch_exits_2_when_viewers_are_revoked(server: RunningServer, api: Api) -> None:
    """The owner revokes viewer tokens (close 1008): the watcher stops, exit 2, no retry."""
    created = await api.create()
    sid = created["session_id"]
    watcher = await ClientProcess.start(
        "watch", server.base_url, "--session", sid, "--token", created["viewer_token"], "--json"
    )
    try:
        await watcher.frame_until(lambda f: f["type"] == "hello")
        revoked = await api.http.post(
            f"/agent/session/{sid}/revoke-viewers",
            headers={"Authorization": f"Bearer {created['owner_token']}"},
        )
        assert revoked.status_code == 200, revoked.text
        code = await watcher.wait()
    finally:
        await watcher.kill()
    assert code == 2
    assert "revoked" in watcher.stderr and "reconnecting" not in watcher.stderr


async def test_viewer_token_cannot_send(server: RunningServer, api: Api) -> None:
    """``--send`` with a viewer token exits 2 before sending anything."""
    created = await api.create()
    result = await run_client(
        "chat",
        server.base_url,
        "--session",
        created["session_id"],
        "--token",
        created["viewer_token"],
        "--send",
        "hello",
    )
    assert result.code == 2 and "viewer" in result.stderr


async def test_api_key_is_sent_when_the_server_needs_one(tmp_path: Path) -> None:
    """Creating needs the API key: missing or wrong exits 2; --api-key or RA_API_KEY works."""
    async with RunningServer(settings_for(tmp_path, api_key="key-0123456789")) as running:
        url = running.base_url
        missing = await run_client("chat", url, "--send", "hello")
        assert missing.code == 2 and "needs an API key" in missing.stderr
        wrong = await run_client("chat", url, "--api-key", "nope", "--send", "hello")
        assert wrong.code == 2 and "API key was refused" in wrong.stderr
        flag = await run_client("chat", url, "--api-key", "key-0123456789", "--send", "hello")
        assert flag.code == 0, flag.stderr
        env = await run_client("chat", url, "--send", "hello", RA_API_KEY="key-0123456789")
        assert env.code == 0, env.stderr


async def test_a_refused_message_warns_and_exits_2(tmp_path: Path) -> None:
    """A connection ``error`` about the sent message is a warning on stderr; exit 2."""
    async with RunningServer(settings_for(tmp_path, max_content_chars=10)) as running:
        result = await run_client("chat", running.base_url, "--send", "far more than ten")
    assert result.code == 2
    assert re.search(r"^warning: .*\(too_long\)$", result.stderr, re.M), result.stderr
    assert "the server refused the message" in result.stderr


# --- the interactive prompt (a pseudo-terminal) ------------------------------------


async def _drive_prompt(url: str, script: Any) -> tuple[int, str]:
    """Run ``realtime-agent chat URL`` on a pty; ``script(child)`` drives it in a thread.
    The exit code and everything the terminal showed."""
    proc, master = await spawn_in_pty("chat", url, TERM="xterm", PROMPT_TOOLKIT_NO_CPR="1")
    screen = io.StringIO()
    try:
        child = fdpexpect.fdspawn(master, encoding="utf-8", timeout=TIMEOUT)
        child.logfile_read = screen
        await asyncio.to_thread(script, child)
        async with asyncio.timeout(TIMEOUT):
            code = await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        os.close(master)
    return code, screen.getvalue()


async def test_interactive_prompt_chats_and_quits(server: RunningServer) -> None:
    """At the prompt: a typed line streams the demo reply, /status answers, /approve runs
    the pending tool call, /quit exits 0."""

    def script(child: fdpexpect.fdspawn[str]) -> None:
        child.expect("connected to")
        child.expect(">")
        child.sendline("hello")
        child.expect("offline demo model")
        child.expect("status: completed")
        child.sendline("/status")
        child.expect(r"status: completed · viewers: 1 · role: owner")
        child.sendline("/approve")
        child.expect("no approval is pending")
        child.sendline("remember that the sky is blue")  # session_note waits at level 1
        child.expect("approval needed for session_note")
        child.sendline("/approve")
        child.expect("· approved")
        child.expect("status: completed")
        child.sendline("/quit")
        child.expect(pexpect.EOF)

    code, screen = await _drive_prompt(server.base_url, script)
    assert code == 0, screen
    assert "\x1b[2m· status: completed\x1b[0m" in screen, "status lines are dim on a terminal"


async def test_interactive_ctrl_c_interrupts_then_quits(
    claude: Api, standin: AnthropicStandIn
) -> None:
    """Ctrl-C during a run interrupts it; Ctrl-C with nothing running quits (exit 0)."""
    standin.push(scripted.Text(["Partial ", "answer"], hold_after=1))

    def script(child: fdpexpect.fdspawn[str]) -> None:
        child.expect("connected to")
        child.expect(">")
        child.sendline("hi")
        child.expect("Partial")
        child.send("\x03")
        child.expect("status: interrupted")
        child.send("\x03")
        child.expect(pexpect.EOF)

    code, screen = await _drive_prompt(claude.base_url, script)
    assert code == 0, screen
    assert "interrupting" in screen
