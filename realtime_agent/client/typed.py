"""What a typed line means: a message to send or one of the slash commands. No I/O."""

from __future__ import annotations

from dataclasses import dataclass

HELP = """\
commands:
  /interrupt        stop the run in progress (Ctrl-C does the same)
  /approve          run the tool calls waiting for approval
  /reject [reason]  refuse them; the model is told why
  /status           the session's status and viewer count
  /help             this text
  /quit             leave (Ctrl-D, or Ctrl-C when nothing runs)
anything else is sent as a message; start it with // to send a leading /"""


@dataclass(frozen=True, slots=True)
class Say:
    """Send ``text`` as a message."""

    text: str


@dataclass(frozen=True, slots=True)
class Interrupt:
    """``/interrupt``."""


@dataclass(frozen=True, slots=True)
class Approve:
    """``/approve``."""


@dataclass(frozen=True, slots=True)
class Reject:
    """``/reject [reason]``."""

    reason: str | None = None


@dataclass(frozen=True, slots=True)
class ShowStatus:
    """``/status``."""


@dataclass(frozen=True, slots=True)
class ShowHelp:
    """``/help``."""


@dataclass(frozen=True, slots=True)
class Quit:
    """``/quit`` (also ``/exit``)."""


@dataclass(frozen=True, slots=True)
class Unknown:
    """A slash command that does not exist."""

    name: str


Command = Say | Interrupt | Approve | Reject | ShowStatus | ShowHelp | Quit | Unknown


def parse_line(line: str) -> Command | None:
    """The command a typed line stands for; ``None`` for a blank line."""
    text = line.strip()
    if not text:
        return None
    if text.startswith("//"):
        return Say(text[1:])
    if not text.startswith("/"):
        return Say(text)
    name, _, rest = text.partition(" ")
    rest = rest.strip()
    match name.lower():
        case "/interrupt":
            return Interrupt()
        case "/approve":
            return Approve()
        case "/reject":
            return Reject(rest or None)
        case "/status":
            return ShowStatus()
        case "/help" | "/?":
            return ShowHelp()
        case "/quit" | "/exit":
            return Quit()
        case _:
            return Unknown(name)
