"""The Store contract, run over every backend (see ``conftest.py``)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any

import pytest

from realtime_agent.models import (
    AutonomyLevel,
    Message,
    Role,
    Session,
    SessionStatus,
    ToolCall,
    new_message_id,
    new_session_id,
)
from tests.store.conftest import MigratingStore, Opener

T0 = datetime(2025, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)
_clock = count(1)


def session(**fields: Any) -> Session:
    """A session with fixed times in the past; ``fields`` override."""
    values: dict[str, Any] = {
        "id": new_session_id(),
        "character_id": 42,
        "created_at": T0,
        "updated_at": T0,
    }
    values.update(fields)
    return Session(**values)


def message(session_id: str, role: Role = "user", content: str = "hi", **fields: Any) -> Message:
    """A message with a distinct, increasing, timezone-aware timestamp."""
    values: dict[str, Any] = {
        "id": new_message_id(),
        "session_id": session_id,
        "role": role,
        "content": content,
        "timestamp": T0 + timedelta(seconds=next(_clock)),
    }
    values.update(fields)
    return Message(**values)


async def new_session(store: MigratingStore, **fields: Any) -> str:
    """Create a session in ``store``; return its id."""
    created = session(**fields)
    await store.create_session(created)
    return created.id


async def append(store: MigratingStore, msg: Message) -> Message:
    """Append a message that must be new; return it as stored."""
    stored, created = await store.append_message(msg)
    assert created
    return stored


def ids(messages: list[Message]) -> list[str]:
    return [m.id for m in messages]


# --- sessions -------------------------------------------------------------------


async def test_ping(store: MigratingStore) -> None:
    """An open store answers ``ping``."""
    await store.ping()


async def test_create_get_session_round_trip(store: MigratingStore) -> None:
    """Every field of a session comes back as written, with timezone-aware times."""
    written = session(
        character_id=2**40,
        autonomy_level=AutonomyLevel.ASSISTED,
        status=SessionStatus.COMPLETED_WITH_ERRORS,
        context={"notes": ["ünïcode 😀", "two"], "nested": {"n": 1, "f": 1.5, "none": None}},
        created_at=T0,
        updated_at=T0 + timedelta(minutes=1),
    )
    await store.create_session(written)
    read = await store.get_session(written.id)
    assert read == written
    assert read is not None
    assert isinstance(read.autonomy_level, AutonomyLevel)
    assert isinstance(read.status, SessionStatus)
    for ts in (read.created_at, read.updated_at):
        assert ts.tzinfo is not None
        assert ts.utcoffset() == timedelta(0)


async def test_session_defaults_round_trip(store: MigratingStore) -> None:
    """A session created with the model's defaults reads back equal."""
    written = Session(id=new_session_id(), character_id=1)
    await store.create_session(written)
    assert await store.get_session(written.id) == written


async def test_unknown_session_is_none(store: MigratingStore) -> None:
    """Reading a session that was never created gives ``None``."""
    assert await store.get_session("sess-unknown") is None


async def test_archive_hides_the_session(store: MigratingStore) -> None:
    """Archiving hides a session from reads; a second archive reports ``False``."""
    sid = await new_session(store)
    other = await new_session(store)
    assert await store.archive_session(sid) is True
    assert await store.get_session(sid) is None
    assert await store.archive_session(sid) is False
    assert await store.get_session(other) is not None


async def test_archive_unknown_session_is_false(store: MigratingStore) -> None:
    """Archiving a session that does not exist reports ``False``."""
    assert await store.archive_session("sess-unknown") is False


async def test_set_status(store: MigratingStore) -> None:
    """``set_status`` changes the status and ``updated_at``, nothing else."""
    written = session(context={"k": "v"})
    await store.create_session(written)
    await store.set_status(written.id, SessionStatus.PLANNING)
    read = await store.get_session(written.id)
    assert read is not None
    assert read.status is SessionStatus.PLANNING
    assert read.updated_at > written.updated_at
    assert read.updated_at.tzinfo is not None
    assert (read.context, read.created_at, read.character_id) == (
        written.context,
        written.created_at,
        written.character_id,
    )


async def test_set_context(store: MigratingStore) -> None:
    """``set_context`` replaces the context and leaves the status alone."""
    sid = await new_session(store, status=SessionStatus.EXECUTING, context={"old": 1})
    await store.set_context(sid, {"notes": ["remember this"], "count": 2})
    read = await store.get_session(sid)
    assert read is not None
    assert read.context == {"notes": ["remember this"], "count": 2}
    assert read.status is SessionStatus.EXECUTING


async def test_setters_return_the_session_as_written(store: MigratingStore) -> None:
    """Each setter returns the whole session as it now is, read in the same statement
    (the Redis cache writes it through without reading it again)."""
    sid = await new_session(store, context={"old": 1})
    returned = [
        await store.set_status(sid, SessionStatus.PLANNING),
        await store.set_context(sid, {"new": 2}),
        await store.set_autonomy(sid, AutonomyLevel.AUTONOMOUS),
        await store.set_pending_approval(sid, {"approval_id": "ap-1", "calls": []}),
    ]
    assert all(r is not None for r in returned)
    assert returned[-1] == await store.get_session(sid)
    assert [(r.status, r.context, r.autonomy_level) for r in returned if r] == [
        (SessionStatus.PLANNING, {"old": 1}, AutonomyLevel.RECOMMENDATIONS),
        (SessionStatus.PLANNING, {"new": 2}, AutonomyLevel.RECOMMENDATIONS),
        (SessionStatus.PLANNING, {"new": 2}, AutonomyLevel.AUTONOMOUS),
        (SessionStatus.PLANNING, {"new": 2}, AutonomyLevel.AUTONOMOUS),
    ]


async def test_setters_on_an_archived_or_unknown_session_return_none(
    store: MigratingStore,
) -> None:
    """A setter on an archived (or unknown) session returns ``None``: there is no live
    session to return (nor to write to)."""
    sid = await new_session(store, status=SessionStatus.EXECUTING)
    assert await store.archive_session(sid)
    assert await store.set_status(sid, SessionStatus.ERROR) is None
    assert await store.set_context(sid, {"late": True}) is None
    assert await store.set_status("sess-unknown", SessionStatus.ERROR) is None


# --- messages ---------------------------------------------------------------------


async def test_append_assigns_positions_per_session(store: MigratingStore) -> None:
    """Positions count 1, 2, 3 within each session, independently."""
    a = await new_session(store)
    b = await new_session(store)
    assert [(await append(store, message(a))).position for _ in range(3)] == [1, 2, 3]
    assert (await append(store, message(b))).position == 1
    assert (await append(store, message(a))).position == 4


async def test_idempotent_client_id(store: MigratingStore) -> None:
    """A repeated ``client_id`` returns the first message and stores nothing new."""
    sid = await new_session(store)
    first, created = await store.append_message(message(sid, content="first", client_id="c-1"))
    assert created is True
    again, created = await store.append_message(message(sid, content="resent", client_id="c-1"))
    assert created is False
    assert again == first
    assert again.content == "first"
    assert again.position == 1
    assert ids(await store.list_messages(sid)) == [first.id]


async def test_same_client_id_in_another_session_is_separate(store: MigratingStore) -> None:
    """Idempotency is per session: the same ``client_id`` elsewhere is a new message."""
    a = await new_session(store)
    b = await new_session(store)
    in_a, _ = await store.append_message(message(a, client_id="c-1"))
    in_b, created = await store.append_message(message(b, client_id="c-1"))
    assert created is True
    assert in_b.id != in_a.id
    assert ids(await store.list_messages(b)) == [in_b.id]


async def test_messages_without_client_id_are_never_merged(store: MigratingStore) -> None:
    """Messages without a ``client_id`` (assistant, tool) are all stored."""
    sid = await new_session(store)
    await append(store, message(sid, "assistant", "one"))
    await append(store, message(sid, "assistant", "one"))
    assert len(await store.list_messages(sid)) == 2


async def test_list_messages_in_position_order(store: MigratingStore) -> None:
    """The transcript lists every field of every message in arrival order."""
    sid = await new_session(store)
    other = await new_session(store)
    stored = [
        await append(store, message(sid, "user", "hello", client_id="c-1", priority=1)),
        await append(store, message(sid, "assistant", "hi there", turn=1)),
        await append(store, message(sid, "user", "more", client_id="c-2", turn=1)),
    ]
    await append(store, message(other))
    listed = await store.list_messages(sid)
    assert listed == stored
    assert [m.position for m in listed] == [1, 2, 3]
    assert all(m.timestamp.tzinfo is not None for m in listed)


async def test_list_messages_of_unknown_session_is_empty(store: MigratingStore) -> None:
    """A session without messages has an empty transcript."""
    assert await store.list_messages("sess-unknown") == []


async def test_tool_messages_round_trip(store: MigratingStore) -> None:
    """Assistant tool calls and tool results (ok and failed) come back as written."""
    sid = await new_session(store)
    calls = [
        ToolCall(call_id="call-1", name="current_time", input={}),
        ToolCall(
            call_id="call-2",
            name="session_note",
            input={"note": "ünïcode 😀", "tags": ["a", "b"], "n": 1.5, "deep": {"x": None}},
        ),
    ]
    written = [
        message(sid, "assistant", "", tool_calls=calls, turn=1),
        message(
            sid, "tool", "12:00", call_id="call-1", name="current_time", is_error=False, turn=1
        ),
        message(sid, "tool", "boom", call_id="call-2", name="session_note", is_error=True, turn=1),
    ]
    for msg in written:
        await append(store, msg)
    listed = await store.list_messages(sid)
    assert listed == written
    assert listed[0].tool_calls == calls
    assert listed[0].is_error is None
    assert [m.is_error for m in listed[1:]] == [False, True]


# --- the queue and turns -----------------------------------------------------


async def test_take_next_in_priority_then_position_order(store: MigratingStore) -> None:
    """Waiting user messages are taken highest priority first, then oldest, turns 1, 2, 3."""
    sid = await new_session(store)
    u1 = await append(store, message(sid, content="one"))
    u2 = await append(store, message(sid, content="two"))
    urgent = await append(store, message(sid, content="now", priority=1))
    taken = [await store.take_next(sid) for _ in range(3)]
    assert [(m.id, m.turn) for m in taken if m is not None] == [
        (urgent.id, 1),
        (u1.id, 2),
        (u2.id, 3),
    ]
    assert await store.take_next(sid) is None
    turns = {m.id: m.turn for m in await store.list_messages(sid)}
    assert turns == {urgent.id: 1, u1.id: 2, u2.id: 3}


async def test_take_next_skips_messages_with_a_turn_and_other_roles(store: MigratingStore) -> None:
    """Only user messages without a turn wait; the turn count continues across takes."""
    sid = await new_session(store)
    await append(store, message(sid, "assistant", "not a user", turn=None))
    await append(store, message(sid, "tool", "x", call_id="c", name="t", is_error=False))
    await append(store, message(sid, content="steered in", turn=1))
    assert await store.take_next(sid) is None
    waiting = await append(store, message(sid, content="queued"))
    taken = await store.take_next(sid)
    assert taken is not None
    assert (taken.id, taken.turn, taken.content) == (waiting.id, 1, "queued")
    later = await append(store, message(sid, content="later"))
    taken = await store.take_next(sid)
    assert taken is not None
    assert (taken.id, taken.turn) == (later.id, 2)


async def test_take_next_is_per_session(store: MigratingStore) -> None:
    """Each session has its own queue and its own turn numbers."""
    a = await new_session(store)
    b = await new_session(store)
    await append(store, message(a))
    in_b = await append(store, message(b))
    taken_a = await store.take_next(a)
    taken_b = await store.take_next(b)
    assert taken_a is not None and taken_b is not None
    assert (taken_a.turn, taken_b.turn, taken_b.id) == (1, 1, in_b.id)
    assert await store.take_next(a) is None


async def test_take_next_with_nothing_waiting_is_none(store: MigratingStore) -> None:
    """An empty queue gives ``None``, also for an unknown session."""
    sid = await new_session(store)
    assert await store.take_next(sid) is None
    assert await store.take_next("sess-unknown") is None


async def test_take_next_takes_nothing_from_an_archived_session(store: MigratingStore) -> None:
    """A deleted session starts no turn, even with messages still waiting in it."""
    sid = await new_session(store)
    await append(store, message(sid))
    assert await store.archive_session(sid)
    assert await store.take_next(sid) is None


async def test_pending(store: MigratingStore) -> None:
    """``pending`` lists waiting user messages, next first, and shrinks as they are taken."""
    sid = await new_session(store)
    assert await store.pending(sid) == []
    u1 = await append(store, message(sid, content="one"))
    await append(store, message(sid, "assistant", "reply", turn=None))
    u2 = await append(store, message(sid, content="two"))
    urgent = await append(store, message(sid, content="now", priority=1))
    assert ids(await store.pending(sid)) == [urgent.id, u1.id, u2.id]
    assert all(m.turn is None for m in await store.pending(sid))
    await store.take_next(sid)
    assert ids(await store.pending(sid)) == [u1.id, u2.id]


async def test_conversation_orders_by_turn_then_position(store: MigratingStore) -> None:
    """``conversation`` holds only messages with a turn, ordered by (turn, position)."""
    sid = await new_session(store)
    u1 = await append(store, message(sid, content="first"))
    u2 = await append(store, message(sid, content="queued during turn 1"))
    assert await store.take_next(sid) is not None  # u1 -> turn 1
    a1 = await append(
        store,
        message(
            sid, "assistant", "", turn=1, tool_calls=[ToolCall(call_id="c", name="t", input={})]
        ),
    )
    t1 = await append(
        store, message(sid, "tool", "ok", call_id="c", name="t", is_error=False, turn=1)
    )
    a2 = await append(store, message(sid, "assistant", "answer one", turn=1))
    assert await store.take_next(sid) is not None  # u2 -> turn 2
    a3 = await append(store, message(sid, "assistant", "answer two", turn=2))
    u3 = await append(store, message(sid, content="still waiting"))
    assert ids(await store.list_messages(sid)) == [u1.id, u2.id, a1.id, t1.id, a2.id, a3.id, u3.id]
    conversation = await store.conversation(sid)
    assert ids(conversation) == [u1.id, a1.id, t1.id, a2.id, u2.id, a3.id]
    assert [m.turn for m in conversation] == [1, 1, 1, 1, 2, 2]


async def test_sessions_needing_attention(store: MigratingStore) -> None:
    """Live sessions left running or with waiting messages need attention; others do not."""
    idle = await new_session(store)
    done = await new_session(store, status=SessionStatus.COMPLETED)
    await append(store, message(done, content="answered", turn=1))
    errored = await new_session(store, status=SessionStatus.ERROR)
    running = {
        status: await new_session(store, status=status)
        for status in SessionStatus
        if status.running
    }
    waiting = await new_session(store, status=SessionStatus.INTERRUPTED)
    await append(store, message(waiting, content="queued"))
    archived_running = await new_session(store, status=SessionStatus.PLANNING)
    await store.archive_session(archived_running)
    archived_waiting = await new_session(store)
    await append(store, message(archived_waiting))
    await store.archive_session(archived_waiting)
    found = await store.sessions_needing_attention()
    assert sorted(found) == sorted([*running.values(), waiting])
    assert not {idle, done, errored} & set(found)


async def test_sessions_needing_attention_follows_status(store: MigratingStore) -> None:
    """A session stops needing attention once its status is final and its queue empty."""
    sid = await new_session(store)
    assert await store.sessions_needing_attention() == []
    await store.set_status(sid, SessionStatus.EXECUTING)
    assert await store.sessions_needing_attention() == [sid]
    await store.set_status(sid, SessionStatus.COMPLETED)
    assert await store.sessions_needing_attention() == []
    await append(store, message(sid))
    assert await store.sessions_needing_attention() == [sid]
    await store.take_next(sid)
    assert await store.sessions_needing_attention() == []


# --- seq reservation ------------------------------------------------------------


async def test_reserve_seq(store: MigratingStore) -> None:
    """Reservations return the highest seq reserved before: 0, count, 2 * count."""
    sid = await new_session(store)
    other = await new_session(store)
    assert [await store.reserve_seq(sid, 100) for _ in range(3)] == [0, 100, 200]
    assert await store.reserve_seq(other, 7) == 0
    assert await store.reserve_seq(sid, 1) == 300
    assert await store.reserve_seq(sid, 1) == 301


async def test_reserve_seq_unknown_session(store: MigratingStore) -> None:
    """Reserving seq numbers for an unknown session raises ``KeyError``."""
    with pytest.raises(KeyError):
        await store.reserve_seq("sess-unknown", 10)


# --- migrations and durability -----------------------------------------------------


async def test_migrate_is_idempotent(store: MigratingStore) -> None:
    """An opened store is migrated: later ``migrate()`` calls apply nothing."""
    assert await store.migrate() == []
    assert await store.migrate() == []


async def test_data_survives_reopening(open_store: Opener) -> None:
    """A new store on the same database sees everything written and keeps counting."""
    async with open_store() as first:
        written = session(context={"k": "v"}, status=SessionStatus.WAITING_APPROVAL)
        await first.create_session(written)
        m1 = await append(first, message(written.id, client_id="c-1"))
        await append(first, message(written.id, content="queued"))
        taken = await first.take_next(written.id)
        assert taken is not None and taken.id == m1.id
        assert await first.reserve_seq(written.id, 50) == 0
    async with open_store() as second:
        assert await second.migrate() == []
        read = await second.get_session(written.id)
        assert read is not None
        assert replace(read, updated_at=written.updated_at) == written  # appends touch it
        listed = await second.list_messages(written.id)
        assert [(m.content, m.position, m.turn) for m in listed] == [
            ("hi", 1, 1),
            ("queued", 2, None),
        ]
        again, created = await second.append_message(message(written.id, client_id="c-1"))
        assert (again.id, created) == (m1.id, False)
        assert (await append(second, message(written.id))).position == 3
        assert await second.reserve_seq(written.id, 50) == 50
        taken = await second.take_next(written.id)
        assert taken is not None and taken.turn == 2
        assert await second.sessions_needing_attention() == [written.id]
