"""The ``realtime-agent`` command as a user runs it: real subprocesses, real sockets."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.processes import READY_LINE

TIMEOUT = 30.0
FINAL = {"completed", "completed_with_errors", "error", "interrupted"}


def command() -> str:
    """The installed console script, beside this interpreter (else on PATH)."""
    beside = Path(sys.executable).with_name("realtime-agent")
    found = str(beside) if beside.is_file() else shutil.which("realtime-agent")
    assert found is not None, "the realtime-agent command is not installed"
    return found


def clean_env() -> dict[str, str]:
    """This environment without any of the server's settings, and a fast demo model."""
    dropped = {"DATABASE_URL", "REDIS_URL", "ANTHROPIC_API_KEY"}
    env = {k: v for k, v in os.environ.items() if k not in dropped and not k.startswith("RA_")}
    env["RA_DEMO_CHUNK_DELAY"] = "0"
    return env


def run(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [command(), *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env={**clean_env(), **(env or {})},
        cwd=cwd,
        check=False,
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def collect(stream: asyncio.StreamReader, lines: list[str]) -> None:
    """Keep reading the server's log to its end (so its pipe never fills)."""
    async for raw in stream:
        lines.append(raw.decode(errors="replace"))


async def recv(ws: ClientConnection) -> dict[str, Any]:
    async with asyncio.timeout(TIMEOUT):
        raw = await ws.recv()
    frame: dict[str, Any] = json.loads(raw)
    return frame


# --- help and schema --------------------------------------------------------------


def test_help_explains_the_command() -> None:
    """``realtime-agent --help`` exits 0 and names the server and its subcommands."""
    result = run("--help")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("usage: realtime-agent")
    assert "websocket" in out and "serve" in out and "schema" in out
    assert "environment" in out


def test_serve_help_explains_its_options() -> None:
    """``realtime-agent serve --help`` exits 0 and documents host, port, log level and defaults."""
    result = run("serve", "--help")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("usage: realtime-agent serve")
    for word in ("--host", "--port", "--log-level", "SQLite", "demo model"):
        assert word in out, word


def test_schema_help_explains_itself() -> None:
    """``realtime-agent schema --help`` exits 0 and says it prints the protocol's JSON Schema."""
    result = run("schema", "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: realtime-agent schema")
    assert "JSON Schema" in result.stdout, result.stdout


def test_unknown_subcommand_fails() -> None:
    """An unknown subcommand exits non-zero with an error naming the valid ones."""
    result = run("frobnicate")
    assert result.returncode != 0
    assert "invalid choice" in result.stderr and "serve" in result.stderr


def test_no_subcommand_fails() -> None:
    """Running the command with no subcommand exits non-zero with its usage."""
    result = run()
    assert result.returncode != 0
    assert "usage: realtime-agent" in result.stderr


def test_schema_prints_a_json_schema(tmp_path: Path) -> None:
    """``realtime-agent schema`` prints a valid 2020-12 JSON Schema that accepts a hello frame."""
    result = run("schema", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    validator = jsonschema.Draft202012Validator(schema)
    validator.validate({"type": "ping", "id": 1})
    assert not validator.is_valid({"type": "nonsense"})
    assert list(tmp_path.iterdir()) == [], "schema must not create files"


# --- configuration errors ----------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"RA_TOKEN_TTL_SECONDS": "0"}, "RA_TOKEN_TTL_SECONDS: Input should be greater than"),
        ({"RA_SECRET": "short-secret"}, "RA_SECRET: must be at least 16 bytes"),
        (
            {"DATABASE_URL": "mysql://root:hunter2@db/app"},
            "DATABASE_URL: unsupported scheme 'mysql'",
        ),
    ],
)
@pytest.mark.parametrize("subcommand", ["serve", "migrate"])
def test_an_invalid_setting_is_named_without_a_traceback(
    subcommand: str, env: dict[str, str], expected: str, tmp_path: Path
) -> None:
    """A bad setting ends ``serve`` and ``migrate`` at once with exit 2 and one line
    naming the environment variable, not a traceback; the value is not echoed (it may
    be a secret or a URL with a password)."""
    result = run(subcommand, cwd=tmp_path, env=env)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("realtime-agent: invalid configuration:\n"), result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert "short-secret" not in result.stderr and "hunter2" not in result.stderr
    assert list(tmp_path.iterdir()) == []  # nothing was created, no database opened


def test_the_app_factory_names_an_invalid_setting_without_its_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Built without settings (``uvicorn realtime_agent.app:create_app --factory``, an
    embedding program), the app reads the environment the same way: the error names the
    variables, never a secret or a password."""
    from realtime_agent.app import create_app
    from realtime_agent.config import ConfigError

    monkeypatch.setenv("RA_SECRET", "short-secret")
    monkeypatch.setenv("DATABASE_URL", "root:hunter2@db/app")
    with pytest.raises(ConfigError) as info:
        create_app()
    text = str(info.value)
    assert "RA_SECRET: must be at least 16 bytes" in text
    assert "DATABASE_URL: unsupported scheme none" in text
    assert "short-secret" not in text and "hunter2" not in text and "root" not in text


# --- serve -----------------------------------------------------------------------


@dataclass
class Served:
    """A ``realtime-agent serve`` subprocess and everything it has logged so far."""

    port: int
    proc: asyncio.subprocess.Process
    lines: list[str]
    drain: asyncio.Task[None]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> str:
        return "".join(self.lines)

    async def create(self) -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=self.base_url, timeout=TIMEOUT) as http:
            response = await http.post("/agent/sessions", json={"character_id": 1})
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    async def terminate(self) -> int:
        """SIGTERM, then the exit code once the process and its log have ended."""
        self.proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(TIMEOUT):
            code = await self.proc.wait()
            await self.drain
        return code


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    """``realtime-agent serve --port P`` in ``tmp_path`` with a clean environment, ready."""
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        command(),
        "serve",
        "--port",
        str(port),
        cwd=tmp_path,
        env=clean_env(),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    drain: asyncio.Task[None] | None = None
    try:
        # uvicorn logs this line once the lifespan (store, model, signer) is up and
        # its socket listens.
        async with asyncio.timeout(TIMEOUT):
            while not any(READY_LINE in line for line in lines):
                raw = await proc.stdout.readline()
                assert raw, "the server exited before it was ready:\n" + "".join(lines)
                lines.append(raw.decode(errors="replace"))
        drain = asyncio.create_task(collect(proc.stdout, lines))
        yield Served(port, proc, lines, drain)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        if drain is not None:
            await asyncio.gather(drain, return_exceptions=True)


async def test_serve_holds_a_demo_conversation(served: Served, tmp_path: Path) -> None:
    """With no environment, the served demo model answers over a websocket, the SQLite file
    is created in the working directory, and the log warns that RA_SECRET is unset."""
    created = await served.create()
    assert created["ws_url"] == f"ws://127.0.0.1:{served.port}/agent/ws/{created['session_id']}"
    url = f"{created['ws_url']}?token={created['owner_token']}"
    async with connect(url, open_timeout=TIMEOUT) as ws:
        hello = await recv(ws)
        assert hello["type"] == "hello" and hello["role"] == "owner"
        assert hello["session_id"] == created["session_id"]
        snapshot = await recv(ws)
        assert snapshot["type"] == "snapshot" and snapshot["messages"] == []
        await ws.send(json.dumps({"type": "message", "content": "hi", "client_id": "c-1"}))
        events: list[dict[str, Any]] = []
        while not (events and events[-1]["type"] == "status" and events[-1]["status"] in FINAL):
            frame = await recv(ws)
            if "seq" in frame:
                events.append(frame)
    assert events[-1]["status"] == "completed"
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    replies = [
        e["message"]
        for e in events
        if e["type"] == "message" and e["message"]["role"] == "assistant"
    ]
    assert len(replies) == 1
    assert "offline demo model" in replies[0]["content"]
    deltas = [e["text"] for e in events if e["type"] == "delta"]
    assert len(deltas) > 1 and "".join(deltas) == replies[0]["content"]
    assert (tmp_path / "realtime-agent.db").is_file()
    assert "RA_SECRET is not set" in served.log


async def test_serve_leaves_its_start_up_heap_out_of_garbage_collections(served: Served) -> None:
    """The served process froze the objects alive after start-up (gc.freeze), and
    /healthz shows it with the full collections since it serves; one that sockets
    trigger later walks only what came after."""
    async with httpx.AsyncClient(base_url=served.base_url, timeout=TIMEOUT) as http:
        health = (await http.get("/healthz")).json()
    assert health["gc"]["frozen_objects"] > 10_000, health  # modules, classes, SDK models
    # counted once serving: the start-up collections (the freeze's own, about 100 ms)
    # are not pauses an operator should see as the server's
    assert health["gc"]["full_collections"] == 0, health
    assert "start-up heap frozen" in served.log


async def test_serve_exits_0_on_sigterm(served: Served) -> None:
    """SIGTERM shuts the server down gracefully: open sockets are closed and it exits 0."""
    created = await served.create()
    url = f"{created['ws_url']}?token={created['viewer_token']}"
    async with connect(url, open_timeout=TIMEOUT) as ws:
        assert (await recv(ws))["type"] == "hello"
        assert (await recv(ws))["type"] == "snapshot"
        code = await served.terminate()
        async with asyncio.timeout(TIMEOUT):
            await ws.wait_closed()
    assert ws.close_code in {1001, 1012}, ws.close_code
    assert code == 0, f"exit code {code}\n{served.log}"
    assert "Application shutdown complete" in served.log


async def test_serve_does_not_log_session_tokens(served: Served) -> None:
    """The server's log never shows a session token, not even one sent in the ws query string."""
    created = await served.create()
    url = f"{created['ws_url']}?token={created['owner_token']}"
    async with connect(url, open_timeout=TIMEOUT) as ws:
        assert (await recv(ws))["type"] == "hello"
    await served.terminate()
    assert created["session_id"] in served.log, "the websocket request was not logged at all"
    assert created["owner_token"] not in served.log, served.log


def test_common_names_are_also_read_with_the_prefix_and_win_over_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``RA_DATABASE_URL`` and the other three work as documented; the common name wins."""
    from realtime_agent.config import load_settings

    for name in ("DATABASE_URL", "REDIS_URL", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("RA_" + name, "prefixed")
    monkeypatch.setenv("RA_DATABASE_URL", "sqlite:///prefixed.db")
    prefixed = load_settings()
    assert prefixed.database_url == "sqlite:///prefixed.db"
    assert prefixed.redis_url == "prefixed"
    assert prefixed.anthropic_base_url == "prefixed"
    assert prefixed.anthropic_api_key is not None
    assert prefixed.anthropic_api_key.get_secret_value() == "prefixed"

    monkeypatch.setenv("DATABASE_URL", "sqlite:///common.db")
    assert load_settings().database_url == "sqlite:///common.db"
