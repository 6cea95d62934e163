"""Where the client's output goes: text for people, or one JSON line per frame."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Protocol, TextIO

from .items import EndText, Item, Line, Notice, Text
from .style import dim, printable


class Sink(Protocol):
    """Receives every frame and what to show for it."""

    def frame(self, frame: object) -> None:
        """A frame as received (only the JSON sink prints it)."""

    def show(self, items: Iterable[Item]) -> None:
        """Print what the protocol logic made of a frame, or a client message."""


class PlainSink:
    """Text on ``out`` (streamed assistant text as it arrives), notices on ``err``.

    Streamed text leaves its line open; the next whole line or the end of the
    message closes it.
    """

    def __init__(self, out: TextIO, err: TextIO, *, color: bool) -> None:
        self.out = out
        self.err = err
        self.color = color
        self._open = False

    def frame(self, frame: object) -> None:
        """Text output shows items, not frames."""

    def show(self, items: Iterable[Item]) -> None:
        """Write ``items`` and flush, so streamed text appears at once."""
        for item in items:
            match item:
                case Text(text):
                    if text:
                        self.out.write(printable(text))
                        self._open = not text.endswith("\n")
                case EndText():
                    self._end_line()
                case Line(text, is_dim):
                    self._end_line()
                    safe = printable(text)
                    self.out.write((dim(safe, self.color) if is_dim else safe) + "\n")
                case Notice(text):
                    if self.out.isatty():  # same screen: do not glue it to a streamed line
                        self._end_line()
                    self.out.flush()
                    self.err.write(printable(text) + "\n")
                    self.err.flush()
        self.out.flush()

    def _end_line(self) -> None:
        if self._open:
            self.out.write("\n")
            self._open = False


class JsonSink:
    """Every frame as one compact JSON line on ``out`` and nothing else; notices on ``err``."""

    def __init__(self, out: TextIO, err: TextIO) -> None:
        self.out = out
        self.err = err

    def frame(self, frame: object) -> None:
        """Write ``frame`` as one line of compact JSON."""
        self.out.write(json.dumps(frame, ensure_ascii=False, separators=(",", ":")) + "\n")
        self.out.flush()

    def show(self, items: Iterable[Item]) -> None:
        """Only notices: stdout holds frames alone."""
        for item in items:
            if isinstance(item, Notice):
                self.err.write(item.text + "\n")
                self.err.flush()
