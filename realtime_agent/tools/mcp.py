"""Tools from MCP servers: ``load_mcp_config``, ``McpTools`` and ``McpTool``.

A config file in the common ``{"mcpServers": {...}}`` shape names the
servers: stdio ones (``command``, ``args``, ``env``, ``cwd``) that run as
subprocesses, and streamable HTTP ones (``url``, ``headers``). ``McpTools``
keeps one supervisor task per server: it connects, lists the server's tools,
holds the session open, and when the connection is lost reconnects with
exponential backoff and lists the tools again. Its ``tools()`` are what the
servers offer now, ready for ``ToolRegistry(..., dynamic=[mcp_tools.tools])``.

Every SDK context manager (transport, ``ClientSession``) is entered and left
in its supervisor task, as anyio requires. Tool calls come from other tasks
(the agent's): a ``ClientSession`` supports concurrent requests from any task
of its event loop, the dispatcher matching each answer to its waiter.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import sys
import time
from collections.abc import Iterable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TextIO

import anyio
import httpx2
import mcp.types as mcp_types
import orjson
from mcp import ClientSession, MCPError, StdioServerParameters, stdio_client
from mcp.client import Transport
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.jsonrpc_dispatcher import JSONRPCDispatcher
from mcp.shared.transport_context import TransportContext

from .registry import ToolContext

log = logging.getLogger(__name__)

_NAME_BAD = re.compile(r"[^A-Za-z0-9_-]")
_MAX_NAME = 64  # the Anthropic API's limit on tool names
_MAX_PAGES = 100  # tools/list pages per listing: a server that never stops paging cannot hang us
_STDIO_KEYS = frozenset({"command", "args", "env", "cwd"})
_HTTP_KEYS = frozenset({"url", "headers"})
_COMMON_KEYS = frozenset({"type", "disabled"})
_TYPES = {"stdio": "stdio", "http": "http", "streamable-http": "http", "streamableHttp": "http"}


@dataclass(frozen=True, slots=True)
class StdioServerConfig:
    """A server run as a subprocess, speaking MCP on its stdin and stdout."""

    command: str
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None


@dataclass(frozen=True, slots=True)
class HttpServerConfig:
    """A server reached over MCP's streamable HTTP transport."""

    url: str
    headers: Mapping[str, str] = field(default_factory=dict)


ServerConfig = StdioServerConfig | HttpServerConfig


def load_mcp_config(path: str | Path) -> dict[str, ServerConfig]:
    """Read ``{"mcpServers": {"name": {...}, ...}}`` from the JSON file at ``path``.

    A server has ``command`` (with optional ``args``, ``env``, ``cwd``) for
    stdio or ``url`` (with optional ``headers``) for streamable HTTP; an
    optional ``type`` ("stdio", "http", "streamable-http") must agree, and
    ``"disabled": true`` leaves a server out. Raises ValueError naming the
    problem for a file that is unreadable, not JSON or not of this shape.
    """
    try:
        raw: Any = orjson.loads(Path(path).read_bytes())
    except OSError as exc:
        raise ValueError(f"cannot read MCP config {str(path)!r}: {exc}") from exc
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"MCP config {str(path)!r} is not valid JSON: {exc}") from exc
    where = f"MCP config {str(path)!r}"
    if not isinstance(raw, dict) or not isinstance(raw.get("mcpServers"), dict):
        raise ValueError(f'{where}: expected an object with an "mcpServers" object')
    servers: dict[str, ServerConfig] = {}
    prefixes: dict[str, str] = {}
    for name, entry in raw["mcpServers"].items():
        at = f"{where}, server {name!r}"
        if not name:
            raise ValueError(f"{where}: a server has an empty name")
        if not isinstance(entry, dict):
            raise ValueError(f"{at}: expected an object")
        disabled = entry.get("disabled", False)
        if not isinstance(disabled, bool):
            raise ValueError(f'{at}: "disabled" must be true or false')
        config = _server_config(at, entry)
        if disabled:
            continue
        prefix = _sanitize(name)
        if (other := prefixes.setdefault(prefix, name)) != name:
            raise ValueError(f"{at}: its tool prefix {prefix!r} is also {other!r}'s; rename one")
        servers[name] = config
    return servers


def _server_config(at: str, entry: dict[str, Any]) -> ServerConfig:
    if unknown := sorted(set(entry) - _STDIO_KEYS - _HTTP_KEYS - _COMMON_KEYS):
        raise ValueError(f"{at}: unknown keys {', '.join(map(repr, unknown))}")
    kind = entry.get("type")
    if kind is not None and kind not in _TYPES:
        known = ", ".join(map(repr, _TYPES))
        raise ValueError(f'{at}: "type" {kind!r} is not supported (use one of {known})')
    if ("command" in entry) == ("url" in entry):
        raise ValueError(f'{at}: needs either "command" (stdio) or "url" (streamable HTTP)')
    if "url" in entry:
        if kind is not None and _TYPES[kind] != "http":
            raise ValueError(f'{at}: "type" {kind!r} does not go with "url"')
        if extra := sorted(_STDIO_KEYS & set(entry)):
            raise ValueError(f"{at}: {', '.join(map(repr, extra))} only apply to stdio servers")
        url = entry["url"]
        if not isinstance(url, str) or not re.match(r"https?://[^/\s]", url):
            raise ValueError(f'{at}: "url" must be an http:// or https:// URL')
        return HttpServerConfig(url, _str_map(at, entry, "headers"))
    if kind is not None and _TYPES[kind] != "stdio":
        raise ValueError(f'{at}: "type" {kind!r} does not go with "command"')
    if extra := sorted(_HTTP_KEYS & set(entry)):
        raise ValueError(f"{at}: {', '.join(map(repr, extra))} only apply to HTTP servers")
    command = entry["command"]
    if not isinstance(command, str) or not command:
        raise ValueError(f'{at}: "command" must be a non-empty string')
    args = entry.get("args", [])
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise ValueError(f'{at}: "args" must be a list of strings')
    cwd = entry.get("cwd")
    if cwd is not None and not isinstance(cwd, str):
        raise ValueError(f'{at}: "cwd" must be a string')
    return StdioServerConfig(command, tuple(args), _str_map(at, entry, "env"), cwd)


def _str_map(at: str, entry: dict[str, Any], key: str) -> dict[str, str]:
    value = entry.get(key, {})
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ValueError(f'{at}: "{key}" must be an object of strings')
    return dict(value)


def _sanitize(name: str) -> str:
    return _NAME_BAD.sub("_", name)


def tool_name(server: str, tool: str) -> str:
    """The registry name of a server's tool: ``<server>__<tool>``, within ``[A-Za-z0-9_-]{1,64}``.

    Characters outside the set become ``_``; a name too long is cut and ends
    with a hash of the whole, so it stays unique.
    """
    full = _sanitize(f"{server}__{tool}")
    if len(full) <= _MAX_NAME:
        return full
    digest = hashlib.sha256(f"{server}\0{tool}".encode()).hexdigest()[:8]
    return f"{full[: _MAX_NAME - 9]}_{digest}"


class McpToolError(RuntimeError):
    """An MCP tool call failed: the server reported an error, or refused the request."""


class McpNotConnected(McpToolError):
    """The tool's server is not connected (its supervisor is reconnecting)."""


@dataclass(frozen=True, eq=False)
class McpTool:
    """One tool of one MCP server, with the surface of :class:`~.registry.Tool`."""

    name: str
    description: str
    changes: bool
    input_schema: dict[str, Any]
    source: str
    server: str
    remote_name: str
    _owner: _Server = field(repr=False)

    async def call(self, arguments: dict[str, Any], ctx: ToolContext) -> str:
        """Call the tool on its server's live session and return its text.

        Raises :class:`McpNotConnected` when the server is down (or the
        connection is lost during the call), :class:`McpToolError` when the
        server answers with an error. The caller owns the timeout.
        """
        link = self._owner.link
        if link is None:
            raise McpNotConnected(f"MCP server {self.server!r} is not connected; retrying")
        try:
            result = await link.session.call_tool(self.remote_name, arguments)
        except MCPError as exc:
            if _connection_lost(exc):
                link.lost.set()
                raise McpNotConnected(
                    f"MCP server {self.server!r} is not connected (the connection was lost "
                    "during the call, which may or may not have run); retrying"
                ) from None
            raise McpToolError(
                f"MCP server {self.server!r} refused the call to {self.remote_name!r}: "
                f"{exc.message}"
            ) from None
        text = _result_text(result)
        if result.is_error:
            raise McpToolError(text or f"MCP tool {self.remote_name!r} failed without a message")
        return text


def _connection_lost(exc: MCPError) -> bool:
    # Streamable HTTP answers 404 "Session terminated" once the server forgot
    # the session (it restarted): the connection must be made anew.
    return exc.code == mcp_types.CONNECTION_CLOSED or (
        exc.code == mcp_types.INVALID_REQUEST and exc.message == "Session terminated"
    )


def _result_text(result: mcp_types.CallToolResult) -> str:
    parts: list[str] = []
    for block in result.content:
        if isinstance(block, mcp_types.TextContent):
            parts.append(block.text)
        elif isinstance(block, mcp_types.ImageContent):
            parts.append(f"[image: {block.mime_type}]")
        elif isinstance(block, mcp_types.AudioContent):
            parts.append(f"[audio: {block.mime_type}]")
        elif isinstance(block, mcp_types.ResourceLink):
            parts.append(f"[resource link: {block.uri}]")
        elif isinstance(block.resource, mcp_types.TextResourceContents):
            parts.append(block.resource.text)
        else:
            parts.append(f"[resource: {block.resource.uri}]")
    if not parts and result.structured_content is not None:
        return orjson.dumps(result.structured_content, option=orjson.OPT_INDENT_2).decode()
    return "\n".join(parts)


class _WatchedDispatcher(JSONRPCDispatcher[TransportContext]):
    """The SDK's dispatcher, telling when its receive loop ends (the transport closed)."""

    lost: asyncio.Event

    async def run(self, *args: Any, **kwargs: Any) -> None:
        try:
            await super().run(*args, **kwargs)
        finally:
            self.lost.set()


@dataclass(slots=True)
class _Link:
    """One live connection to a server."""

    session: ClientSession
    lost: asyncio.Event


@dataclass(eq=False)
class _Server:
    """A configured server and what its supervisor knows of it now."""

    name: str
    config: ServerConfig
    link: _Link | None = None
    tools: tuple[McpTool, ...] = ()
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    disconnected: asyncio.Event = field(default_factory=asyncio.Event)
    attempted: asyncio.Event = field(default_factory=asyncio.Event)
    scope: anyio.CancelScope | None = None  # made in __aenter__: anyio needs a running loop
    task: asyncio.Task[None] | None = None


class McpTools:
    """The tools of a set of MCP servers, each kept connected by its own supervisor task.

    ``async with McpTools(load_mcp_config(path)) as mcp_tools:`` starts one
    supervisor per server and returns once each has made its first attempt
    to connect, so the tools of every server that started are listed; a
    server that failed just has none yet (logged), and its supervisor keeps
    trying. Leaving the block stops the supervisors and closes the sessions
    (a stdio server's process is ended).

    A server whose connection is lost keeps its last known tools: a call then
    fails with "not connected; retrying" until the supervisor has reconnected
    (after ``backoff`` seconds, doubling up to ``max_backoff`` while attempts
    keep failing) and listed the tools again.
    """

    def __init__(
        self,
        servers: Mapping[str, ServerConfig],
        *,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        connect_timeout: float = 30.0,
        errlog: TextIO | None = None,
    ) -> None:
        if backoff <= 0 or max_backoff < backoff:
            raise ValueError("backoff must be positive and at most max_backoff")
        self._servers = {name: _Server(name, config) for name, config in servers.items()}
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._connect_timeout = connect_timeout
        self._errlog = errlog  # a stdio server's stderr; None: this process's stderr
        self._started = False

    def tools(self) -> list[McpTool]:
        """The tools every server offers now (the last known ones of a server that is down)."""
        return [t for server in self._servers.values() for t in server.tools]

    def connected(self, server: str) -> bool:
        """Whether ``server`` has a live session now."""
        return self._server(server).link is not None

    async def wait_connected(self, server: str) -> None:
        """Wait until ``server`` is connected with its tools listed."""
        await self._server(server).connected.wait()

    async def wait_disconnected(self, server: str) -> None:
        """Wait until ``server`` is known to be down (its supervisor noticed)."""
        await self._server(server).disconnected.wait()

    def _server(self, name: str) -> _Server:
        try:
            return self._servers[name]
        except KeyError:
            raise KeyError(f"no MCP server named {name!r}") from None

    async def __aenter__(self) -> Self:
        if self._started:
            raise RuntimeError("McpTools can be entered only once")
        self._started = True
        for server in self._servers.values():
            server.disconnected.set()
            server.scope = anyio.CancelScope()
            server.task = asyncio.create_task(
                self._supervise(server), name=f"mcp-supervisor-{server.name}"
            )
        try:
            for server in self._servers.values():
                await server.attempted.wait()
        except BaseException:
            await self._stop()
            raise
        up = [s.name for s in self._servers.values() if s.link is not None]
        log.info(
            "MCP servers: %d of %d connected, %d tools",
            len(up),
            len(self._servers),
            len(self.tools()),
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stop()

    async def _stop(self) -> None:
        # anyio cancellation, not Task.cancel(): the SDK shields the stdio
        # shutdown (close stdin, wait, kill) from anyio cancellation only.
        for server in self._servers.values():
            if server.scope is not None:
                server.scope.cancel()
        tasks = [s.task for s in self._servers.values() if s.task is not None]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            raise

    async def _supervise(self, server: _Server) -> None:
        delay = self._backoff
        assert server.scope is not None
        try:
            with server.scope:
                while True:
                    started = time.monotonic()
                    try:
                        await self._connection(server)
                        reason = "connection closed"
                    except Exception as exc:
                        reason = _describe(exc)
                    finally:
                        server.link = None
                        server.connected.clear()
                        server.disconnected.set()
                        server.attempted.set()
                    if time.monotonic() - started >= self._max_backoff:
                        delay = self._backoff  # it was up for a while: a fresh start
                    log.warning(
                        "MCP server %r is down (%s); retrying in %g s", server.name, reason, delay
                    )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self._max_backoff)
        finally:
            server.attempted.set()

    async def _connection(self, server: _Server) -> None:
        """Connect, list the tools, and hold the session until the connection is lost."""
        lost = asyncio.Event()
        async with AsyncExitStack() as stack:
            transport = await self._transport(server.config, stack)
            read, write = await stack.enter_async_context(transport)
            dispatcher = _WatchedDispatcher(read, write)
            dispatcher.lost = lost
            session = await stack.enter_async_context(
                ClientSession(
                    dispatcher=dispatcher,
                    client_info=mcp_types.Implementation(name="realtime-agent", version="0.1.0"),
                )
            )
            async with asyncio.timeout(self._connect_timeout):
                await session.initialize()
                listed = await _list_tools(session)
            server.tools = tuple(self._tools(server, listed))
            server.link = _Link(session, lost)
            server.disconnected.clear()
            server.connected.set()
            server.attempted.set()
            names = ", ".join(t.name for t in server.tools) or "none"
            log.info("MCP server %r connected; tools: %s", server.name, names)
            await lost.wait()

    async def _transport(self, config: ServerConfig, stack: AsyncExitStack) -> Transport:
        if isinstance(config, HttpServerConfig):
            # The SDK leaves a client it was given open: the stack closes this one.
            client = await stack.enter_async_context(
                httpx2.AsyncClient(
                    headers=dict(config.headers), timeout=httpx2.Timeout(30.0, read=300.0)
                )
            )
            return streamable_http_client(config.url, http_client=client)
        params = StdioServerParameters(
            command=config.command, args=list(config.args), env=dict(config.env), cwd=config.cwd
        )
        return stdio_client(params, errlog=self._errlog or sys.stderr)

    def _tools(self, server: _Server, listed: Iterable[mcp_types.Tool]) -> Iterable[McpTool]:
        seen: set[str] = set()
        for t in listed:
            name = tool_name(server.name, t.name)
            if name in seen:
                log.warning(
                    "MCP server %r: tool %r clashes as %r; left out", server.name, t.name, name
                )
                continue
            seen.add(name)
            read_only = t.annotations is not None and t.annotations.read_only_hint is True
            yield McpTool(
                name=name,
                description=t.description or t.title or t.name,
                changes=not read_only,
                input_schema=dict(t.input_schema),
                source=f"mcp:{server.name}",
                server=server.name,
                remote_name=t.name,
                _owner=server,
            )


async def _list_tools(session: ClientSession) -> list[mcp_types.Tool]:
    tools: list[mcp_types.Tool] = []
    cursor: str | None = None
    for _ in range(_MAX_PAGES):
        params = None if cursor is None else mcp_types.PaginatedRequestParams(cursor=cursor)
        page = await session.list_tools(params=params)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if cursor is None:
            break
    return tools


def _describe(exc: BaseException) -> str:
    """A one-line reason, looking inside the exception groups anyio raises."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    if isinstance(exc, TimeoutError):
        return "no answer to initialize in time"
    return f"{type(exc).__name__}: {exc}"
