"""``create_app(settings)``: the Starlette app whose lifespan builds every component once."""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import secrets
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import TypedDict

import uvicorn
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from .aio import wait_unless
from .auth import TokenSigner
from .channels.base import ChannelLayer
from .channels.memory import MemoryChannels
from .channels.redis import RedisChannels
from .config import Settings, load_settings
from .errors import Unavailable
from .gcwatch import GcWatch, freeze_startup_heap
from .limits import SocketCounts
from .llm.base import LLM
from .llm.demo import DemoLLM
from .protocol import SHUTDOWN_REASON, CloseCode
from .runtime import Agent, AgentConfig
from .sessions import SessionService
from .store.base import Store
from .store.cache import CachedStore
from .store.factory import open_store
from .tools.builtins import BUILTIN_TOOLS
from .tools.mcp import McpTools, load_mcp_config
from .tools.registry import Tool, ToolRegistry, ToolSource, load_tools
from .web import http
from .web.components import Components
from .web.handshake import timed_http_protocol
from .web.ws import SessionSocket
from .web.wsprotocol import DirectWebSocketProtocol

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).parent / "static"


class State(TypedDict):
    components: Components


def _signer(settings: Settings) -> TokenSigner:
    if settings.secret is None:
        log.warning(
            "RA_SECRET is not set: tokens are signed with a random key "
            "and will not survive a restart"
        )
        return TokenSigner(secrets.token_bytes(32), settings.token_ttl_seconds)
    return TokenSigner(settings.secret.get_secret_value().encode(), settings.token_ttl_seconds)


async def _llm(settings: Settings, stack: AsyncExitStack) -> LLM:
    if settings.anthropic_api_key is None:
        log.info("ANTHROPIC_API_KEY is not set: using the offline demo model")
        return DemoLLM(settings.demo_chunk_delay)
    from anthropic import AsyncAnthropic, DefaultAioHttpClient, DefaultAsyncHttpxClient

    from .llm.anthropic import AnthropicLLM

    # The SDK's own aiohttp transport reads a stream with a third to a half less CPU
    # than httpx (python -m bench.sdk); closing the client closes it.
    http = DefaultAioHttpClient if settings.anthropic_http == "aiohttp" else DefaultAsyncHttpxClient
    client = await stack.enter_async_context(
        AsyncAnthropic(
            api_key=settings.anthropic_api_key.get_secret_value(),
            base_url=settings.anthropic_base_url,
            max_retries=settings.llm_max_retries,
            http_client=http(),
        )
    )
    return AnthropicLLM(client, model=settings.model, max_tokens=settings.max_tokens)


def _user_tools(settings: Settings) -> list[Tool]:
    if not settings.tools:
        return []
    loaded = load_tools(settings.tools)
    log.info("loaded %d tools from RA_TOOLS: %s", len(loaded), ", ".join(t.name for t in loaded))
    return loaded


async def graceful_shutdown(c: Components, hurry: asyncio.Event) -> None:
    """What SIGTERM does before uvicorn stops: refuse new sockets, let runs finish for
    ``RA_SHUTDOWN_GRACE_SECONDS`` or until ``hurry`` is set (a second signal),
    interrupt the rest (their clients see it), then close every socket with 1001 so
    clients resume on another process (a socket still joining closes once joined),
    waiting up to 5 s for their handlers to end, or until ``hurry``."""
    c.sockets.draining = True
    log.info("shutting down: waiting up to %gs for runs", c.settings.shutdown_grace_seconds)
    await c.sessions.finish_runs(c.settings.shutdown_grace_seconds, hurry)
    await c.sessions.stop_runs()
    c.sockets.closing.set()
    c.channels.close_local(CloseCode.GOING_AWAY, SHUTDOWN_REASON)
    # The handlers end (a queued writer sends its close frame first).
    ended = await wait_unless(c.sockets.none_open.wait(), hurry, 5)
    if ended == "hurried":
        log.info("a second signal: not waiting for %d sockets to finish closing", c.sockets.open)
    elif ended == "timeout":
        log.warning("some sockets did not close in time (%d still open)", c.sockets.open)


def create_app(settings: Settings | None = None, *, freeze_heap: bool = False) -> Starlette:
    """The whole server as an ASGI app; nothing is built until its lifespan starts.

    ``freeze_heap``: the app owns its process (``realtime-agent serve``): once
    started, the objects alive are left out of later garbage collections
    (:func:`~realtime_agent.gcwatch.freeze_startup_heap`).
    """
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[State]:
        async with AsyncExitStack() as stack:
            store: Store = await stack.enter_async_context(open_store(settings.database_url))
            channels: ChannelLayer
            if settings.redis_url is None:
                channels = await stack.enter_async_context(
                    MemoryChannels(
                        store.reserve_seq,
                        min_events=settings.history_events,
                        min_seconds=settings.history_seconds,
                        max_events=settings.history_max_events,
                        max_bytes=settings.history_max_bytes,
                        idle_seconds=settings.cache_ttl_seconds,
                    )
                )
            else:
                if settings.database_url.startswith("sqlite"):
                    raise ValueError(
                        "REDIS_URL is set but DATABASE_URL is SQLite: several processes need "
                        "one shared PostgreSQL (DATABASE_URL=postgresql://...)"
                    )
                # A blocking pool waits for a free connection under load instead of failing.
                # No command is ever sent twice (redis-py's default today, pinned):
                # emit.lua run again would number one event twice.
                pool = BlockingConnectionPool.from_url(
                    settings.redis_url,
                    max_connections=settings.redis_max_connections,
                    timeout=10,
                    retry=Retry(NoBackoff(), 0),
                )
                redis = await stack.enter_async_context(Redis.from_pool(pool))  # owns the pool
                store = CachedStore(
                    store,
                    redis,
                    prefix=settings.redis_prefix,
                    ttl_seconds=settings.cache_ttl_seconds,
                )
                channels = await stack.enter_async_context(
                    RedisChannels(
                        redis,
                        store.reserve_seq,
                        prefix=settings.redis_prefix,
                        min_events=settings.history_events,
                        min_seconds=settings.history_seconds,
                        max_events=settings.history_max_events,
                        history_ttl=settings.cache_ttl_seconds,
                        lease_seconds=settings.run_lease_seconds,
                        probe_seconds=settings.redis_probe_seconds,
                    )
                )
            llm = await _llm(settings, stack)
            dynamic: list[ToolSource] = []
            if settings.mcp_config:
                mcp_tools = await stack.enter_async_context(
                    McpTools(load_mcp_config(settings.mcp_config))
                )
                dynamic.append(mcp_tools.tools)
            tools = ToolRegistry([*BUILTIN_TOOLS, *_user_tools(settings)], dynamic=dynamic)
            agent = Agent(
                llm,
                tools,
                AgentConfig(
                    system=settings.system_prompt,
                    max_iterations=settings.max_iterations,
                    llm_timeout=settings.llm_timeout_seconds,
                    tool_timeout=settings.tool_timeout_seconds,
                    max_event_bytes=settings.max_event_bytes,
                    coalesce_seconds=settings.delta_coalesce_ms / 1000,
                    coalesce_max_seconds=settings.delta_coalesce_max_ms / 1000,
                ),
            )
            rescan = None if settings.redis_url is None else settings.run_lease_seconds / 3
            sessions = await stack.enter_async_context(
                SessionService(
                    store,
                    channels,
                    agent,
                    rescan_seconds=rescan,
                    max_queued=settings.max_queued_messages,
                    max_runs=settings.max_concurrent_runs,
                )
            )
            frozen = freeze_startup_heap() if freeze_heap else 0
            if frozen:
                log.info("start-up heap frozen: %d objects", frozen)
            # Timed from here: the collections of start-up (the freeze's own) are not
            # pauses of the serving process.
            gc_watch = stack.enter_context(GcWatch(frozen))
            components = Components(
                settings,
                _signer(settings),
                sessions,
                tools,
                llm.name,
                channels,
                SocketCounts(settings.max_sockets_per_session, settings.max_sockets_per_address),
                gc_watch,
            )
            # The SIGTERM handler of `realtime-agent serve` runs this before uvicorn stops.
            app.state.graceful_shutdown = functools.partial(graceful_shutdown, components)
            yield {"components": components}

    routes = [
        Route("/agent/sessions", http.create_session, methods=["POST"]),
        Route("/agent/chat", http.chat, methods=["POST"]),
        Route("/agent/session/{session_id}", http.get_session, methods=["GET"]),
        Route("/agent/session/{session_id}", http.delete_session, methods=["DELETE"]),
        Route("/agent/session/{session_id}", http.patch_session, methods=["PATCH"]),
        Route("/agent/session/{session_id}/revoke-viewers", http.revoke_viewers, methods=["POST"]),
        Route("/agent/tools", http.list_tools, methods=["GET"]),
        Route("/agent/protocol.schema.json", http.protocol_schema, methods=["GET"]),
        Route("/openapi.json", http.openapi, methods=["GET"], include_in_schema=False),
        Route("/healthz", http.healthz, methods=["GET"]),
        Route("/readyz", http.readyz, methods=["GET"]),
        WebSocketRoute("/agent/ws/{session_id}", SessionSocket()),
        Route("/", http.index, methods=["GET"], include_in_schema=False),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    return Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            HTTPException: http.http_error,
            Unavailable: http.unavailable,
            Exception: http.internal_error,
        },
    )


def server_config(
    app: Starlette, settings: Settings, *, host: str, port: int, log_level: str = "info"
) -> uvicorn.Config:
    """How uvicorn serves the app: the sans-I/O websocket implementation with our
    direct frame path (:mod:`.web.wsprotocol`), our frame limit (1009 past it),
    keep-alive pings, and permessage-deflate off unless asked for."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        ws=DirectWebSocketProtocol,
        http=timed_http_protocol(settings.handshake_timeout_seconds),
        ws_max_size=settings.max_frame_bytes,
        ws_per_message_deflate=settings.ws_per_message_deflate,
        ws_ping_interval=settings.ws_ping_interval,
        ws_ping_timeout=settings.ws_ping_interval,
        timeout_graceful_shutdown=10,
    )
    for name in ("uvicorn.access", "uvicorn.error"):
        logging.getLogger(name).addFilter(_redact_tokens)
    return config


_TOKEN = re.compile(r"(token=|bearer\.)[^&\s\"']+")


def _redact_tokens(record: logging.LogRecord) -> bool:
    """Keep session tokens (query ``token=``, subprotocol ``bearer.``) out of the logs."""
    if isinstance(record.args, tuple):
        record.args = tuple(
            _TOKEN.sub(r"\1[redacted]", a) if isinstance(a, str) else a for a in record.args
        )
    record.msg = _TOKEN.sub(r"\1[redacted]", str(record.msg))
    return True
