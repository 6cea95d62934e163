"""The Anthropic provider: the SDK's raw message stream, mapped to our events.

An async context manager that always closes the underlying stream, around a
pure :class:`EventMapper` that turns each raw event into at most one of ours.
It reads ``messages.create(stream=True)`` rather than the SDK's
``messages.stream()`` helper: the helper also rebuilds the whole message after
every event (``accumulate_event``) and wraps each text delta in a second event
object, which measured as a third of the server's CPU at 1,000 chunks/s
(``bench/README.md``). We need far less: text deltas as they come, and each
tool call's input once its block ends (its ``input_json_delta`` pieces joined
and parsed, as the helper would at that point).

The events are read in their wire form, as dicts: the response is parsed with
``to=AsyncStream[object]``, the SDK's own way to skip building its models.
Building one (``construct_type``, which first validates the event against the
whole union of event types with pydantic) cost 27-41 µs of CPU per event
against 11-12 µs for the rest of the SDK's work (its HTTP, SSE and JSON);
under a profiler it was 30 % of the server's CPU with 200 sessions streaming.
The SDK still sends the request, retries, raises its errors and turns an
``event: error`` into one.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from typing import Any, cast

import anthropic
import httpx2
import orjson
from anthropic import AsyncStream
from anthropic.types import MessageParam, ToolParam

from .base import Finished, LLMError, LLMEvent, TextDelta, ToolSpec, ToolUse

__all__ = ["AnthropicLLM", "EventMapper"]


class EventMapper:
    """Maps one model call's raw events, in their wire form, to ours (pure: no I/O).

    - a ``text_delta`` gives :class:`TextDelta`;
    - the ``content_block_stop`` of a ``tool_use`` block gives :class:`ToolUse`,
      its input parsed from the block's joined ``input_json_delta`` pieces
      (``{}`` when the model streamed none);
    - ``message_stop`` gives :class:`Finished` with the stop reason that
      ``message_delta`` carried;
    - anything else (``message_start``, other block and delta types) gives nothing.

    Raises :class:`LLMError` when a tool input is not valid JSON or not an object,
    or when an event lacks a field its type has.
    """

    __slots__ = ("_stop_reason", "_tools")

    def __init__(self) -> None:
        self._tools: dict[int, tuple[str, str, list[str]]] = {}  # index: id, name, json pieces
        self._stop_reason: str | None = None

    def feed(self, event: Mapping[str, Any]) -> LLMEvent | None:
        try:
            return self._feed(event)
        except (KeyError, TypeError, AttributeError) as exc:
            raise LLMError(
                f"Anthropic API sent an event we cannot read ({exc!r}): {str(event)[:200]}"
            ) from None

    def _feed(self, event: Mapping[str, Any]) -> LLMEvent | None:
        kind = event["type"]
        if kind == "content_block_delta":
            delta = event["delta"]
            if delta["type"] == "text_delta":
                return TextDelta(delta["text"])
            if delta["type"] == "input_json_delta" and event["index"] in self._tools:
                self._tools[event["index"]][2].append(delta["partial_json"])
        elif kind == "content_block_start":
            block = event["content_block"]
            if block["type"] == "tool_use":
                self._tools[event["index"]] = (block["id"], block["name"], [])
        elif kind == "content_block_stop":
            if (tool := self._tools.pop(event["index"], None)) is not None:
                return _tool_use(*tool)
        elif kind == "message_delta":
            self._stop_reason = event["delta"].get("stop_reason")  # optional, as in the SDK
        elif kind == "message_stop":
            return Finished(self._stop_reason)
        return None


def _tool_use(call_id: str, name: str, pieces: list[str]) -> ToolUse:
    raw = "".join(pieces)
    try:
        tool_input: object = orjson.loads(raw) if raw.strip() else {}
    except orjson.JSONDecodeError as exc:
        raise LLMError(f"tool_use {call_id} ({name}): input is not valid JSON: {exc}") from None
    if not isinstance(tool_input, dict):
        raise LLMError(f"tool_use {call_id} ({name}): input is not a JSON object")
    return ToolUse(id=call_id, name=name, input=tool_input)


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
        # An SSE event the SDK cannot decode (bad JSON, bad UTF-8) is a failed call too.
        raise LLMError(f"Anthropic API sent an unreadable event: {exc}") from exc


def _api_message(exc: anthropic.APIStatusError) -> str:
    return exc.api_message or exc.message


async def _events(stream: AsyncStream[object]) -> AsyncGenerator[LLMEvent, None]:
    mapper = EventMapper()
    with _api_errors():
        async for raw in stream:  # JSON: the mapper reports one that is not an object
            if (event := mapper.feed(cast("Mapping[str, Any]", raw))) is not None:
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
                response = await self._client.messages.with_raw_response.create(
                    model=self._model,
                    max_tokens=self._max_tokens,
                    system=system,
                    messages=cast("list[MessageParam]", list(messages)),
                    tools=tool_params or anthropic.omit,
                    stream=True,
                )
                stack.push_async_callback(response.http_response.aclose)
                sdk_stream = await response.parse(to=AsyncStream[object])  # dicts, no models
            events = _events(sdk_stream)
            # Close our generator here rather than leave it to the garbage collector.
            stack.push_async_callback(events.aclose)
            yield events
