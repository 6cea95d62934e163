"""The offline demo model: scripted replies, used when no API key is set.

It follows the :class:`~realtime_agent.llm.base.LLM` contract closely enough
to exercise the whole server (streamed text, tool calls, tool results)
without a network. Deciding the reply (:func:`plan_reply`) and splitting it
into chunks (:func:`split_chunks`) are pure functions; only the pacing
awaits.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from .base import Finished, LLMEvent, TextDelta, ToolSpec, ToolUse

PREFIX = "(offline demo model)"

_TIME_RE = re.compile(
    r"\bwhat\s+time\s+is\s+it\b|\bcurrent\s+time\b|\bwhat(?:['\u2019]?s|\s+is)\s+the\s+time\b",
    re.IGNORECASE,
)
_NOTE_RE = re.compile(r"\b(?:remember|note)\s+that\s+(.+)", re.IGNORECASE | re.DOTALL)
_CHUNK_RE = re.compile(r"\s+|\S+\s*")
# Inline Markdown (and HTML) that could turn an echoed message into markup.
_MARKDOWN_RE = re.compile(r"([\\`*_\[\]<>~|&])")
_ECHO_LIMIT = 200


class DemoLLM:
    """An offline stand-in for a real model.

    Args:
        chunk_delay: seconds between streamed events, for a human pace. With 0
            it still yields to the event loop between events.
    """

    name = "demo"

    def __init__(self, chunk_delay: float = 0.02) -> None:
        if chunk_delay < 0:
            raise ValueError(f"chunk_delay must be >= 0, got {chunk_delay}")
        self.chunk_delay = chunk_delay

    @asynccontextmanager
    async def stream(
        self,
        *,
        system: str,
        messages: Sequence[dict[str, Any]],
        tools: Sequence[ToolSpec],
    ) -> AsyncIterator[AsyncIterator[LLMEvent]]:
        """Open one scripted model call; iterate the entered value for its events.

        The reply depends on ``messages`` and ``tools`` only; ``system`` is ignored.
        """
        events = self._play(plan_reply(messages, tools))
        try:
            yield events
        finally:
            # Like a real stream: leaving the context closes it, even half-read.
            await events.aclose()

    async def _play(self, plan: list[LLMEvent]) -> AsyncGenerator[LLMEvent, None]:
        for event in _in_chunks(plan):
            # Every event waits first, so a run can be cancelled between any two.
            await asyncio.sleep(self.chunk_delay)
            yield event


def split_chunks(text: str) -> list[str]:
    """Split text into word-sized chunks (each keeps its trailing whitespace).

    ``"".join(split_chunks(text)) == text`` always holds.
    """
    return _CHUNK_RE.findall(text)


def plan_reply(messages: Sequence[dict[str, Any]], tools: Sequence[ToolSpec]) -> list[LLMEvent]:
    """The demo's whole reply to a conversation: one text, maybe a tool call, then the end."""
    available = {t.name for t in tools}
    last = messages[-1] if messages else {"role": "user", "content": ""}
    results = _blocks(last, "tool_result") if last.get("role") == "user" else []
    if results:
        return [TextDelta(_after_tools(messages, results)), Finished("end_turn")]
    said = _text(last) if last.get("role") == "user" else ""
    if "current_time" in available and _TIME_RE.search(said):
        return _call(f"{PREFIX} Let me check the clock.", "current_time", {})
    note = _NOTE_RE.search(said)
    if "session_note" in available and note:
        fact = note.group(1).strip().rstrip(".!").strip()
        if fact:
            return _call(f"{PREFIX} I'll make a note of that.", "session_note", {"note": fact})
    return [TextDelta(_introduce(said, available)), Finished("end_turn")]


def _in_chunks(plan: list[LLMEvent]) -> list[LLMEvent]:
    out: list[LLMEvent] = []
    for event in plan:
        if isinstance(event, TextDelta):
            out.extend(TextDelta(chunk) for chunk in split_chunks(event.text))
        else:
            out.append(event)
    return out


def _call(text: str, name: str, arguments: dict[str, Any]) -> list[LLMEvent]:
    use = ToolUse(id=f"toolu_demo_{secrets.token_hex(8)}", name=name, input=arguments)
    return [TextDelta(text), use, Finished("tool_use")]


def _blocks(message: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    content = message.get("content")
    if not isinstance(content, list):
        return []
    return [b for b in content if isinstance(b, dict) and b.get("type") == kind]


def _text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    return " ".join(str(b.get("text", "")) for b in _blocks(message, "text"))


def _after_tools(messages: Sequence[dict[str, Any]], results: list[dict[str, Any]]) -> str:
    # The tool's name lives in the assistant's tool_use block with the same id.
    names = {
        b.get("id"): b.get("name")
        for m in messages
        if m.get("role") == "assistant"
        for b in _blocks(m, "tool_use")
    }
    lines = []
    for result in results:
        name = names.get(result.get("tool_use_id"), "tool")
        output = _text({"content": result.get("content", "")}).strip()
        if result.get("is_error"):
            lines.append(f"The `{name}` tool failed: {_plain(output)}")
        elif name == "current_time":
            lines.append(f"The current time is {_plain(output)}.")
        elif name == "session_note":
            lines.append(f"Done, I saved that note: {_plain(output)}")
        else:
            lines.append(f"The `{name}` tool answered: {_plain(output)}")
    return f"{PREFIX} " + " ".join(lines)


def _introduce(said: str, available: set[str]) -> str:
    echo = f'You said: "{_plain(said)}". ' if said.strip() else ""
    head = (
        f"{PREFIX} Hello! {echo}I am the offline demo model: my replies are scripted, "
        "so set an API key to talk to a real model."
    )
    abilities = []
    if "current_time" in available:
        abilities.append("- ask **what time is it** and I'll call the `current_time` tool")
    if "session_note" in available:
        abilities.append("- say **remember that** ... and I'll save a note with `session_note`")
    if not abilities:
        return head + "\n\nNo tools are enabled, so all I can do is chat."
    return head + "\n\nWhat I can do:\n\n" + "\n".join(abilities)


def _plain(text: str) -> str:
    """User or tool text for a Markdown reply: one line, shortened, no markup."""
    line = " ".join(text.split())
    if len(line) > _ECHO_LIMIT:
        line = line[: _ECHO_LIMIT - 1] + "…"
    return _MARKDOWN_RE.sub(r"\\\1", line)
