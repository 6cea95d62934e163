"""The offline demo model ``DemoLLM``."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from realtime_agent.llm.base import LLM, Finished, LLMEvent, TextDelta, ToolSpec, ToolUse
from realtime_agent.llm.demo import DemoLLM, plan_reply, split_chunks
from realtime_agent.tools.builtins import BUILTIN_TOOLS
from realtime_agent.tools.registry import ToolRegistry

TOOLS = ToolRegistry(BUILTIN_TOOLS).specs()
Messages = list[dict[str, Any]]


async def run(messages: Messages, tools: list[ToolSpec] = TOOLS) -> list[LLMEvent]:
    llm: LLM = DemoLLM(chunk_delay=0)
    async with llm.stream(system="You are a test.", messages=messages, tools=tools) as events:
        return [event async for event in events]


def text_of(events: list[LLMEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def test_split_chunks_join_exactly() -> None:
    """Chunks are single words with their whitespace and join back to the exact text."""
    text = "  Hello,  world!\n\n- a bullet\twith tab "
    chunks = split_chunks(text)
    assert "".join(chunks) == text
    assert chunks == ["  ", "Hello,  ", "world!\n\n", "- ", "a ", "bullet\t", "with ", "tab "]


def test_split_chunks_empty() -> None:
    """Empty text has no chunks."""
    assert split_chunks("") == []


async def test_plain_reply() -> None:
    """A plain message gets a Markdown reply that echoes it and lists what the demo can do."""
    events = await run([user("Hello there, robot")])
    text = text_of(events)
    assert events[-1] == Finished("end_turn")
    assert not any(isinstance(e, ToolUse) for e in events)
    assert text.startswith("(offline demo model)")
    assert '"Hello there, robot"' in text
    assert "\n- " in text and "what time is it" in text and "remember that" in text


async def test_reply_streams_in_word_chunks() -> None:
    """The reply arrives as many small chunks that join to the planned text."""
    messages = [user("Tell me a story")]
    events = await run(messages)
    chunks = [e.text for e in events if isinstance(e, TextDelta)]
    [planned, _] = plan_reply(messages, TOOLS)
    assert isinstance(planned, TextDelta)
    assert len(chunks) > 10
    assert all(len(c.split()) == 1 for c in chunks)
    assert "".join(chunks) == planned.text


async def test_echo_is_plain_text() -> None:
    """The echoed message is one line with its Markdown and HTML escaped."""
    text = text_of(await run([user("# Title\n*bold* <b>x</b>")]))
    assert r'"# Title \*bold\* \<b\>x\</b\>"' in text


async def test_plain_reply_without_tools() -> None:
    """Without tools the demo says so instead of offering them."""
    text = text_of(await run([user("what time is it?")], tools=[]))
    assert "offline demo model" in text
    assert "current_time" not in text
    assert "No tools are enabled" in text


@pytest.mark.parametrize(
    "question",
    ["What time is it?", "tell me the CURRENT TIME", "what's the time", "What is the time"],
)
async def test_asks_for_the_time(question: str) -> None:
    """Asking the time calls current_time with no input, after a short text."""
    events = await run([user(question)])
    use = events[-2]
    assert isinstance(use, ToolUse)
    assert use.name == "current_time" and use.input == {}
    assert use.id.startswith("toolu_demo_") and len(use.id) > len("toolu_demo_")
    assert events[-1] == Finished("tool_use")
    assert "offline demo model" in text_of(events)


async def test_text_blocks_count_as_user_text() -> None:
    """A user message given as text blocks is read like a plain string."""
    events = await run([{"role": "user", "content": [{"type": "text", "text": "current time"}]}])
    assert isinstance(events[-2], ToolUse)


@pytest.mark.parametrize(
    ("said", "note"),
    [("Remember that my cat is called Tom.", "my cat is called Tom"), ("note that x = 1", "x = 1")],
)
async def test_remember_that(said: str, note: str) -> None:
    """'remember that X' and 'note that X' call session_note with X."""
    events = await run([user(said)])
    use = events[-2]
    assert isinstance(use, ToolUse)
    assert (use.name, use.input) == ("session_note", {"note": note})
    assert events[-1] == Finished("tool_use")
    assert "offline demo model" in text_of(events)


async def test_tool_ids_are_unique() -> None:
    """Each tool call gets a fresh id."""
    ids = set()
    for _ in range(3):
        use = (await run([user("what time is it")]))[-2]
        assert isinstance(use, ToolUse)
        ids.add(use.id)
    assert len(ids) == 3


async def test_reply_after_tool_result() -> None:
    """After a tool_result the demo answers with the result and ends its turn."""
    messages: Messages = [
        user("what time is it"),
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "(offline demo model) Let me check the clock."},
                {"type": "tool_use", "id": "toolu_1", "name": "current_time", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "12:00 (UTC)"},
            ],
        },
    ]
    events = await run(messages)
    assert events[-1] == Finished("end_turn")
    assert not any(isinstance(e, ToolUse) for e in events)
    text = text_of(events)
    assert "offline demo model" in text
    assert "The current time is 12:00 (UTC)." in text


async def test_reply_after_failed_tool() -> None:
    """After an is_error tool_result the demo says the tool failed."""
    messages: Messages = [
        user("note that x"),
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t2", "name": "session_note", "input": {}}],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "t2",
                    "is_error": True,
                    "content": [{"type": "text", "text": "refused at level 0"}],
                }
            ],
        },
    ]
    text = text_of(await run(messages))
    assert "offline demo model" in text
    assert "`session_note` tool failed: refused at level 0" in text


async def test_empty_conversation() -> None:
    """An empty conversation still gets a friendly reply."""
    events = await run([])
    assert "offline demo model" in text_of(events)
    assert events[-1] == Finished("end_turn")


async def test_cancellation_between_chunks() -> None:
    """Cancelling the consumer mid-stream raises CancelledError there and closes the stream."""
    first = asyncio.Event()
    received: list[LLMEvent] = []
    llm = DemoLLM(chunk_delay=0)

    async def consume() -> None:
        async with llm.stream(system="", messages=[user("hi")], tools=TOOLS) as events:
            async for event in events:
                received.append(event)
                first.set()

    task = asyncio.create_task(consume())
    await first.wait()  # the consumer is now between two chunks
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    total = len(await run([user("hi")]))
    assert 0 < len(received) < total


async def test_caller_timeout_cancels_a_slow_stream() -> None:
    """A caller's timeout ends a stream that waits a day between chunks."""
    llm = DemoLLM(chunk_delay=86400)
    received: list[LLMEvent] = []
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            async with llm.stream(system="", messages=[user("hi")], tools=TOOLS) as events:
                received.extend([event async for event in events])
    assert received == []


async def test_leaving_early_closes_the_stream() -> None:
    """Leaving the context after one event closes the event iterator."""
    llm = DemoLLM(chunk_delay=0)
    async with llm.stream(system="", messages=[user("hi")], tools=TOOLS) as events:
        async for _ in events:
            break
    with pytest.raises(StopAsyncIteration):
        await anext(events)


def test_negative_delay_is_rejected() -> None:
    """A negative chunk_delay is refused."""
    with pytest.raises(ValueError, match="chunk_delay"):
        DemoLLM(chunk_delay=-1)
