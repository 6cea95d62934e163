"""The Anthropic provider: the SDK's message stream, mapped to our events.

Shaped like the SDK's own ``lib/streaming/_messages.py``: an async context
manager that always closes the underlying stream, around a pure function
(:func:`map_event`) that turns each SDK event into at most one of ours. The
SDK's :class:`~anthropic.lib.streaming.AsyncMessageStream` already accumulates
content blocks (``accumulate_event``), so a tool call arrives whole, with its
input parsed, on its ``content_block_stop``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from typing import Any, cast

import anthropic
import httpx2
from anthropic.lib.streaming import AsyncMessageStream, ParsedMessageStreamEvent
from anthropic.types import MessageParam, ToolParam

from .base import Finished, LLMError, LLMEvent, TextDelta, ToolSpec, ToolUse

__all__ = ["AnthropicLLM", "map_event"]


def map_event(event: ParsedMessageStreamEvent[None]) -> LLMEvent | None:
    """Map one SDK stream event to ours; None for events we don't surface.

    - ``text`` (one per text delta) gives :class:`TextDelta`;
    - ``content_block_stop`` of a ``tool_use`` block gives :class:`ToolUse`,
      its input as the SDK parsed it from the accumulated JSON (``{}`` when
      the model streamed none);
    - ``message_stop`` gives :class:`Finished` with the message's stop reason.

    Raises :class:`LLMError` when a tool input is not a JSON object.
    """
    if event.type == "text":
        return TextDelta(event.text)
    if event.type == "content_block_stop" and event.content_block.type == "tool_use":
        block = event.content_block
        # Typed as a dict, but it is whatever JSON value the model streamed.
        tool_input: object = block.input
        if not isinstance(tool_input, dict):
            raise LLMError(f"tool_use {block.id} ({block.name}): input is not a JSON object")
        return ToolUse(id=block.id, name=block.name, input=dict(tool_input))
    if event.type == "message_stop":
        return Finished(event.message.stop_reason)
    return None


@contextmanager
def _api_errors() -> Iterator[None]:
    """Turn the SDK's failures into :class:`LLMError`, keeping the cause chained.

    The messages carry the status and the API's own error text; the request
    (and so the API key) stays out of them.
    """
    try:
        yield
    except anthropic.RateLimitError as exc:
        raise LLMError(f"Anthropic rate limit (HTTP 429): {_api_message(exc)}") from exc
    except anthropic.APIStatusError as exc:
        # An ``event: error`` inside a stream arrives on the stream's HTTP 200.
        where = "mid-stream" if exc.status_code < 400 else f"HTTP {exc.status_code}"
        kind = f", {exc.type}" if exc.type else ""
        raise LLMError(f"Anthropic API error ({where}{kind}): {_api_message(exc)}") from exc
    except anthropic.APIConnectionError as exc:
        cause = f" ({exc.__cause__})" if exc.__cause__ else ""
        raise LLMError(f"Anthropic API connection failed: {exc.message}{cause}") from exc
    except httpx2.TransportError as exc:
        # The SDK wraps transport errors only while sending the request; a
        # connection lost or timed out mid-stream surfaces raw from httpx2.
        raise LLMError(f"Anthropic API connection lost mid-stream: {exc!r}") from exc
    except ValueError as exc:
        # The SDK's stream accumulator raises a plain ValueError when the
        # model's streamed tool input is not valid JSON: a failed call too.
        raise LLMError(f"Anthropic API sent an unreadable tool input: {exc}") from exc


def _api_message(exc: anthropic.APIStatusError) -> str:
    return exc.api_message or exc.message


async def _events(stream: AsyncMessageStream[None]) -> AsyncGenerator[LLMEvent, None]:
    with _api_errors():
        async for sdk_event in stream:
            if (event := map_event(sdk_event)) is not None:
                yield event


class AnthropicLLM:
    """The :class:`~realtime_agent.llm.base.LLM` provider over ``AsyncAnthropic``.

    Args:
        client: the SDK client; its owner closes it. Retries are its
            ``max_retries``; timeouts belong to the caller
            (``asyncio.timeout()`` around the call).
        model: the model name sent with every request.
        max_tokens: the output budget of every request.
    """

    name = "anthropic"

    def __init__(self, client: anthropic.AsyncAnthropic, *, model: str, max_tokens: int) -> None:
        self._client = client
        self._model = model
        self._max_tokens = max_tokens

    @asynccontextmanager
    async def stream(
        self,
        *,
        system: str,
        messages: Sequence[dict[str, Any]],
        tools: Sequence[ToolSpec],
    ) -> AsyncIterator[AsyncIterator[LLMEvent]]:
        """Open one streamed model call; iterate the entered value for its events.

        Yields :class:`TextDelta` per text delta, :class:`ToolUse` per finished
        tool call, then :class:`Finished`. Raises :class:`LLMError` on enter or
        while iterating when the API fails. Leaving the context closes the
        HTTP stream, also on cancellation.
        """
        tool_params: list[ToolParam] = [
            {"name": t.name, "description": t.description, "input_schema": t.input_schema}
            for t in tools
        ]
        async with AsyncExitStack() as stack:
            with _api_errors():
                sdk_stream = await stack.enter_async_context(
                    self._client.messages.stream(
                        model=self._model,
                        max_tokens=self._max_tokens,
                        system=system,
                        messages=cast("list[MessageParam]", list(messages)),
                        tools=tool_params or anthropic.omit,
                    )
                )
            events = _events(sdk_stream)
            # Close our generator here rather than leave it to the garbage collector.
            stack.push_async_callback(events.aclose)
            yield events
