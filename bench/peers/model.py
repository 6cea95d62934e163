"""The model side of the peer servers: the same SDK stream realtime-agent reads."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import anthropic


def client() -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(
        api_key=os.environ.get("ANTHROPIC_API_KEY", "bench-key"),
        base_url=os.environ["ANTHROPIC_BASE_URL"],
        max_retries=0,
    )


async def text_chunks(llm: anthropic.AsyncAnthropic, content: str) -> AsyncIterator[str]:
    """Each text delta of one streamed model call."""
    async with llm.messages.stream(
        model="claude-bench",
        max_tokens=4096,
        messages=[{"role": "user", "content": content}],
    ) as stream:
        async for event in stream:
            if event.type == "text":
                yield event.text


def uvicorn_kwargs(port: int) -> dict[str, object]:
    """uvicorn as realtime-agent's ``server_config`` runs it."""
    return {
        "host": "127.0.0.1",
        "port": port,
        "log_level": "warning",
        "ws": "websockets-sansio",
        "ws_per_message_deflate": False,
        "ws_ping_interval": 20.0,
        "ws_ping_timeout": 20.0,
        "timeout_graceful_shutdown": 5,
        "backlog": 4096,
    }
