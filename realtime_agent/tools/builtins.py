"""The built-in tools: ``current_time`` (reads) and ``session_note`` (changes)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..models import rfc3339, utcnow
from .registry import Tool, ToolContext, tool


@tool
def current_time(
    timezone: Annotated[
        str | None, "IANA time zone name such as 'Europe/Paris'; UTC when omitted"
    ] = None,
) -> str:
    """Get the current date and time (ISO 8601) in a time zone, UTC by default."""
    zone_name = timezone or "UTC"
    try:
        zone = ZoneInfo(zone_name)
    # ZoneInfo raises ZoneInfoNotFoundError (a KeyError) for unknown names and
    # ValueError for keys that are not zone paths ("../etc", "Europe/").
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(
            f"unknown time zone {zone_name!r}: use an IANA name such as 'Europe/Paris' or 'UTC'"
        ) from None
    now = datetime.now(zone).isoformat(timespec="seconds")
    return f"{now} ({zone_name})"


@tool(changes=True)
def session_note(
    note: Annotated[str, "the fact to remember, in one sentence"],
    ctx: ToolContext,
) -> str:
    """Save a note in the session's context so it is remembered in later turns."""
    note = note.strip()
    if not note:
        raise ValueError("the note is empty: pass the text to remember")
    notes = ctx.context.setdefault("notes", [])
    if not isinstance(notes, list):
        # Someone else owns this key; refuse rather than overwrite their data.
        raise ValueError("the session context's 'notes' is not a list; cannot add a note")
    notes.append({"note": note, "at": rfc3339(utcnow())})
    return f"Noted (note {len(notes)} of this session): {note}"


BUILTIN_TOOLS: tuple[Tool, ...] = (current_time, session_note)
