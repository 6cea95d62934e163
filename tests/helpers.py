"""Test helpers: a server in this event loop on a real socket, and real clients."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, Self

import httpx
import orjson
import uvicorn
from starlette.applications import Starlette
from websockets.asyncio.client import ClientConnection, connect

from realtime_agent.app import create_app, server_config
from realtime_agent.config import Settings
from realtime_agent.web.components import Components

TIMEOUT = 10.0
Frame = dict[str, Any]


def settings_for(tmp_path: Path, **overrides: Any) -> Settings:
    """Embedded settings on a SQLite file under ``tmp_path``; overrides by field name."""
    values: dict[str, Any] = {
        "database_url": f"sqlite:///{tmp_path / 'ra.db'}",
        "redis_url": None,
        "anthropic_api_key": None,
        "secret": "test-secret-0123456789abcdef",
        "api_key": None,
        "demo_chunk_delay": 0.0,
    }
    values.update(overrides)
    return Settings(**values)


def standin_settings(tmp_path: Path, standin: Any, **overrides: Any) -> Settings:
    """Settings that use the Anthropic provider (the real SDK) against the stand-in."""
    values: dict[str, Any] = {
        "anthropic_api_key": "test-key",
        "anthropic_base_url": standin.base_url,
        "llm_max_retries": 0,
    }
    return settings_for(tmp_path, **(values | overrides))


def listening_socket(port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(1024)
    return sock


class RunningServer:
    """The app served by uvicorn in this event loop, on a socket bound before start.

    Clients may connect at once: the kernel queues them until uvicorn accepts.
    ``restart()`` stops it and serves a new app on the same port.
    """

    def __init__(self, settings: Settings, *, ws: str | None = None) -> None:
        self.settings = settings
        self.ws = ws  # e.g. "websockets-sansio": uvicorn's own protocol, without our direct path
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._app: Starlette | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        sock = listening_socket(self.port)
        self.port = sock.getsockname()[1]
        self._app = create_app(self.settings)
        config = server_config(
            self._app,
            self.settings,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
        )
        if self.ws is not None:
            config.ws = self.ws
        self._server = uvicorn.Server(config)
        # The test process keeps its own signal handling (uvicorn would take SIGINT).
        self._server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))

    def _graceful(self) -> functools.partial[Coroutine[Any, Any, None]]:
        assert self._app is not None, "not started"
        graceful: functools.partial[Coroutine[Any, Any, None]] = self._app.state.graceful_shutdown
        return graceful

    def shutdown(self, hurry: asyncio.Event) -> Coroutine[Any, Any, None]:
        """What SIGTERM runs (``realtime_agent.app.graceful_shutdown``) on the running
        app; ``hurry`` is the second signal. The app's lifespan sets it up: an answered
        request shows it has run."""
        return self._graceful()(hurry)

    @property
    def components(self) -> Components:
        """The running app's components (as its graceful shutdown holds them)."""
        components: Components = self._graceful().args[0]
        return components

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
            self._server = self._task = None

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


class WSClient:
    """A websocket client that keeps every frame it received."""

    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn
        self.frames: list[Frame] = []

    async def recv(self) -> Frame:
        async with asyncio.timeout(TIMEOUT):
            raw = await self.conn.recv()
        frame: Frame = orjson.loads(raw)
        self.frames.append(frame)
        return frame

    async def until(self, pred: Callable[[Frame], bool]) -> Frame:
        """Receive until a frame matches ``pred``; return it."""
        while True:
            frame = await self.recv()
            if pred(frame):
                return frame

    async def until_type(self, kind: str) -> Frame:
        return await self.until(lambda f: f["type"] == kind)

    async def until_status(self, *statuses: str) -> Frame:
        return await self.until(lambda f: f["type"] == "status" and f["status"] in statuses)

    async def until_idle(self) -> Frame:
        """Until the run ends (any final status)."""
        return await self.until_status("completed", "completed_with_errors", "error", "interrupted")

    async def send(self, frame: Frame) -> None:
        await self.conn.send(orjson.dumps(frame).decode())

    async def message(self, content: str, client_id: str, **extra: Any) -> None:
        await self.send({"type": "message", "content": content, "client_id": client_id, **extra})

    def events(self) -> list[Frame]:
        """Frames that belong to the session's history (they have a seq)."""
        return [f for f in self.frames if "seq" in f]

    async def closed(self) -> int | None:
        """Wait for the server to close the socket; its close code."""
        async with asyncio.timeout(TIMEOUT):
            await self.conn.wait_closed()
        return self.conn.close_code

    async def close(self) -> None:
        await self.conn.close()


class Api:
    """REST calls and websocket connections against one server."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = httpx.AsyncClient(base_url=base_url, timeout=TIMEOUT)
        self._sockets: list[WSClient] = []

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        for ws in self._sockets:
            await ws.close()
        await self.http.aclose()

    async def create(self, character_id: int = 7, **body: Any) -> dict[str, Any]:
        response = await self.http.post(
            "/agent/sessions", json={"character_id": character_id, **body}
        )
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    def ws_url(self, session_id: str, token: str | None, after: int | None = None) -> str:
        url = self.base_url.replace("http://", "ws://") + f"/agent/ws/{session_id}"
        query = [f"token={token}"] if token is not None else []
        if after is not None:
            query.append(f"after={after}")
        return url + ("?" + "&".join(query) if query else "")

    async def connect(
        self, session_id: str, token: str | None, after: int | None = None, **kw: Any
    ) -> WSClient:
        # Test clients buffer without limit unless told otherwise: one that does not read
        # its events must still see the close handshake when the test ends.
        kw.setdefault("max_queue", None)
        kw.setdefault("max_size", None)  # a final message may be larger than 1 MiB
        conn = await connect(self.ws_url(session_id, token, after), open_timeout=TIMEOUT, **kw)
        client = WSClient(conn)
        self._sockets.append(client)
        return client

    async def join(
        self, created: dict[str, Any], role: str = "owner", after: int | None = None
    ) -> WSClient:
        """Connect and read ``hello`` (and the ``snapshot`` when not resumed)."""
        client = await self.connect(created["session_id"], created[f"{role}_token"], after)
        hello = await client.recv()
        assert hello["type"] == "hello", hello
        if not hello["resumed"]:
            assert (await client.recv())["type"] == "snapshot"
        return client


async def poll(
    check: Callable[[], Awaitable[bool]], *, every: float = 0.1, limit: float = 20
) -> None:
    """Wait for a condition outside this process that sends no event (an HTTP status a
    load balancer would poll, a process binding its port). Only for those: everything
    the server pushes is awaited as an event."""
    async with asyncio.timeout(limit):
        while not await check():  # noqa: ASYNC110 - nothing to subscribe to
            await asyncio.sleep(every)
