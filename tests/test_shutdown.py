"""SIGTERM: runs finish within the grace period or are interrupted; sockets close 1001; exit 0."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from pathlib import Path

import pytest

from realtime_agent.protocol import SHUTDOWN_REASON, CloseCode
from tests.helpers import TIMEOUT, Api, RunningServer, WSClient, poll, settings_for
from tests.processes import ServerProcess, clean_env
from tests.standin_anthropic import AnthropicStandIn, Reply, Text


def server(tmp_path: Path, standin: AnthropicStandIn, grace: float) -> ServerProcess:
    return ServerProcess(
        clean_env(
            RA_SECRET="shutdown-secret-0123456789",
            ANTHROPIC_API_KEY="test-key",
            ANTHROPIC_BASE_URL=standin.base_url,
            RA_LLM_MAX_RETRIES="0",
            RA_SHUTDOWN_GRACE_SECONDS=str(grace),
        ),
        tmp_path,
    )


async def started(
    tmp_path: Path, standin: AnthropicStandIn, grace: float, *replies: Reply
) -> ServerProcess:
    """A running server whose model gives ``replies`` in turn."""
    standin.push(*replies)
    proc = server(tmp_path, standin, grace)
    await proc.start()
    return proc


async def sigterm_mid_stream(api: Api, proc: ServerProcess) -> WSClient:
    """A session whose run is streaming when the server gets SIGTERM."""
    created = await api.create()
    owner = await api.join(created)
    await owner.message("go", "c-1")
    await owner.until_type("delta")
    assert proc.proc is not None
    proc.proc.send_signal(signal.SIGTERM)
    return owner


async def until_draining(api: Api) -> None:
    """Wait until ``/readyz`` says the server is shutting down."""

    async def draining() -> bool:
        ready = await api.http.get("/readyz")
        return ready.status_code == 503 and ready.json()["status"] == "shutting down"

    await poll(draining)


async def interrupted_keeping_partial_text(owner: WSClient) -> None:
    """The run ends ``interrupted`` with its partial text stored, then the 1001 close."""
    assert (await owner.until_idle())["status"] == "interrupted"
    kept = [e["message"]["content"] for e in owner.events() if e["type"] == "message"]
    assert kept == ["go", "partial "]
    assert await owner.closed() == 1001


async def test_sigterm_lets_a_run_finish_within_the_grace_period(
    tmp_path: Path, standin: AnthropicStandIn
) -> None:
    """A run that ends within the grace period completes; new sockets are refused meanwhile."""
    proc = await started(tmp_path, standin, 30, Text(["almost ", "done"], hold_after=1))
    async with Api(proc.base_url) as api:
        owner = await sigterm_mid_stream(api, proc)
        await until_draining(api)
        standin.release()
        assert (await owner.until_idle())["status"] == "completed"
        assert await owner.closed() == 1001
    assert await proc.stop() == 0


async def test_sigterm_interrupts_a_run_past_the_grace_period(
    tmp_path: Path, standin: AnthropicStandIn
) -> None:
    """Past the grace period the run is interrupted (partial text kept) before the 1001 close."""
    proc = await started(tmp_path, standin, 0.2, Text(["partial ", "never"], hold_after=1))
    async with Api(proc.base_url) as api:
        owner = await sigterm_mid_stream(api, proc)
        await interrupted_keeping_partial_text(owner)
    standin.release()
    assert await proc.stop() == 0


async def test_a_second_sigterm_interrupts_runs_now_and_still_shuts_down_gracefully(
    tmp_path: Path, standin: AnthropicStandIn
) -> None:
    """A second signal ends the grace at once: the run is interrupted (clients see it,
    partial text kept), sockets close with 1001 and the process exits 0 cleanly."""
    proc = await started(tmp_path, standin, 60, Text(["partial ", "never"], hold_after=1))
    async with Api(proc.base_url) as api:
        owner = await sigterm_mid_stream(api, proc)
        await until_draining(api)
        assert proc.proc is not None
        proc.proc.send_signal(signal.SIGTERM)
        await interrupted_keeping_partial_text(owner)
    standin.release()
    assert await proc.exited() == 0  # no third signal: that one would stop it at once
    assert "the runs still going are interrupted now" in proc.log
    assert "Traceback" not in proc.log


async def test_a_message_during_shutdown_is_kept_for_the_next_start(
    tmp_path: Path, standin: AnthropicStandIn
) -> None:
    """A message sent while the server drains is acknowledged, stored, and runs after a restart."""
    proc = await started(
        tmp_path, standin, 30, Text(["first ", "reply"], hold_after=1), Text(["second reply"])
    )
    async with Api(proc.base_url) as api:
        created = await api.create()
        owner = await api.join(created)
        await owner.message("one", "c-1")
        await owner.until_type("delta")
        assert proc.proc is not None
        proc.proc.send_signal(signal.SIGTERM)
        await until_draining(api)
        await owner.message("two", "c-2")
        echo = await owner.until(
            lambda f: f["type"] == "message" and f["message"]["content"] == "two"
        )
        assert echo["message"]["client_id"] == "c-2"
        standin.release()
        assert (await owner.until_idle())["status"] == "completed"
        assert await owner.closed() == 1001
    assert await proc.stop() == 0
    await proc.start()
    try:
        async with Api(proc.base_url) as api:
            back = await api.join(created)
            snapshot = [m["content"] for m in back.frames[1]["messages"]]
            if "second reply" not in snapshot:  # the kept message runs right after start-up
                await back.until(
                    lambda f: f["type"] == "message" and f["message"]["content"] == "second reply"
                )
            read = await api.http.get(
                f"/agent/session/{created['session_id']}",
                headers={"Authorization": f"Bearer {created['owner_token']}"},
            )
            contents = [m["content"] for m in read.json()["messages"]]
            assert contents == ["one", "two", "first reply", "second reply"]  # arrival order
    finally:
        await proc.stop()


async def test_a_signal_while_uvicorn_waits_for_an_open_request_stops_it_at_once(
    tmp_path: Path, standin: AnthropicStandIn
) -> None:
    """Past the app's graceful steps uvicorn waits up to 10 s for requests still open
    (here one whose body never comes); the next signal stops it at once, as
    docs/operations.md says, instead of letting it wait out its timeout."""
    proc = await started(tmp_path, standin, 30)
    reader, writer = await asyncio.open_connection("127.0.0.1", proc.port)
    try:
        writer.write(
            b"POST /agent/chat HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n{"
        )
        await writer.drain()
        async with Api(proc.base_url) as api:  # answered after the loop read the POST's bytes
            assert (await api.http.get("/healthz")).status_code == 200
        assert proc.proc is not None
        proc.proc.send_signal(signal.SIGTERM)

        async def waiting() -> bool:
            return "Waiting for connections to close" in proc.log

        await poll(waiting)
        proc.proc.send_signal(signal.SIGTERM)
        assert await proc.exited() == 0
        assert "timeout graceful shutdown exceeded" not in proc.log
        cut = await reader.read()  # the request is cut short, not left hanging
        assert cut == b"" or cut.startswith(b"HTTP/1.1 500 "), cut
    finally:
        writer.close()


async def test_a_socket_still_joining_when_the_stop_closes_the_others_closes_once_joined(
    tmp_path: Path,
) -> None:
    """A socket admitted just before the stop began, whose join ends after the stop
    closed every socket, gets the same 1001 at once (it missed that close), so the
    stop does not wait for it and its client resumes elsewhere."""
    async with RunningServer(settings_for(tmp_path)) as server, Api(server.base_url) as api:
        created = await api.create()
        c = server.components
        async with contextlib.AsyncExitStack() as held:
            await held.enter_async_context(c.channels.lock(created["session_id"]))
            late = await api.connect(created["session_id"], created["owner_token"])
            stop = asyncio.create_task(server.shutdown(asyncio.Event()))
            await c.sockets.closing.wait()  # the others are closed; its join still waits
        assert await late.closed() == CloseCode.GOING_AWAY
        assert late.conn.close_reason == SHUTDOWN_REASON
        async with asyncio.timeout(TIMEOUT):
            await stop  # without waiting out its 5 s for the late socket
        assert c.sockets.none_open.is_set()


async def test_a_second_signal_ends_the_wait_for_sockets_to_finish_closing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The stop waits up to 5 s for the sockets' handlers to end; a second signal
    (``hurry``) ends that wait at once, and the log says so."""
    caplog.set_level(logging.INFO, logger="realtime_agent.app")
    async with RunningServer(settings_for(tmp_path)) as server, Api(server.base_url) as api:
        assert (await api.http.get("/healthz")).status_code == 200  # the lifespan has run
        c = server.components
        assert c.sockets.admit("sess-stuck", "192.0.2.1") is None  # a handler that never ends
        try:
            hurry = asyncio.Event()
            stop = asyncio.create_task(server.shutdown(hurry))
            await c.sockets.closing.wait()
            hurry.set()
            await stop
        finally:
            c.sockets.release("sess-stuck", "192.0.2.1")
    assert "a second signal: not waiting for 1 sockets to finish closing" in caplog.text
    assert "did not close in time" not in caplog.text  # it did not wait its 5 s out
