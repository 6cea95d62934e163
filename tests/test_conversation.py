"""The model's conversation built from a transcript, and text bounded for events."""

from __future__ import annotations

from itertools import count
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from realtime_agent.conversation import (
    INTERRUPTED_RESULT,
    bound_text,
    build_conversation,
    split_text,
)
from realtime_agent.models import Message, ToolCall

# A failing hypothesis test makes the hypothesis pytest plugin import libcst (to
# suggest an ``@example`` patch), whose import emits this DeprecationWarning; with
# ``filterwarnings = ["error"]`` that would crash the whole run instead of
# reporting the failure.
pytestmark = pytest.mark.filterwarnings(
    "ignore:mypy_extensions.TypedDict is deprecated:DeprecationWarning"
)
# No example database in the work tree; the first ``st.text()`` of a process
# builds hypothesis' Unicode tables, which the too_slow health check would count.
PROPERTY: dict[str, Any] = {"database": None, "suppress_health_check": [HealthCheck.too_slow]}


Turn = dict[str, Any]
_ids = count(1)


def user(content: str) -> Message:
    return Message(id=f"msg-{next(_ids)}", session_id="sess-1", role="user", content=content)


def assistant(content: str, *call_ids: str) -> Message:
    calls = [ToolCall(call_id=c, name="lookup", input={"q": c}) for c in call_ids]
    return Message(
        id=f"msg-{next(_ids)}",
        session_id="sess-1",
        role="assistant",
        content=content,
        tool_calls=calls or None,
    )


def tool(call_id: str, output: str = "ok", is_error: bool = False) -> Message:
    return Message(
        id=f"msg-{next(_ids)}",
        session_id="sess-1",
        role="tool",
        content=output,
        call_id=call_id,
        name="lookup",
        is_error=is_error,
    )


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def use(call_id: str) -> dict[str, Any]:
    return {"type": "tool_use", "id": call_id, "name": "lookup", "input": {"q": call_id}}


def result(call_id: str, output: str = "ok", is_error: bool = False) -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": call_id, "content": output, "is_error": is_error}


def interrupted(call_id: str) -> dict[str, Any]:
    return result(call_id, INTERRUPTED_RESULT, is_error=True)


def check_valid(conversation: list[Turn]) -> None:
    """Assert the Messages API would accept ``conversation``.

    The first turn is the user's, roles alternate, no turn and no text block is
    empty, every ``tool_use`` is answered by exactly one ``tool_result`` with its
    id at the start of the next turn (a user turn), and no ``tool_result``
    answers anything but the turn just before it.
    """
    if not conversation:
        return
    assert conversation[0]["role"] == "user", conversation
    seen_uses: set[str] = set()
    previous_uses: list[str] = []
    for i, turn in enumerate(conversation):
        assert set(turn) == {"role", "content"}, turn
        assert turn["role"] in ("user", "assistant"), turn
        if i:
            assert turn["role"] != conversation[i - 1]["role"], f"turns {i - 1},{i} share a role"
        blocks = turn["content"]
        assert blocks, f"turn {i} is empty"
        for block in blocks:
            if block["type"] == "text":
                assert block["text"].strip(), f"turn {i} has a blank text block"
        results = [b["tool_use_id"] for b in blocks if b["type"] == "tool_result"]
        uses = [b["id"] for b in blocks if b["type"] == "tool_use"]
        if turn["role"] == "user":
            assert not uses, f"user turn {i} holds tool_use blocks"
            assert sorted(results) == sorted(previous_uses), (
                f"turn {i} answers {results}, the turn before asked for {previous_uses}"
            )
            kinds = [b["type"] for b in blocks]
            assert kinds[: len(results)] == ["tool_result"] * len(results), (
                f"turn {i}: tool results must come first"
            )
        else:
            assert not results, f"assistant turn {i} holds tool_result blocks"
            assert not seen_uses & set(uses), f"turn {i} reuses a tool_use id"
            seen_uses.update(uses)
        previous_uses = uses
    if previous_uses:
        raise AssertionError("the last assistant turn's tool_use blocks are never answered")


def test_plain_alternation() -> None:
    """User and assistant text messages become alternating turns of text blocks."""
    conversation = build_conversation(
        [user("hi"), assistant("hello"), user("how are you?"), assistant("fine")]
    )
    assert conversation == [
        {"role": "user", "content": [text("hi")]},
        {"role": "assistant", "content": [text("hello")]},
        {"role": "user", "content": [text("how are you?")]},
        {"role": "assistant", "content": [text("fine")]},
    ]
    check_valid(conversation)


def test_tool_round_trip() -> None:
    """An assistant's tool calls, their results and the final answer map to API blocks."""
    conversation = build_conversation(
        [
            user("what time is it?"),
            assistant("Let me check.", "c1", "c2"),
            tool("c1", "12:00"),
            tool("c2", "boom", is_error=True),
            assistant("It is noon."),
        ]
    )
    assert conversation == [
        {"role": "user", "content": [text("what time is it?")]},
        {"role": "assistant", "content": [text("Let me check."), use("c1"), use("c2")]},
        {"role": "user", "content": [result("c1", "12:00"), result("c2", "boom", True)]},
        {"role": "assistant", "content": [text("It is noon.")]},
    ]
    check_valid(conversation)


def test_interrupted_turn_gets_a_synthetic_error_result() -> None:
    """A call that never ran is answered with an ``INTERRUPTED_RESULT`` error result."""
    conversation = build_conversation(
        [user("do two things"), assistant("", "c1", "c2"), tool("c1", "done"), user("stop")]
    )
    assert conversation == [
        {"role": "user", "content": [text("do two things")]},
        {"role": "assistant", "content": [use("c1"), use("c2")]},
        {"role": "user", "content": [result("c1", "done"), interrupted("c2"), text("stop")]},
    ]
    assert conversation[2]["content"][1]["is_error"] is True
    check_valid(conversation)


def test_unanswered_calls_at_the_end_are_answered() -> None:
    """Calls of the last assistant message, none of which ran, all get synthetic results."""
    conversation = build_conversation([user("go"), assistant("working", "c1", "c2")])
    assert conversation[-1] == {"role": "user", "content": [interrupted("c1"), interrupted("c2")]}
    check_valid(conversation)


def test_consecutive_user_messages_are_merged() -> None:
    """Consecutive user messages (a queue, steering) form one user turn, in order."""
    conversation = build_conversation([user("one"), user("two"), assistant("ok"), user("three")])
    assert conversation == [
        {"role": "user", "content": [text("one"), text("two")]},
        {"role": "assistant", "content": [text("ok")]},
        {"role": "user", "content": [text("three")]},
    ]
    check_valid(conversation)


def test_consecutive_assistant_messages_are_merged() -> None:
    """Consecutive assistant messages form one assistant turn."""
    conversation = build_conversation([user("hi"), assistant("part one"), assistant("part two")])
    assert conversation == [
        {"role": "user", "content": [text("hi")]},
        {"role": "assistant", "content": [text("part one"), text("part two")]},
    ]


def test_tool_results_come_before_text_in_a_merged_user_turn() -> None:
    """A user message steered in before the tool results still follows them in the turn."""
    conversation = build_conversation(
        [user("look it up"), assistant("", "c1"), user("also this"), tool("c1", "found")]
    )
    assert conversation[2] == {
        "role": "user",
        "content": [result("c1", "found"), text("also this")],
    }
    check_valid(conversation)


def test_orphan_tool_result_is_dropped() -> None:
    """A tool result whose call is not in the assistant turn just before is dropped."""
    conversation = build_conversation(
        [user("hi"), assistant("", "c1"), tool("c1"), tool("ghost"), assistant("done")]
    )
    assert conversation == [
        {"role": "user", "content": [text("hi")]},
        {"role": "assistant", "content": [use("c1")]},
        {"role": "user", "content": [result("c1")]},
        {"role": "assistant", "content": [text("done")]},
    ]
    check_valid(conversation)


def test_empty_assistant_text_dropped_but_tool_use_kept() -> None:
    """Blank assistant text yields no text block; its tool calls stay."""
    conversation = build_conversation([user("hi"), assistant("  \n", "c1"), tool("c1")])
    assert conversation[1] == {"role": "assistant", "content": [use("c1")]}
    check_valid(conversation)


def test_empty_messages_vanish() -> None:
    """Blank messages without tool calls leave no empty turn behind."""
    conversation = build_conversation(
        [user("hi"), assistant(""), user("  "), assistant("answer"), user("")]
    )
    assert conversation == [
        {"role": "user", "content": [text("hi")]},
        {"role": "assistant", "content": [text("answer")]},
    ]


def test_assistant_message_at_the_start_is_dropped() -> None:
    """The conversation starts with a user turn even when the transcript does not."""
    conversation = build_conversation([assistant("Welcome!"), user("hi"), assistant("hello")])
    assert conversation == [
        {"role": "user", "content": [text("hi")]},
        {"role": "assistant", "content": [text("hello")]},
    ]
    check_valid(conversation)


def test_empty_transcript_gives_empty_conversation() -> None:
    """No messages, no turns."""
    assert build_conversation([]) == []


def test_leading_assistant_tool_calls_are_dropped_with_their_results() -> None:
    """A dropped leading assistant turn takes its tool results with it (no orphan result).

    Fails today: the leading assistant turn is popped after its calls were
    answered, so the conversation opens with a ``tool_result`` for a
    ``tool_use`` the model never sees, which the Messages API refuses.
    """
    conversation = build_conversation(
        [assistant("", "c1"), tool("c1"), assistant("done"), user("hi"), assistant("hello")]
    )
    check_valid(conversation)
    assert conversation[0] == {"role": "user", "content": [text("hi")]}


def test_user_turn_of_only_orphan_results_keeps_roles_alternating() -> None:
    """A user turn that held only orphan results vanishes without two assistant turns touching.

    Fails today: the emptied user turn is filtered out at the very end, after
    merging, so the assistant turns around it end up adjacent.
    """
    conversation = build_conversation(
        [user("hi"), assistant("hello"), tool("ghost"), assistant("more"), user("ok")]
    )
    check_valid(conversation)
    assert conversation == [
        {"role": "user", "content": [text("hi")]},
        {"role": "assistant", "content": [text("hello"), text("more")]},
        {"role": "user", "content": [text("ok")]},
    ]


def test_orphan_result_at_the_start_still_starts_with_a_user_turn() -> None:
    """An orphan result before the first assistant message cannot make it the first turn.

    Fails today: the leading user turn is emptied after the leading-assistant
    check ran, so the conversation starts with an assistant turn.
    """
    conversation = build_conversation([tool("ghost"), assistant("hello"), user("hi")])
    check_valid(conversation)
    assert conversation == [{"role": "user", "content": [text("hi")]}]


# --- property: any transcript gives a valid conversation ---------------------

CONTENTS = st.sampled_from(["", " ", "\n\t", "hi", "some text", "ünïcode 😀"])


@st.composite
def transcripts(draw: st.DrawFn) -> list[Message]:
    """Random user, assistant (with random tool calls) and tool messages in any order."""
    messages: list[Message] = []
    calls_so_far: list[str] = []
    for n in range(draw(st.integers(min_value=0, max_value=14))):
        kind = draw(st.sampled_from(["user", "assistant", "tool"]))
        content = draw(CONTENTS)
        if kind == "user":
            messages.append(user(content))
        elif kind == "assistant":
            call_ids = [f"call-{n}-{k}" for k in range(draw(st.integers(0, 3)))]
            calls_so_far.extend(call_ids)
            messages.append(assistant(content, *call_ids))
        else:
            call_id = draw(st.sampled_from([*calls_so_far, "ghost"]))
            messages.append(tool(call_id, content, draw(st.booleans())))
    return messages


@settings(max_examples=500, **PROPERTY)
@given(messages=transcripts())
def test_any_transcript_gives_a_valid_conversation(messages: list[Message]) -> None:
    """Whatever the transcript holds, the built conversation passes the validity checker."""
    conversation = build_conversation(messages)
    check_valid(conversation)
    if any(m.role == "user" and m.content.strip() for m in messages):
        assert conversation, "a transcript with user text gives a non-empty conversation"


@settings(max_examples=200, **PROPERTY)
@given(messages=transcripts())
def test_every_user_text_is_kept_in_order(messages: list[Message]) -> None:
    """User text is never lost or reordered, whatever surrounds it."""
    conversation = build_conversation(messages)
    texts = [
        b["text"]
        for t in conversation
        if t["role"] == "user"
        for b in t["content"]
        if b["type"] == "text"
    ]
    assert texts == [m.content for m in messages if m.role == "user" and m.content.strip()]


# --- bound_text and split_text -----------------------------------------------

MARKER = "\n[... truncated: "


def json_size(value: str) -> int:
    return len(orjson.dumps(value))


@settings(max_examples=300, **PROPERTY)
@given(value=st.text(), limit=st.integers(min_value=64, max_value=2048))
def test_bound_text_fits_the_limit(value: str, limit: int) -> None:
    """The bounded text's JSON encoding fits ``limit`` bytes."""
    assert json_size(bound_text(value, limit)) <= limit


@settings(max_examples=200, **PROPERTY)
@given(value=st.text(max_size=50), extra=st.integers(min_value=0, max_value=100))
def test_bound_text_leaves_small_text_unchanged(value: str, extra: int) -> None:
    """Text whose JSON already fits is returned unchanged."""
    assert bound_text(value, json_size(value) + extra) == value


@settings(max_examples=300, **PROPERTY)
@given(value=st.text(min_size=1), limit=st.integers(min_value=64, max_value=512))
def test_bound_text_marks_the_cut(value: str, limit: int) -> None:
    """Cut text is a prefix of the original plus a marker counting the bytes left out."""
    value = value * (1 + 2 * limit // len(value.encode()))
    bounded = bound_text(value, limit)
    assert MARKER in bounded
    kept, _, marker = bounded.rpartition(MARKER)
    assert value.startswith(kept)
    assert marker == f"{len(value.encode()) - len(kept.encode())} more bytes]"


def test_bound_text_cuts_escaped_and_multibyte_text() -> None:
    """Text that grows when JSON-escaped, or is multi-byte, still fits once cut."""
    for value in ['"' * 5000, "\x01" * 5000, "é" * 5000, "😀" * 5000]:
        bounded = bound_text(value, 1000)
        assert json_size(bounded) <= 1000
        assert MARKER in bounded


@pytest.mark.timeout(3)
def test_bound_text_with_a_limit_smaller_than_the_marker_terminates() -> None:
    """A limit too small for the marker still returns, with text that fits.

    Fails today (hangs until the timeout): the loop shrinks ``keep`` to 0 and
    retries forever, because the marker alone never fits the limit.
    """
    assert json_size(bound_text("x" * 100, 16)) <= 16


@settings(max_examples=300, **PROPERTY)
@given(value=st.text(), limit=st.integers(min_value=8, max_value=512))
def test_split_text_pieces_fit_and_join_back(value: str, limit: int) -> None:
    """Each piece's JSON fits ``limit`` and the pieces join back into the original."""
    pieces = list(split_text(value, limit))
    assert "".join(pieces) == value
    assert all(json_size(piece) <= limit for piece in pieces)
    assert all(pieces) or pieces == [""]


@settings(max_examples=100, **PROPERTY)
@given(value=st.text(max_size=50))
def test_split_text_leaves_small_text_whole(value: str) -> None:
    """Text whose JSON fits comes back as one piece."""
    assert list(split_text(value, json_size(value))) == [value]


def test_split_text_of_escaped_text() -> None:
    """Text of characters with the longest JSON escapes still splits into fitting pieces."""
    value = "\x01" * 1000 + '"' * 1000 + "😀" * 1000
    pieces = list(split_text(value, 100))
    assert "".join(pieces) == value
    assert max(json_size(p) for p in pieces) <= 100
