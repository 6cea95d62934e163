"""MCP tool servers: config loading, ``McpTools`` over stdio and streamable HTTP, the registry."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any, TypeVar

import orjson
import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from realtime_agent.tools.mcp import (
    HttpServerConfig,
    McpNotConnected,
    McpTool,
    McpToolError,
    McpTools,
    ServerConfig,
    StdioServerConfig,
    load_mcp_config,
    tool_name,
)
from realtime_agent.tools.registry import AnyTool, ToolContext, ToolRegistry
from tests.tools import sample_tools
from tests.tools.mcp_server import PID_FILE_ENV, build_server

SERVER_SCRIPT = str(Path(__file__).with_name("mcp_server.py"))
TIMEOUT = 30.0  # a safety net only: every wait below is for an event
T = TypeVar("T")


def ctx() -> ToolContext:
    return ToolContext(session_id="sess-test", context={})


async def within(awaitable: Awaitable[T]) -> T:
    async with asyncio.timeout(TIMEOUT):
        return await awaitable


def stdio_config(pid_file: Path) -> StdioServerConfig:
    return StdioServerConfig(sys.executable, (SERVER_SCRIPT,), {PID_FILE_ENV: str(pid_file)})


def by_name(mcp_tools: McpTools) -> dict[str, McpTool]:
    return {t.name: t for t in mcp_tools.tools()}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@contextlib.asynccontextmanager
async def started(**servers: ServerConfig) -> AsyncIterator[McpTools]:
    async with asyncio.timeout(TIMEOUT), McpTools(servers) as mcp_tools:
        yield mcp_tools


# --- stdio ----------------------------------------------------------------------------------


async def test_tools_listed_with_prefix_schema_and_changes(tmp_path: Path) -> None:
    """A config file's server has its tools listed at start-up: prefixed, with schemas and flags."""
    servers = {
        "kv": {
            "command": sys.executable,
            "args": [SERVER_SCRIPT],
            "env": {PID_FILE_ENV: str(tmp_path / "pid")},
        }
    }
    config = load_mcp_config(write_config(tmp_path, {"mcpServers": servers}))
    async with started(**config) as mcp_tools:
        tools = by_name(mcp_tools)
        assert sorted(tools) == ["kv__explode", "kv__lookup", "kv__store"]
        assert mcp_tools.connected("kv")
        lookup, store, explode = tools["kv__lookup"], tools["kv__store"], tools["kv__explode"]
        assert (lookup.changes, store.changes, explode.changes) == (False, True, True)
        assert {t.source for t in tools.values()} == {"mcp:kv"}
        assert lookup.remote_name == "lookup"
        assert lookup.description == "Look up the value stored under a key."
        assert lookup.input_schema["type"] == "object"
        assert lookup.input_schema["required"] == ["key"]
        assert set(store.input_schema["properties"]) == {"key", "value"}


async def test_store_then_lookup_round_trips(tmp_path: Path) -> None:
    """A change tool's effect is seen by the read tool: both run on the one live server."""
    async with started(kv=stdio_config(tmp_path / "pid")) as mcp_tools:
        tools = by_name(mcp_tools)
        assert await tools["kv__store"].call({"key": "city", "value": "Paris"}, ctx()) == (
            "stored 'city'"
        )
        assert await tools["kv__lookup"].call({"key": "city"}, ctx()) == "Paris"


async def test_failing_tool_raises_with_server_message(tmp_path: Path) -> None:
    """A result with isError raises McpToolError carrying the server's text."""
    async with started(kv=stdio_config(tmp_path / "pid")) as mcp_tools:
        tools = by_name(mcp_tools)
        with pytest.raises(McpToolError, match="kaboom: the test tool exploded"):
            await tools["kv__explode"].call({}, ctx())
        # Arguments the server's schema refuses are an error result too.
        with pytest.raises(McpToolError, match="key"):
            await tools["kv__lookup"].call({}, ctx())


async def test_unknown_command_starts_without_tools(tmp_path: Path) -> None:
    """A server whose command does not exist has no tools; the other server still works."""
    missing = StdioServerConfig(str(tmp_path / "no-such-server"))
    async with started(gone=missing, kv=stdio_config(tmp_path / "pid")) as mcp_tools:
        assert not mcp_tools.connected("gone")
        assert all(t.source == "mcp:kv" for t in mcp_tools.tools())
        assert await by_name(mcp_tools)["kv__lookup"].call({"key": "k"}, ctx()) == (
            "nothing stored under 'k'"
        )


async def test_silent_server_times_out() -> None:
    """A process that never answers initialize does not hold start-up past connect_timeout."""
    silent = StdioServerConfig(sys.executable, ("-c", "import sys; sys.stdin.read()"))
    async with asyncio.timeout(TIMEOUT), McpTools({"mute": silent}, connect_timeout=0.2) as m:
        assert not m.connected("mute")
        assert m.tools() == []


async def test_server_killed_is_reconnected(tmp_path: Path) -> None:
    """A killed server: calls say "not connected", then the supervisor restarts it (fresh state)."""
    pid_file = tmp_path / "pid"
    async with started(kv=stdio_config(pid_file)) as mcp_tools:
        tools = by_name(mcp_tools)
        await tools["kv__store"].call({"key": "k", "value": "v"}, ctx())
        first_pid = int(pid_file.read_text())
        os.kill(first_pid, signal.SIGKILL)
        await within(mcp_tools.wait_disconnected("kv"))
        assert not mcp_tools.connected("kv")
        # The tools stay listed while the server is down; calling one fails clearly.
        assert by_name(mcp_tools).keys() == tools.keys()
        with pytest.raises(McpNotConnected, match="MCP server 'kv' is not connected; retrying"):
            await tools["kv__lookup"].call({"key": "k"}, ctx())
        await within(mcp_tools.wait_connected("kv"))
        second_pid = int(pid_file.read_text())
        assert second_pid != first_pid
        assert not alive(first_pid)
        # The old McpTool objects still work: they call whatever session is live now.
        assert await tools["kv__lookup"].call({"key": "k"}, ctx()) == "nothing stored under 'k'"
        await by_name(mcp_tools)["kv__store"].call({"key": "k", "value": "again"}, ctx())
        assert await tools["kv__lookup"].call({"key": "k"}, ctx()) == "again"
    assert not alive(second_pid)  # leaving McpTools ended the server process


async def test_kill_without_waiting_fails_the_call_clearly(tmp_path: Path) -> None:
    """A call racing the server's death fails with "not connected" whichever side notices first."""
    pid_file = tmp_path / "pid"
    async with started(kv=stdio_config(pid_file)) as mcp_tools:
        os.kill(int(pid_file.read_text()), signal.SIGKILL)
        with pytest.raises(McpNotConnected, match="MCP server 'kv' is not connected"):
            await by_name(mcp_tools)["kv__lookup"].call({"key": "k"}, ctx())
        await within(mcp_tools.wait_disconnected("kv"))
        await within(mcp_tools.wait_connected("kv"))
        assert await by_name(mcp_tools)["kv__lookup"].call({"key": "k"}, ctx()) == (
            "nothing stored under 'k'"
        )


async def test_registry_sees_current_mcp_tools(tmp_path: Path) -> None:
    """A registry with McpTools as a dynamic source lists and finds them beside fixed tools."""
    async with started(kv=stdio_config(tmp_path / "pid")) as mcp_tools:
        registry = ToolRegistry([sample_tools.greet], dynamic=[mcp_tools.tools])
        assert [s.name for s in registry.specs()] == [
            "greet",
            "kv__lookup",
            "kv__store",
            "kv__explode",
        ]
        store = registry.get("kv__store")
        assert store is not None and store.changes
        assert await store.call({"key": "a", "value": "b"}, ctx()) == "stored 'a'"
        assert len(registry) == 4


def test_registry_dynamic_sources_are_read_each_time() -> None:
    """Dynamic sources are consulted on every read; a fixed tool's name wins over a dynamic one."""
    current: list[AnyTool] = []
    registry = ToolRegistry([sample_tools.greet], dynamic=[lambda: current])
    assert [t.name for t in registry] == ["greet"]
    current.append(sample_tools.shout)
    assert [t.name for t in registry] == ["greet", "shout"]
    assert registry.get("shout") is sample_tools.shout
    assert [s.name for s in registry.specs()] == ["greet", "shout"]
    current.append(dataclasses.replace(sample_tools.shout, name="greet"))
    assert registry.get("greet") is sample_tools.greet
    assert len(registry) == 2


# --- streamable HTTP ------------------------------------------------------------------------


def listening_socket(port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(64)
    return sock


class HttpMcpServer:
    """The test MCP server over streamable HTTP, served by uvicorn in this event loop.

    The socket is bound before uvicorn starts, so clients may connect at once.
    """

    def __init__(self) -> None:
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.headers: list[dict[str, str]] = []  # every HTTP request's headers

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def start(self) -> None:
        sock = listening_socket(self.port)
        self.port = sock.getsockname()[1]
        app = build_server().streamable_http_app()

        async def recording(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":
                self.headers.append({k.decode(): v.decode() for k, v in scope["headers"]})
            await app(scope, receive, send)

        config = uvicorn.Config(
            recording,
            log_level="warning",
            ws="none",
            lifespan="on",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        # The test process keeps its own signal handling.
        self._server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await within(self._task)
            self._server = self._task = None


@pytest.fixture
async def http_server() -> AsyncIterator[HttpMcpServer]:
    server = HttpMcpServer()
    server.start()
    try:
        yield server
    finally:
        await server.stop()


async def test_streamable_http_server(http_server: HttpMcpServer) -> None:
    """A url config reaches the server over streamable HTTP: same tools, flags, calls, headers."""
    config = HttpServerConfig(http_server.url, {"X-Api-Key": "k-123"})
    async with asyncio.timeout(TIMEOUT), McpTools({"web": config}) as m:
        tools = by_name(m)
        assert sorted(tools) == ["web__explode", "web__lookup", "web__store"]
        assert not tools["web__lookup"].changes and tools["web__store"].changes
        assert tools["web__store"].source == "mcp:web"
        await tools["web__store"].call({"key": "x", "value": "over http"}, ctx())
        assert await tools["web__lookup"].call({"key": "x"}, ctx()) == "over http"
        with pytest.raises(McpToolError, match="kaboom"):
            await tools["web__explode"].call({}, ctx())
    assert http_server.headers
    assert all(h.get("x-api-key") == "k-123" for h in http_server.headers)


async def test_streamable_http_server_restarted(http_server: HttpMcpServer) -> None:
    """An HTTP server that goes away: calls fail as "not connected" until it is back, then work."""
    async with asyncio.timeout(TIMEOUT), McpTools({"web": HttpServerConfig(http_server.url)}) as m:
        lookup = by_name(m)["web__lookup"]
        await by_name(m)["web__store"].call({"key": "x", "value": "before"}, ctx())
        await http_server.stop()
        with pytest.raises(McpNotConnected, match="MCP server 'web' is not connected"):
            await lookup.call({"key": "x"}, ctx())
        await within(m.wait_disconnected("web"))
        http_server.start()  # a new server (empty store) on the same port
        await within(m.wait_connected("web"))
        assert await lookup.call({"key": "x"}, ctx()) == "nothing stored under 'x'"


# --- config -----------------------------------------------------------------------------------


def write_config(tmp_path: Path, config: Any) -> Path:
    path = tmp_path / "mcp.json"
    path.write_bytes(config if isinstance(config, bytes) else orjson.dumps(config))
    return path


def test_load_config_both_kinds(tmp_path: Path) -> None:
    """stdio and HTTP entries load; a disabled one is left out."""
    path = write_config(
        tmp_path,
        {
            "mcpServers": {
                "files": {"command": "npx", "args": ["-y", "fs"], "env": {"A": "1"}},
                "web": {"url": "https://example.test/mcp", "headers": {"X-Key": "k"}},
                "typed": {"type": "stdio", "command": "srv", "cwd": "/tmp"},
                "off": {"command": "nothing", "disabled": True},
            }
        },
    )
    assert load_mcp_config(path) == {
        "files": StdioServerConfig("npx", ("-y", "fs"), {"A": "1"}),
        "web": HttpServerConfig("https://example.test/mcp", {"X-Key": "k"}),
        "typed": StdioServerConfig("srv", cwd="/tmp"),
    }


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"{not json", "not valid JSON"),
        ([], '"mcpServers" object'),
        ({"servers": {}}, '"mcpServers" object'),
        ({"mcpServers": {"a": "npx"}}, "server 'a': expected an object"),
        ({"mcpServers": {"a": {}}}, 'either "command"'),
        ({"mcpServers": {"a": {"command": "x", "url": "http://h"}}}, 'either "command"'),
        ({"mcpServers": {"a": {"command": ""}}}, '"command" must be a non-empty string'),
        ({"mcpServers": {"a": {"command": "x", "args": "-v"}}}, '"args" must be a list'),
        ({"mcpServers": {"a": {"command": "x", "env": {"N": 1}}}}, '"env" must be an object'),
        ({"mcpServers": {"a": {"url": "ftp://h"}}}, "http:// or https://"),
        ({"mcpServers": {"a": {"url": "http://h", "args": []}}}, "only apply to stdio"),
        ({"mcpServers": {"a": {"command": "x", "headers": {}}}}, "only apply to HTTP"),
        ({"mcpServers": {"a": {"command": "x", "comand": "y"}}}, "unknown keys 'comand'"),
        ({"mcpServers": {"a": {"type": "sse", "url": "http://h"}}}, "'sse' is not supported"),
        ({"mcpServers": {"a": {"type": "http", "command": "x"}}}, "does not go with"),
        ({"mcpServers": {"a": {"command": "x", "disabled": "yes"}}}, '"disabled" must be'),
        ({"mcpServers": {"a.b": {"command": "x"}, "a_b": {"command": "y"}}}, "prefix 'a_b'"),
    ],
)
def test_load_config_errors(tmp_path: Path, content: Any, match: str) -> None:
    """A malformed config raises ValueError saying what is wrong, and where."""
    with pytest.raises(ValueError, match=match):
        load_mcp_config(write_config(tmp_path, content))


def test_load_config_missing_file(tmp_path: Path) -> None:
    """A file that cannot be read is a ValueError too."""
    with pytest.raises(ValueError, match="cannot read MCP config"):
        load_mcp_config(tmp_path / "absent.json")


def test_tool_names_fit_the_api_pattern() -> None:
    """Names are <server>__<tool>, sanitised, cut to 64 characters with a distinguishing hash."""
    assert tool_name("kv", "lookup") == "kv__lookup"
    assert tool_name("my server", "get.item") == "my_server__get_item"
    long_a, long_b = tool_name("s", "x" * 80 + "a"), tool_name("s", "x" * 80 + "b")
    assert len(long_a) == len(long_b) == 64 and long_a != long_b
    assert long_a.startswith("s__xxx")
