"""Pure helpers of the agent loop: the model's conversation and bounded text.

No I/O here: values in, values out (tested in ``tests/test_conversation.py``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import orjson

from .models import Message

INTERRUPTED_RESULT = "interrupted: the tool never ran because the run was interrupted"


def _blocks(message: Message) -> list[dict[str, Any]]:
    if message.role == "tool":
        return [
            {
                "type": "tool_result",
                "tool_use_id": message.call_id,
                "content": message.content,
                "is_error": bool(message.is_error),
            }
        ]
    blocks: list[dict[str, Any]] = []
    if message.content.strip():
        blocks.append({"type": "text", "text": message.content})
    if message.role == "assistant":
        blocks.extend(
            {"type": "tool_use", "id": c["call_id"], "name": c["name"], "input": c["input"]}
            for c in message.tool_calls or ()
        )
    return blocks


def build_conversation(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Turn transcript messages (in turn order) into Messages API ``messages``.

    Consecutive turns of one role are merged (tool results first in a user
    turn, as the API wants), every ``tool_use`` is answered in the next user
    turn (a synthetic "interrupted" error where the tool never ran), results
    without a matching call are dropped, and empty turns vanish, so whatever
    the transcript holds (an interrupt, a crash mid-run), the API accepts it.
    """
    turns: list[dict[str, Any]] = []
    for message in messages:
        role = "assistant" if message.role == "assistant" else "user"
        blocks = _blocks(message)
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    out: list[dict[str, Any]] = []
    open_calls: list[str] = []
    for turn in turns:
        if turn["role"] == "assistant":
            calls = [b["id"] for b in turn["content"] if b["type"] == "tool_use"]
            if not out:  # the API wants a user turn first: drop it (its results become orphans)
                continue
            if out[-1]["role"] == "user":
                out.append(turn)
            elif open_calls:  # after a dropped user turn, the earlier calls still need answers
                out.append({"role": "user", "content": _answer(open_calls, [])})
                out.append(turn)
            else:
                out[-1]["content"].extend(turn["content"])
            open_calls = calls if out[-1] is turn else open_calls + calls
        else:
            content = _answer(open_calls, turn["content"])
            open_calls = []
            if content:
                out.append({"role": "user", "content": content})
    if open_calls:
        out.append({"role": "user", "content": _answer(open_calls, [])})
    return out


def _answer(open_calls: list[str], blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tool results for ``open_calls`` first (synthetic where missing), then the rest."""
    results = {b["tool_use_id"]: b for b in blocks if b["type"] == "tool_result"}
    answered = [
        results.get(call_id)
        or {
            "type": "tool_result",
            "tool_use_id": call_id,
            "content": INTERRUPTED_RESULT,
            "is_error": True,
        }
        for call_id in open_calls
    ]
    return answered + [b for b in blocks if b["type"] != "tool_result"]


def bound_text(text: str, limit: int) -> str:
    """``text`` cut so its JSON encoding fits ``limit`` bytes, with a marker saying so."""
    if len(orjson.dumps(text)) <= limit:
        return text
    raw = text.encode()
    keep = limit
    while keep > 0:
        cut = raw[:keep].decode(errors="ignore")
        bounded = f"{cut}\n[... truncated: {len(raw) - len(cut.encode())} more bytes]"
        if len(orjson.dumps(bounded)) <= limit:
            return bounded
        keep = keep * 3 // 4
    return ""  # the limit cannot hold even the marker


def split_text(text: str, limit: int) -> Iterator[str]:
    """Pieces of ``text`` whose JSON encoding each fits ``limit`` bytes."""
    if len(orjson.dumps(text)) <= limit:
        yield text
        return
    step = max(1, limit // 8)  # a character encodes to at most 6 bytes of JSON
    for start in range(0, len(text), step):
        yield text[start : start + step]
