"""AnthropicLLM over the real SDK, against the local Anthropic stand-in."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import pytest
from anthropic.types import RawMessageStreamEvent
from pydantic import TypeAdapter

from realtime_agent.app import _llm
from realtime_agent.llm.anthropic import AnthropicLLM, EventMapper, _events
from realtime_agent.llm.base import LLM, Finished, LLMError, LLMEvent, TextDelta, ToolSpec, ToolUse
from tests.helpers import standin_settings
from tests.standin_anthropic import (
    AnthropicStandIn,
    Drop,
    Error,
    Hang,
    StreamError,
    Text,
    ToolCalls,
    validate_request,
)

HI: list[dict[str, Any]] = [{"role": "user", "content": "hi"}]
SEARCH = ToolSpec(
    name="search",
    description="Search the web.",
    input_schema={"type": "object", "properties": {"query": {"type": "string"}}},
)
# Fails a test that would otherwise wait for the pytest timeout; not a synchronisation.
GUARD = 10.0


@pytest.fixture
async def standin() -> AsyncIterator[AnthropicStandIn]:
    async with AnthropicStandIn() as server:
        yield server


@pytest.fixture(params=["aiohttp", "httpx"])
async def client(
    standin: AnthropicStandIn, request: pytest.FixtureRequest
) -> AsyncIterator[anthropic.AsyncAnthropic]:
    """The SDK on each of its HTTP transports (RA_ANTHROPIC_HTTP)."""
    http = (
        anthropic.DefaultAioHttpClient()
        if request.param == "aiohttp"
        else anthropic.DefaultAsyncHttpxClient()
    )
    async with anthropic.AsyncAnthropic(
        api_key="test-key", base_url=standin.base_url, max_retries=0, http_client=http
    ) as sdk:
        yield sdk


@pytest.fixture
def llm(client: anthropic.AsyncAnthropic) -> AnthropicLLM:
    return AnthropicLLM(client, model="claude-test", max_tokens=256)


async def collect(
    llm: LLM, messages: Sequence[dict[str, Any]] = HI, tools: Sequence[ToolSpec] = ()
) -> list[LLMEvent]:
    async with llm.stream(system="Be brief.", messages=messages, tools=tools) as events:
        return [event async for event in events]


# -- streaming through the SDK ----------------------------------------------


async def test_text_streams_as_deltas_then_finished(
    llm: AnthropicLLM, standin: AnthropicStandIn
) -> None:
    """Text chunks arrive as one TextDelta each, then Finished("end_turn")."""
    standin.push(Text(["Hel", "lo, ", "world."]))
    events = await collect(llm)
    assert events == [
        TextDelta("Hel"),
        TextDelta("lo, "),
        TextDelta("world."),
        Finished("end_turn"),
    ]


async def test_one_tool_call(llm: AnthropicLLM, standin: AnthropicStandIn) -> None:
    """A tool_use block becomes one ToolUse with its input parsed exactly."""
    tool_input = {"query": "weather in Paris", "limit": 3, "exact": True}
    standin.push(ToolCalls([("toolu_01", "search", tool_input)]))
    events = await collect(llm, tools=[SEARCH])
    assert events == [ToolUse("toolu_01", "search", tool_input), Finished("tool_use")]


async def test_two_tool_calls_after_text(llm: AnthropicLLM, standin: AnthropicStandIn) -> None:
    """Text, then two tool calls in order; an empty input is {}."""
    nested = {"path": "/tmp/a b.txt", "lines": [1, 2, 3], "opts": {"utf8": "é✓", "n": None}}
    standin.push(
        ToolCalls([("toolu_a", "read", nested), ("toolu_b", "now", {})], text_chunks=["Let ", "me"])
    )
    events = await collect(llm)
    assert events == [
        TextDelta("Let "),
        TextDelta("me"),
        ToolUse("toolu_a", "read", nested),
        ToolUse("toolu_b", "now", {}),
        Finished("tool_use"),
    ]


async def test_two_step_conversation_sends_tool_use_and_result(
    llm: AnthropicLLM, standin: AnthropicStandIn
) -> None:
    """The second request carries the assistant tool_use and the user tool_result."""
    standin.push(ToolCalls([("toolu_1", "search", {"query": "x"})]), Text(["Found it."]))
    first = await collect(llm, tools=[SEARCH])
    call = first[0]
    assert isinstance(call, ToolUse)
    messages: list[dict[str, Any]] = [
        *HI,
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": call.id, "name": call.name, "input": call.input}
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "42"}],
        },
    ]
    second = await collect(llm, messages, tools=[SEARCH])
    assert second == [TextDelta("Found it."), Finished("end_turn")]
    assert standin.requests[1]["messages"] == messages


async def test_unanswered_tool_use_is_an_llm_error(llm: AnthropicLLM) -> None:
    """The API's 400 for a tool_use without tool_result surfaces as LLMError."""
    messages: list[dict[str, Any]] = [
        *HI,
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}],
        },
        {"role": "user", "content": "and?"},
    ]
    with pytest.raises(LLMError, match="HTTP 400") as caught:
        await collect(llm, messages)
    assert "tool_use` ids were found without `tool_result` blocks immediately after: t1" in str(
        caught.value
    )
    assert isinstance(caught.value.__cause__, anthropic.BadRequestError)


@pytest.mark.parametrize(
    ("status", "error_type", "cause"),
    [
        (500, "api_error", anthropic.InternalServerError),
        (529, "overloaded_error", anthropic.OverloadedError),
        (429, "rate_limit_error", anthropic.RateLimitError),
    ],
)
async def test_http_errors_are_llm_errors(
    llm: AnthropicLLM,
    standin: AnthropicStandIn,
    status: int,
    error_type: str,
    cause: type[anthropic.APIStatusError],
) -> None:
    """An HTTP error answer raises LLMError naming the status and the API's message."""
    standin.push(Error(status, error_type, "Something is off."))
    with pytest.raises(LLMError, match=f"HTTP {status}") as caught:
        await collect(llm)
    assert "Something is off." in str(caught.value)
    assert "test-key" not in str(caught.value)
    assert type(caught.value.__cause__) is cause


async def test_error_event_mid_stream_is_an_llm_error(
    llm: AnthropicLLM, standin: AnthropicStandIn
) -> None:
    """An SSE error event after some text raises LLMError once that text is out."""
    standin.push(StreamError(["partial "]))
    seen: list[LLMEvent] = []
    with pytest.raises(LLMError, match=r"mid-stream, overloaded_error\): Overloaded"):
        async with llm.stream(system="", messages=HI, tools=()) as events:
            async for event in events:
                seen.append(event)
    assert seen == [TextDelta("partial ")]


async def test_dropped_connection_is_an_llm_error(
    llm: AnthropicLLM, standin: AnthropicStandIn
) -> None:
    """A connection cut mid-stream raises LLMError after the text received."""
    standin.push(Drop(["Hello", " wor"]))
    seen: list[LLMEvent] = []
    with pytest.raises(LLMError, match="connection lost mid-stream") as caught:
        async with llm.stream(system="", messages=HI, tools=()) as events:
            async for event in events:
                seen.append(event)
    assert seen == [TextDelta("Hello"), TextDelta(" wor")]
    assert isinstance(caught.value.__cause__, httpx2.TransportError)  # per transport: which one


async def test_unreachable_api_is_an_llm_error() -> None:
    """A refused connection on open raises LLMError."""
    async with AnthropicStandIn() as gone:
        base_url = gone.base_url
    async with anthropic.AsyncAnthropic(
        api_key="test-key", base_url=base_url, max_retries=0
    ) as sdk:
        with pytest.raises(LLMError, match="connection failed") as caught:
            await collect(AnthropicLLM(sdk, model="claude-test", max_tokens=8))
    assert isinstance(caught.value.__cause__, anthropic.APIConnectionError)


async def test_hang_is_cancelled_by_timeout_and_closed(
    llm: AnthropicLLM, standin: AnthropicStandIn
) -> None:
    """A caller's asyncio.timeout ends a hanging stream, and the connection is closed."""
    standin.push(Hang())
    with pytest.raises(TimeoutError):
        async with llm.stream(system="", messages=HI, tools=()) as events:
            async with asyncio.timeout(0.2):
                async for _ in events:
                    pass
    async with asyncio.timeout(GUARD):
        await standin.wait_for_disconnects(1)


async def test_leaving_early_closes_the_stream(
    llm: AnthropicLLM, standin: AnthropicStandIn
) -> None:
    """Leaving the context before the stream ends closes the HTTP stream."""
    standin.push(Text(["one", "two"], hold_after=1))
    async with llm.stream(system="", messages=HI, tools=()) as events:
        assert await anext(events) == TextDelta("one")
    async with asyncio.timeout(GUARD):
        await standin.wait_for_disconnects(1)


async def test_request_carries_model_system_and_tools(
    llm: AnthropicLLM, standin: AnthropicStandIn
) -> None:
    """The request sends model, max_tokens, system and each tool's name, description, schema."""
    await collect(llm, tools=[SEARCH])
    await collect(llm)
    with_tools, without_tools = standin.requests
    assert with_tools["model"] == "claude-test"
    assert with_tools["max_tokens"] == 256
    assert with_tools["system"] == "Be brief."
    assert with_tools["stream"] is True
    assert with_tools["messages"] == HI
    assert with_tools["tools"] == [
        {
            "name": "search",
            "description": "Search the web.",
            "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}},
        }
    ]
    assert "tools" not in without_tools


# -- the pure mapping ---------------------------------------------------------


RAW_EVENT: TypeAdapter[RawMessageStreamEvent] = TypeAdapter(RawMessageStreamEvent)


def _wire(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events as the mapper gets them, each checked against the SDK's event types."""
    for event in events:
        RAW_EVENT.validate_python(event)
    return events


def _start(index: int, block: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_start", "index": index, "content_block": block}


def _delta(index: int, delta: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index, "delta": delta}


def _stop(index: int) -> dict[str, Any]:
    return {"type": "content_block_stop", "index": index}


def _tool(call_id: str, name: str) -> dict[str, Any]:
    return {"type": "tool_use", "id": call_id, "name": name, "input": {}}


def _json(piece: str) -> dict[str, Any]:
    return {"type": "input_json_delta", "partial_json": piece}


def _text(text: str) -> dict[str, Any]:
    return {"type": "text_delta", "text": text}


MESSAGE_START = {
    "type": "message_start",
    "message": {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-test",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 1, "output_tokens": 0},
    },
}


def _message_end(stop_reason: str) -> list[dict[str, Any]]:
    return [
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": None},
            "usage": {"output_tokens": 2},
        },
        {"type": "message_stop"},
    ]


def _mapped(events: list[dict[str, Any]]) -> list[LLMEvent]:
    mapper = EventMapper()
    return [e for e in map(mapper.feed, _wire(events)) if e is not None]


def test_text_deltas_map_one_to_one_and_the_stop_reason_comes_last() -> None:
    events = [
        MESSAGE_START,
        _start(0, {"type": "text", "text": ""}),
        _delta(0, _text("Oh. ")),
        _delta(0, _text("Hi")),
        _stop(0),
        *_message_end("end_turn"),
    ]
    assert _mapped(events) == [TextDelta("Oh. "), TextDelta("Hi"), Finished("end_turn")]


def test_tool_calls_arrive_whole_when_their_block_ends() -> None:
    """Interleaved pieces of two tool inputs are joined per block index and parsed."""
    events = [
        MESSAGE_START,
        _start(0, {"type": "text", "text": ""}),
        _delta(0, _text("Let me look.")),
        _stop(0),
        _start(1, _tool("t1", "f")),
        _delta(1, _json('{"a": ')),
        _start(2, _tool("t2", "g")),
        _delta(2, _json("")),
        _delta(1, _json("[1, ")),
        _delta(1, _json('"é"]}')),
        _stop(2),
        _stop(1),
        *_message_end("tool_use"),
    ]
    assert _mapped(events) == [
        TextDelta("Let me look."),
        ToolUse("t2", "g", {}),
        ToolUse("t1", "f", {"a": [1, "é"]}),
        Finished("tool_use"),
    ]


@pytest.mark.parametrize(
    ("pieces", "error"),
    [(["[1, ", "2]"], "not a JSON object"), (['{"a": ', "1"], "not valid JSON")],
)
def test_a_tool_input_that_is_not_a_json_object_is_an_llm_error(
    pieces: list[str], error: str
) -> None:
    events = [_start(0, _tool("t1", "f")), *(_delta(0, _json(p)) for p in pieces), _stop(0)]
    with pytest.raises(LLMError, match=error):
        _mapped(events)


def test_a_message_delta_without_a_stop_reason_finishes_with_none() -> None:
    """``stop_reason`` is optional in a ``message_delta`` (as the SDK's model has it)."""
    events = [{"type": "message_delta", "delta": {}, "usage": {"output_tokens": 0}}]
    assert _mapped([*events, {"type": "message_stop"}]) == [Finished(None)]


@pytest.mark.parametrize(
    "event",
    [
        {"type": "content_block_delta", "index": 0},
        {"type": "content_block_delta", "index": 0, "delta": "text"},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use"}},
        {"delta": {"type": "text_delta", "text": "no type"}},
    ],
)
def test_an_event_missing_a_field_of_its_type_is_an_llm_error(event: dict[str, Any]) -> None:
    """The events are read in their wire form, not checked by the SDK: one that lacks
    what its type carries fails the call with a readable error, not a KeyError."""
    with pytest.raises(LLMError, match="an event we cannot read"):
        EventMapper().feed(event)


async def test_an_event_that_is_not_an_object_is_an_llm_error() -> None:
    """``data: 42`` is valid JSON but no event: the call fails with a readable error."""

    async def stream() -> AsyncIterator[object]:
        yield 42

    with pytest.raises(LLMError, match=r"an event we cannot read .*: 42"):
        async for _ in _events(stream()):  # type: ignore[arg-type]
            pass


# -- the stand-in itself ------------------------------------------------------


async def test_standin_answers_pushed_replies_in_order_then_default(
    llm: AnthropicLLM, standin: AnthropicStandIn
) -> None:
    """Replies are served first in, first out; then the default text."""
    standin.push(Text(["first"]))
    standin.push(Text(["second"]), ToolCalls([("t", "f", {})]))
    assert (await collect(llm))[0] == TextDelta("first")
    assert (await collect(llm))[0] == TextDelta("second")
    assert (await collect(llm))[0] == ToolUse("t", "f", {})
    assert await collect(llm) == [
        TextDelta("Hello from "),
        TextDelta("the stand-in."),
        Finished("end_turn"),
    ]


async def test_standin_holds_a_stream_until_released(
    llm: AnthropicLLM, standin: AnthropicStandIn
) -> None:
    """A held stream sends hold_after chunks, waits for release(), then completes."""
    standin.push(Text(["a", "b", "c"], hold_after=1))
    async with llm.stream(system="", messages=HI, tools=()) as events:
        assert await anext(events) == TextDelta("a")
        standin.release()
        rest = [event async for event in events]
    assert rest == [TextDelta("b"), TextDelta("c"), Finished("end_turn")]


async def test_standin_wait_for_requests(llm: AnthropicLLM, standin: AnthropicStandIn) -> None:
    """wait_for_requests returns once the n-th request has arrived, while it streams."""
    standin.push(Text(["x"], hold_after=0), Text(["y"], hold_after=0))

    async def consume() -> list[LLMEvent]:
        return await collect(llm)

    async with asyncio.TaskGroup() as tasks:
        first = tasks.create_task(consume())
        second = tasks.create_task(consume())
        async with asyncio.timeout(GUARD):
            requests = await standin.wait_for_requests(2)
        assert len(requests) == 2
        assert all(request["messages"] == HI for request in requests)
        standin.release()
    assert sorted([first.result()[0], second.result()[0]], key=repr) == [
        TextDelta("x"),
        TextDelta("y"),
    ]


async def test_standin_answers_non_streaming_requests(
    client: anthropic.AsyncAnthropic, standin: AnthropicStandIn
) -> None:
    """A request without stream gets a whole JSON Message with the same content."""
    standin.push(ToolCalls([("t1", "f", {"k": "v"})], text_chunks=["a", "b"]))
    message = await client.messages.create(
        model="claude-test", max_tokens=8, messages=[{"role": "user", "content": "hi"}]
    )
    assert message.stop_reason == "tool_use"
    assert [block.to_dict() for block in message.content] == [
        {"type": "text", "text": "ab"},
        {"type": "tool_use", "id": "t1", "name": "f", "input": {"k": "v"}},
    ]
    assert "stream" not in standin.requests[0]


@pytest.mark.parametrize(
    ("messages", "problem"),
    [
        ([{"role": "user", "content": "hi"}], None),
        ([{"role": "assistant", "content": "hi"}], 'first message must use the "user" role'),
        ([{"role": "user", "content": [{"type": "text", "text": ""}]}], "must be non-empty"),
        (
            [
                {"role": "user", "content": "hi"},
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}],
                },
            ],
            "messages.1: `tool_use` ids were found without `tool_result` blocks immediately "
            "after: t1",
        ),
        (
            [
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": "t9", "content": "x"}],
                }
            ],
            "messages.0.content.0: unexpected `tool_use_id` found in `tool_result` blocks: t9",
        ),
    ],
)
def test_standin_validates_like_the_api(
    messages: list[dict[str, Any]], problem: str | None
) -> None:
    """The stand-in rejects conversations the real API rejects, with its wording."""
    result = validate_request({"messages": messages})
    if problem is None:
        assert result is None
    else:
        assert result is not None and problem in result


@pytest.mark.parametrize(
    ("setting", "transport"),
    [
        (None, anthropic.DefaultAioHttpClient),
        ("aiohttp", anthropic.DefaultAioHttpClient),
        ("httpx", anthropic.DefaultAsyncHttpxClient),
    ],
)
async def test_the_server_picks_the_sdks_transport(
    tmp_path: Path, standin: AnthropicStandIn, setting: str | None, transport: type
) -> None:
    """RA_ANTHROPIC_HTTP picks the SDK's HTTP client (aiohttp unless told otherwise), and
    the provider the server builds streams through it."""
    overrides = {} if setting is None else {"anthropic_http": setting}
    async with AsyncExitStack() as stack:
        llm = await _llm(standin_settings(tmp_path, standin, **overrides), stack)
        assert isinstance(llm, AnthropicLLM)
        assert isinstance(llm._client._client, transport)  # the SDK's http client
        standin.push(Text(["over ", "there"]))
        events = await collect(llm)
        assert [e for e in events if isinstance(e, TextDelta)] == [
            TextDelta("over "),
            TextDelta("there"),
        ]
