"""Fixtures of the multi-process tests: real server processes on one Redis and one PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.helpers import Api
from tests.pg import fresh_database
from tests.processes import RedisProcess, ServerProcess, clean_env
from tests.standin_anthropic import AnthropicStandIn

SECRET = "cluster-secret-0123456789abcdef"


@dataclass
class Cluster:
    """N ``realtime-agent serve`` processes sharing a private Redis and a fresh database."""

    servers: list[ServerProcess]
    redis: RedisProcess
    dsn: str
    apis: list[Api] = field(default_factory=list)

    def api(self, index: int) -> Api:
        return self.apis[index]


@pytest.fixture
async def cluster(tmp_path: Path, standin: AnthropicStandIn) -> AsyncIterator[Cluster]:
    """Two server processes (A, B) on a private Redis and a fresh PostgreSQL database."""
    async with AsyncExitStack() as stack:
        redis = RedisProcess()
        await redis.start()
        stack.push_async_callback(redis.stop)
        dsn = await stack.enter_async_context(fresh_database())
        env = clean_env(
            DATABASE_URL=dsn,
            REDIS_URL=redis.url,
            RA_SECRET=SECRET,
            ANTHROPIC_API_KEY="test-key",
            ANTHROPIC_BASE_URL=standin.base_url,
            RA_LLM_MAX_RETRIES="0",
            RA_RUN_LEASE_SECONDS="2",
            RA_REDIS_PROBE_SECONDS="0.5",
        )
        servers = [ServerProcess(env, tmp_path) for _ in range(2)]

        async def keep_logs() -> None:  # for reading after a failure (pytest keeps tmp_path)
            for name, server in zip("AB", servers, strict=True):
                (tmp_path / f"server-{name}.log").write_text(server.log)

        stack.push_async_callback(keep_logs)
        for server in servers:
            stack.push_async_callback(server.stop)
        await asyncio.gather(*(server.start() for server in servers))
        apis = [await stack.enter_async_context(Api(s.base_url)) for s in servers]
        yield Cluster(servers, redis, dsn, apis)
