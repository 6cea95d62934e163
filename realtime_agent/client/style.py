"""ANSI styling: dim lines, only on a terminal and never with ``NO_COLOR`` set."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TextIO

DIM = "\x1b[2m"
RESET = "\x1b[0m"


def use_color(stream: TextIO, environ: Mapping[str, str]) -> bool:
    """Whether to style output on ``stream``: a terminal, and ``NO_COLOR`` unset or empty.

    See https://no-color.org.
    """
    try:
        tty = stream.isatty()
    except ValueError:  # a closed stream
        tty = False
    return tty and not environ.get("NO_COLOR")


def dim(text: str, color: bool) -> str:
    """``text`` dimmed when ``color``, else as it is."""
    return f"{DIM}{text}{RESET}" if color else text


_CONTROLS = {
    code: "\ufffd"
    for code in [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)]
    if chr(code) not in "\n\t"
}


def printable(text: str) -> str:
    """``text`` safe for a terminal: control characters (escape sequences, carriage
    returns) from the server or the model become U+FFFD; newlines and tabs stay."""
    return text.translate(_CONTROLS)
