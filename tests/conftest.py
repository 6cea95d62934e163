"""Shared fixtures: a real server on a real socket, websocket clients, the model stand-in."""

from __future__ import annotations

import asyncio
import inspect
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from realtime_agent.config import Settings
from tests.helpers import Api, RunningServer, settings_for, standin_settings
from tests.standin_anthropic import AnthropicStandIn


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every async test fails on unhandled loop exceptions."""
    for item in items:
        if isinstance(item, pytest.Function) and inspect.iscoroutinefunction(item.obj):
            item.fixturenames.append("_fail_on_loop_errors")


@pytest.fixture
async def _fail_on_loop_errors() -> AsyncIterator[None]:
    """Fail a test when the event loop reports an unhandled exception (asyncpg's tearDown idea)."""
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    yield
    loop.set_exception_handler(previous)
    assert not errors, f"unhandled exceptions in the event loop: {errors}"


@pytest.fixture
def free_socket() -> Callable[[], socket.socket]:
    """A factory of listening sockets on free loopback ports."""

    def make() -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(512)
        return sock

    return make


@pytest.fixture
def settings(tmp_path: Any) -> Settings:
    """Embedded defaults on a fresh SQLite file, the demo model without delays."""
    return settings_for(tmp_path)


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[RunningServer]:
    """A real uvicorn server of the app on a free port."""
    async with RunningServer(settings) as running:
        yield running


@pytest.fixture
async def api(server: RunningServer) -> AsyncIterator[Api]:
    """REST and websocket helpers bound to ``server``."""
    async with Api(server.base_url) as client:
        yield client


@pytest.fixture
async def standin() -> AsyncIterator[AnthropicStandIn]:
    """A local server speaking the Anthropic Messages API."""
    async with AnthropicStandIn() as running:
        yield running


@pytest.fixture
async def claude(tmp_path: Any, standin: AnthropicStandIn) -> AsyncIterator[Api]:
    """A server using the Anthropic provider (the real SDK) against the stand-in."""
    settings = standin_settings(tmp_path, standin)
    async with RunningServer(settings) as running, Api(running.base_url) as client:
        yield client
