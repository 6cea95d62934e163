"""The built-in tools ``current_time`` and ``session_note``."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from realtime_agent.tools.builtins import BUILTIN_TOOLS, current_time, session_note
from realtime_agent.tools.registry import ToolContext, ToolInputError, ToolRegistry

RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def ctx(context: dict[str, object] | None = None) -> ToolContext:
    return ToolContext(session_id="sess-test", context=context if context is not None else {})


def parse(output: str) -> tuple[datetime, str]:
    stamp, _, zone = output.partition(" ")
    assert zone.startswith("(") and zone.endswith(")"), output
    return datetime.fromisoformat(stamp), zone[1:-1]


def test_builtin_tools() -> None:
    """The built-ins are current_time (reads) and session_note (changes), with distinct names."""
    assert [(t.name, t.changes) for t in ToolRegistry(BUILTIN_TOOLS)] == [
        ("current_time", False),
        ("session_note", True),
    ]


def test_schemas() -> None:
    """current_time takes an optional timezone; session_note a required note and no context."""
    assert current_time.input_schema["required"] == []
    assert set(current_time.input_schema["properties"]) == {"timezone"}
    assert session_note.input_schema["required"] == ["note"]
    assert set(session_note.input_schema["properties"]) == {"note"}


async def test_current_time_defaults_to_utc() -> None:
    """Without a zone the time is ISO 8601 in UTC, between the times read around the call."""
    before = datetime.now(UTC).replace(microsecond=0)
    now, zone = parse(await current_time.call({}, ctx()))
    after = datetime.now(UTC)
    assert zone == "UTC"
    assert now.utcoffset() == timedelta(0)
    assert before <= now <= after


async def test_current_time_in_a_zone() -> None:
    """With an IANA zone the time carries that zone's offset and name."""
    now, zone = parse(await current_time.call({"timezone": "Asia/Kolkata"}, ctx()))
    assert zone == "Asia/Kolkata"
    assert now.utcoffset() == datetime.now(ZoneInfo("Asia/Kolkata")).utcoffset()


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "../etc/passwd", "Europe/"])
async def test_current_time_unknown_zone(zone: str) -> None:
    """An unknown or malformed zone raises ValueError that names it and suggests a valid one."""
    with pytest.raises(ValueError, match=r"unknown time zone .* IANA name such as 'Europe/Paris'"):
        await current_time.call({"timezone": zone}, ctx())


async def test_session_note_creates_the_list() -> None:
    """session_note creates context["notes"] and appends the note with an RFC 3339 UTC time."""
    context = ctx({"other": 1})
    out = await session_note.call({"note": "  The user likes tea. "}, context)
    assert "The user likes tea." in out
    assert context.context["other"] == 1
    [entry] = context.context["notes"]
    assert entry["note"] == "The user likes tea."
    assert RFC3339_UTC.match(entry["at"])


async def test_session_note_appends() -> None:
    """session_note keeps earlier notes and adds the new one at the end."""
    context = ctx({"notes": [{"note": "first", "at": "2026-01-01T00:00:00Z"}]})
    out = await session_note.call({"note": "second"}, context)
    assert [n["note"] for n in context.context["notes"]] == ["first", "second"]
    assert "note 2" in out


async def test_session_note_refuses_empty_note() -> None:
    """An empty or blank note raises ValueError and changes nothing."""
    context = ctx()
    with pytest.raises(ValueError, match="note is empty"):
        await session_note.call({"note": "   "}, context)
    assert context.context == {}


async def test_session_note_keeps_foreign_notes_key() -> None:
    """A 'notes' value that is not a list is left alone and the call fails."""
    context = ctx({"notes": "someone else's"})
    with pytest.raises(ValueError, match="not a list"):
        await session_note.call({"note": "x"}, context)
    assert context.context == {"notes": "someone else's"}


async def test_session_note_requires_a_note() -> None:
    """Calling session_note without a note is an input error."""
    with pytest.raises(ToolInputError, match="note: Field required"):
        await session_note.call({}, ctx())
