"""What the client shows, as values: the protocol logic produces them, a sink prints them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Text:
    """A chunk of streamed assistant text, printed as it is (no newline added)."""

    text: str


@dataclass(frozen=True, slots=True)
class EndText:
    """The streamed message is complete: end its line if one is open."""


@dataclass(frozen=True, slots=True)
class Line:
    """A whole line on stdout; ``dim`` for status, tool and queue chatter."""

    text: str
    dim: bool = False


@dataclass(frozen=True, slots=True)
class Notice:
    """A line on stderr: a warning from the server or about the connection."""

    text: str


Item = Text | EndText | Line | Notice
