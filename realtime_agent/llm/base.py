"""The provider contract the agent loop talks to.

A provider turns a conversation (Anthropic ``MessageParam`` dicts: the one
format the loop keeps) into a stream of :data:`LLMEvent` values. It is an
async context manager so the underlying stream is always closed, also when
the run is cancelled mid-stream.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool as the model sees it."""

    name: str
    description: str
    input_schema: dict[str, Any]


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A chunk of assistant text."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolUse:
    """A complete tool call the model asked for (its input fully streamed)."""

    id: str
    name: str
    input: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Finished:
    """The model's turn ended."""

    stop_reason: str | None


LLMEvent = TextDelta | ToolUse | Finished


class LLMError(Exception):
    """A model call failed for good (after the SDK's own retries)."""


class LLM(Protocol):
    """A model provider."""

    name: str

    def stream(
        self,
        *,
        system: str,
        messages: Sequence[dict[str, Any]],
        tools: Sequence[ToolSpec],
    ) -> AbstractAsyncContextManager[AsyncIterator[LLMEvent]]:
        """Open one model call; iterate the entered value for its events.

        Raises :class:`LLMError` (on enter or while iterating) when the call
        fails. Leaving the context closes the underlying stream.
        """
