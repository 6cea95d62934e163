"""The wire contract's edge: client frame parsing, error frames, encoding and the JSON Schema."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from realtime_agent.models import Message, utcnow
from realtime_agent.protocol import (
    ApproveFrame,
    CloseCode,
    ErrorCode,
    FrameError,
    InterruptFrame,
    MessageFrame,
    PingFrame,
    RejectFrame,
    encode,
    json_schema,
    parse_client_frame,
)

# A failing hypothesis test makes the hypothesis pytest plugin import libcst (to
# suggest an ``@example`` patch), whose import emits this DeprecationWarning; with
# ``filterwarnings = ["error"]`` that would crash the whole run instead of
# reporting the failure.
pytestmark = pytest.mark.filterwarnings(
    "ignore:mypy_extensions.TypedDict is deprecated:DeprecationWarning"
)
# No example database in the work tree; the first ``st.text()`` of a process
# builds hypothesis' Unicode tables, which the too_slow health check would count.
PROPERTY: dict[str, Any] = {"database": None, "suppress_health_check": [HealthCheck.too_slow]}


LIMIT = 100
DOCUMENTED_PARSE_CODES = {"bad_json", "bad_frame", "unknown_type", "too_long"}
VALIDATOR = Draft202012Validator(json_schema())


def parse(frame: Any, limit: int = LIMIT) -> Any:
    """Parse a Python value sent as a JSON text frame."""
    return parse_client_frame(json.dumps(frame), max_content_chars=limit)


def parse_error(frame: Any, limit: int = LIMIT) -> FrameError:
    """The ``FrameError`` that parsing ``frame`` raises."""
    with pytest.raises(FrameError) as info:
        parse(frame, limit)
    return info.value


def message(**fields: Any) -> dict[str, Any]:
    """A valid client ``message`` frame with ``fields`` overriding or added."""
    return {"type": "message", "content": "hello", "client_id": "c-1", **fields}


# --- error paths -------------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["", "{", "not json", "{'type': 'ping'}", '{"type": "ping",}', "NaN", "[1] [2]"]
)
def test_invalid_json_is_bad_json(text: str) -> None:
    """Text that is not JSON is answered with ``bad_json`` and no ``ref``."""
    with pytest.raises(FrameError) as info:
        parse_client_frame(text, max_content_chars=LIMIT)
    assert info.value.code == ErrorCode.BAD_JSON
    assert info.value.ref is None


def test_lone_surrogate_is_bad_json() -> None:
    """A text frame holding a lone surrogate is ``bad_json``, not an internal error."""
    with pytest.raises(FrameError) as info:
        parse_client_frame('{"type": "ping", "id": "\ud800"}', max_content_chars=LIMIT)
    assert info.value.code == ErrorCode.BAD_JSON


@pytest.mark.parametrize("value", [[], [{"type": "ping"}], "ping", 1, 1.5, None, True])
def test_non_object_is_bad_frame(value: Any) -> None:
    """A JSON value that is not an object is ``bad_frame``."""
    error = parse_error(value)
    assert error.code == ErrorCode.BAD_FRAME
    assert error.ref is None


@pytest.mark.parametrize(
    "frame",
    [
        {},
        {"id": "a"},
        {"type": None, "id": "a"},
        {"type": 1, "id": "a"},
        {"type": ["ping"], "id": "a"},
    ],
)
def test_missing_or_non_string_type_is_bad_frame(frame: dict[str, Any]) -> None:
    """A frame without a string ``type`` is ``bad_frame`` (echoing a valid ``id``)."""
    error = parse_error(frame)
    assert error.code == ErrorCode.BAD_FRAME
    assert error.ref == frame.get("id")


@pytest.mark.parametrize("kind", ["subscribe", "", "MESSAGE", "Ping", "hello", "pong", "x" * 500])
def test_unknown_type(kind: str) -> None:
    """A string ``type`` that is no client frame is ``unknown_type``."""
    error = parse_error({"type": kind, "id": 7})
    assert error.code == ErrorCode.UNKNOWN_TYPE
    assert error.ref == 7
    assert len(error.message) < 200


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "message", "content": "hi"},
        {"type": "message", "client_id": "c-1"},
        {"type": "approve"},
        {"type": "reject", "reason": "no"},
    ],
)
def test_missing_field_is_bad_frame(frame: dict[str, Any]) -> None:
    """A frame missing a required field is ``bad_frame``."""
    assert parse_error({**frame, "id": "m1"}).code == ErrorCode.BAD_FRAME


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "ping", "extra": 1},
        {"type": "interrupt", "content": "x"},
        message(session_id="sess-1"),
        {"type": "approve", "approval_id": "a1", "reason": "why not"},
    ],
)
def test_extra_field_is_bad_frame(frame: dict[str, Any]) -> None:
    """A field the frame type does not define is ``bad_frame`` (no silent ignoring)."""
    assert parse_error(frame).code == ErrorCode.BAD_FRAME


@pytest.mark.parametrize(
    "frame",
    [
        message(content=1),
        message(content=["hello"]),
        message(content=None),
        message(client_id=["c-1"]),
        message(client_id=1),
        message(client_id=""),
        message(client_id="c" * 129),
        message(on_busy="later"),
        message(on_busy=None),
        message(on_busy=0),
        {"type": "approve", "approval_id": 1},
        {"type": "approve", "approval_id": ""},
        {"type": "reject", "approval_id": "a1", "reason": 5},
    ],
)
def test_wrong_field_type_is_bad_frame(frame: dict[str, Any]) -> None:
    """A field of the wrong type or out of its bounds is ``bad_frame``, with the ``id`` echoed."""
    error = parse_error({**frame, "id": "f1"})
    assert error.code == ErrorCode.BAD_FRAME
    assert error.ref == "f1"


def test_no_coercion_of_strings_and_numbers() -> None:
    """Parsing is strict: a numeric string stays a string and a number never becomes a string."""
    assert parse({"type": "ping", "id": "1"}).id == "1"
    assert parse({"type": "ping", "id": 1}).id == 1
    assert parse_error(message(content=1)).code == ErrorCode.BAD_FRAME
    assert parse_error({"type": "approve", "approval_id": 12}).code == ErrorCode.BAD_FRAME
    assert parse_error({"type": "ping", "id": True}).code == ErrorCode.BAD_FRAME


@pytest.mark.parametrize("content", ["", " ", "\n\t  ", "\u3000"])
def test_blank_content_is_bad_frame(content: str) -> None:
    """Empty or whitespace-only content is ``bad_frame``."""
    error = parse_error(message(content=content, id=3))
    assert error.code == ErrorCode.BAD_FRAME
    assert error.ref == 3


def test_content_over_the_limit_is_too_long() -> None:
    """Content one character over the limit is ``too_long``; at the limit it is accepted."""
    assert parse(message(content="x" * LIMIT)).content == "x" * LIMIT
    error = parse_error(message(content="x" * (LIMIT + 1), id="big"))
    assert error.code == ErrorCode.TOO_LONG
    assert error.ref == "big"


def test_limit_counts_characters_not_bytes() -> None:
    """The content limit counts characters, so multi-byte text at the limit passes."""
    assert parse(message(content="é" * 10), limit=10).content == "é" * 10
    assert parse_error(message(content="😀" * 11), limit=10).code == ErrorCode.TOO_LONG


@pytest.mark.parametrize("frame_id", ["m-1", "", "x" * 128, 0, -5, 2**53, -(2**53)])
def test_valid_id_is_echoed_as_ref(frame_id: str | int) -> None:
    """Any error about a frame with a valid string or integer ``id`` echoes it as ``ref``."""
    for frame in ({"type": "nope", "id": frame_id}, message(content=5, id=frame_id)):
        error = parse_error(frame)
        assert error.ref == frame_id
        assert type(error.ref) is type(frame_id)
        assert error.frame()["ref"] == frame_id


@pytest.mark.parametrize(
    "frame_id", [1.5, 1.0, {"a": 1}, [1], True, None, 2**53 + 1, -(2**53) - 1, "x" * 200, "x" * 129]
)
def test_invalid_id_gives_no_ref(frame_id: Any) -> None:
    """An ``id`` that is no valid string or integer is not echoed."""
    error = parse_error({"type": "nope", "id": frame_id})
    assert error.code == ErrorCode.UNKNOWN_TYPE
    assert error.ref is None
    assert "ref" not in error.frame()


@pytest.mark.parametrize("frame_id", [1.5, {"a": 1}, 2**53 + 1, "x" * 200])
def test_invalid_id_on_a_valid_frame_is_bad_frame(frame_id: Any) -> None:
    """A frame otherwise valid but with an invalid ``id`` is ``bad_frame`` without ``ref``."""
    error = parse_error({"type": "ping", "id": frame_id})
    assert error.code == ErrorCode.BAD_FRAME
    assert error.ref is None


# --- valid frames ------------------------------------------------------------


def test_message_frame_defaults() -> None:
    """A ``message`` frame defaults ``on_busy`` to ``queue`` and ``id`` to ``None``."""
    frame = parse(message())
    assert frame == MessageFrame(type="message", content="hello", client_id="c-1")
    assert frame.on_busy == "queue"
    assert frame.id is None


@pytest.mark.parametrize("on_busy", ["queue", "steer", "interrupt", "reject"])
def test_message_frame_on_busy_values(on_busy: str) -> None:
    """Each documented ``on_busy`` value is accepted as is."""
    frame = parse(message(on_busy=on_busy, id=9))
    assert isinstance(frame, MessageFrame)
    assert frame.on_busy == on_busy
    assert frame.id == 9


def test_message_content_is_kept_verbatim() -> None:
    """Content keeps its surrounding whitespace and non-ASCII characters."""
    assert parse(message(content="  héllo 😀\n")).content == "  héllo 😀\n"


def test_interrupt_frame() -> None:
    """``interrupt`` needs no field."""
    assert parse({"type": "interrupt"}) == InterruptFrame(type="interrupt")


def test_approve_frame() -> None:
    """``approve`` carries its ``approval_id``."""
    frame = parse({"type": "approve", "approval_id": "ap-1", "id": "x"})
    assert frame == ApproveFrame(type="approve", approval_id="ap-1", id="x")


def test_reject_frame_with_and_without_reason() -> None:
    """``reject`` has an optional ``reason`` defaulting to ``None``."""
    assert parse({"type": "reject", "approval_id": "ap-1"}).reason is None
    frame = parse({"type": "reject", "approval_id": "ap-1", "reason": "too risky"})
    assert frame == RejectFrame(type="reject", approval_id="ap-1", reason="too risky")


def test_ping_frame_with_and_without_id() -> None:
    """``ping`` takes an optional ``id``."""
    assert parse({"type": "ping"}) == PingFrame(type="ping")
    assert parse({"type": "ping", "id": 42}) == PingFrame(type="ping", id=42)


def test_parsed_frames_are_frozen() -> None:
    """Parsed frames are immutable values."""
    frame = parse(message())
    with pytest.raises(ValueError):
        frame.content = "changed"


# --- error frames, encoding, close codes ------------------------------------


def test_frame_error_frame_shape() -> None:
    """``FrameError.frame()`` is a connection error: type, code, message, ``ref`` only when set."""
    error = FrameError(ErrorCode.BUSY, "a run is in progress", "m-1")
    assert error.frame() == {
        "type": "error",
        "code": "busy",
        "message": "a run is in progress",
        "ref": "m-1",
    }
    assert FrameError(ErrorCode.BAD_JSON, "bad").frame() == {
        "type": "error",
        "code": "bad_json",
        "message": "bad",
    }
    assert FrameError(ErrorCode.TOO_LONG, "long", 0).frame()["ref"] == 0
    assert str(error) == "a run is in progress"


@pytest.mark.parametrize("code", list(ErrorCode))
def test_frame_error_frames_match_the_schema(code: ErrorCode) -> None:
    """Every connection error frame validates against the published schema, without ``seq``."""
    frame = FrameError(code, "why", "ref-1").frame()
    VALIDATOR.validate(frame)
    assert "seq" not in frame


def test_encode_is_compact_json_text() -> None:
    """``encode`` gives compact JSON text (no spaces), UTF-8 characters unescaped."""
    frame = {"type": "delta", "seq": 3, "text": 'héllo "x"', "list": [1, 2], "none": None}
    text = encode(frame)
    assert isinstance(text, str)
    assert text == '{"type":"delta","seq":3,"text":"héllo \\"x\\"","list":[1,2],"none":null}'
    assert json.loads(text) == frame


def test_close_codes() -> None:
    """Close codes match PROTOCOL.md."""
    assert {c.name: int(c) for c in CloseCode} == {
        "NORMAL": 1000,
        "GOING_AWAY": 1001,
        "POLICY_VIOLATION": 1008,
        "MESSAGE_TOO_BIG": 1009,
        "INTERNAL_ERROR": 1011,
        "SERVICE_RESTART": 1012,
        "TRY_AGAIN_LATER": 1013,
        "SESSION_DELETED": 4404,
    }


# --- the JSON Schema -------------------------------------------------------------

TS = "2026-01-02T03:04:05.123456Z"
CALL: dict[str, Any] = {
    "call_id": "call-1",
    "name": "session_note",
    "input": {"note": "hi", "n": [1, {"a": None}]},
}
USER_MSG = {"id": "msg-1", "role": "user", "content": "hi", "timestamp": TS, "client_id": "c-1"}
ASSISTANT_MSG = {
    "id": "msg-2",
    "role": "assistant",
    "content": "",
    "timestamp": TS,
    "tool_calls": [CALL],
}
TOOL_MSG = {
    "id": "msg-3",
    "role": "tool",
    "content": "noted",
    "timestamp": TS,
    "call_id": "call-1",
    "name": "session_note",
    "is_error": False,
}
PENDING: dict[str, Any] = {"approval_id": "ap-1", "calls": [CALL]}


def event(kind: str, seq: int = 1, **payload: Any) -> dict[str, Any]:
    """A session event with its history fields."""
    return {"type": kind, "session_id": "sess-0123456789abcdef", "seq": seq, "ts": TS, **payload}


SERVER_FRAMES: dict[str, dict[str, Any]] = {
    "hello": {
        "type": "hello",
        "protocol": 1,
        "session_id": "sess-0123456789abcdef",
        "role": "owner",
        "status": "idle",
        "last_seq": 0,
        "resumed": False,
        "viewers": 1,
        "pending_approval": None,
    },
    "hello_viewer_pending": {
        "type": "hello",
        "protocol": 1,
        "session_id": "sess-0123456789abcdef",
        "role": "viewer",
        "status": "waiting_approval",
        "last_seq": 12,
        "resumed": True,
        "viewers": 3,
        "pending_approval": PENDING,
    },
    "snapshot": {
        "type": "snapshot",
        "status": "completed",
        "last_seq": 7,
        "messages": [USER_MSG, ASSISTANT_MSG, TOOL_MSG],
    },
    "snapshot_pending": {
        "type": "snapshot",
        "status": "waiting_approval",
        "last_seq": 3,
        "messages": [],
        "pending_approval": PENDING,
    },
    "presence": {"type": "presence", "viewers": 2},
    "pong": {"type": "pong"},
    "pong_str": {"type": "pong", "id": "p-1"},
    "pong_int": {"type": "pong", "id": 5},
    "connection_error": {"type": "error", "code": "busy", "message": "run in progress"},
    "connection_error_ref": {"type": "error", "code": "bad_frame", "message": "x", "ref": 4},
    "status": event("status", status="planning", previous="idle"),
    "message_user": event("message", message=USER_MSG),
    "message_assistant": event("message", 2, message=ASSISTANT_MSG),
    "message_tool": event("message", 3, message=TOOL_MSG),
    "delta": event("delta", message_id="msg-2", text="Hel"),
    "tool_call": event("tool_call", **CALL),
    "tool_result": event("tool_result", call_id="call-1", output="ok", is_error=False),
    "tool_result_error": event("tool_result", call_id="call-1", output="boom", is_error=True),
    "queued": event("queued", client_id="c-2", position=1),
    "approval_required": event("approval_required", **PENDING),
    "approval_resolved": event("approval_resolved", approval_id="ap-1", approved=True),
    "approval_rejected": event(
        "approval_resolved", approval_id="ap-1", approved=False, reason="no"
    ),
    "session_error": event("error", code="llm_error", message="model unavailable"),
}

CLIENT_FRAMES: dict[str, dict[str, Any]] = {
    "message": message(),
    "message_full": message(on_busy="interrupt", id="m-1"),
    "interrupt": {"type": "interrupt"},
    "approve": {"type": "approve", "approval_id": "ap-1", "id": 3},
    "reject": {"type": "reject", "approval_id": "ap-1", "reason": "no"},
    "ping": {"type": "ping", "id": "p-1"},
}

WRONG_FRAMES: dict[str, dict[str, Any]] = {
    "event_without_seq": {
        k: v for k, v in event("delta", message_id="m", text="x").items() if k != "seq"
    },
    "event_with_seq_0": event("delta", 0, message_id="m", text="x"),
    "session_error_without_seq": {
        k: v for k, v in event("error", code="internal", message="x").items() if k != "seq"
    },
    "connection_error_with_seq": {"type": "error", "code": "busy", "message": "x", "seq": 3},
    "unknown_status": event("status", status="sleeping", previous="idle"),
    "unknown_role": event("message", message={**USER_MSG, "role": "system"}),
    "queued_position_0": event("queued", client_id="c", position=0),
    "hello_without_pending_approval": {
        k: v for k, v in SERVER_FRAMES["hello"].items() if k != "pending_approval"
    },
    "presence_extra_field": {"type": "presence", "viewers": 1, "seq": 2},
    "unknown_type": {"type": "subscribe"},
    "client_message_int_content": message(content=3),
    "client_message_bad_on_busy": message(on_busy="later"),
    "no_type": {"viewers": 1},
}


def test_schema_is_a_valid_2020_12_schema() -> None:
    """``json_schema()`` is itself a valid Draft 2020-12 schema."""
    schema = json_schema()
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


@pytest.mark.parametrize("name", list(SERVER_FRAMES))
def test_schema_accepts_server_frames(name: str) -> None:
    """Every server frame of PROTOCOL.md validates against the schema."""
    VALIDATOR.validate(SERVER_FRAMES[name])


@pytest.mark.parametrize("name", list(CLIENT_FRAMES))
def test_schema_accepts_client_frames(name: str) -> None:
    """Every client frame validates against the schema and parses."""
    VALIDATOR.validate(CLIENT_FRAMES[name])
    parse(CLIENT_FRAMES[name])


@pytest.mark.parametrize("name", list(WRONG_FRAMES))
def test_schema_rejects_wrong_frames(name: str) -> None:
    """Frames that break the contract do not validate."""
    assert not VALIDATOR.is_valid(WRONG_FRAMES[name])


def test_wire_messages_match_the_schema() -> None:
    """``Message.to_wire()`` for each role gives a message object the schema accepts."""
    now = utcnow()
    messages = [
        Message(
            id="msg-1", session_id="s", role="user", content="hi", timestamp=now, client_id="c-1"
        ),
        Message(
            id="msg-2",
            session_id="s",
            role="assistant",
            content="",
            timestamp=now,
            tool_calls=[{"call_id": "c", "name": "current_time", "input": {}}],
        ),
        Message(
            id="msg-3",
            session_id="s",
            role="tool",
            content="12:00",
            timestamp=now,
            call_id="c",
            name="current_time",
            is_error=False,
        ),
    ]
    for seq, msg in enumerate(messages, start=1):
        VALIDATOR.validate(event("message", seq, message=msg.to_wire()))


# --- property: parsing never fails in an undocumented way -------------------

JSON_SCALARS: st.SearchStrategy[Any] = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
JSON_VALUES: st.SearchStrategy[Any] = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=16,
)
FIELD_VALUES: st.SearchStrategy[Any] = JSON_VALUES | st.sampled_from(
    ["", " ", "x", "queue", "steer", "interrupt", "reject", "x" * 129, "y" * 300]
)
FRAME_LIKE: st.SearchStrategy[dict[str, Any]] = st.fixed_dictionaries(
    {"type": st.sampled_from(["message", "interrupt", "approve", "reject", "ping"]) | JSON_VALUES},
    optional={
        "id": FIELD_VALUES | st.integers(min_value=2**53 - 2, max_value=2**53 + 2),
        "content": FIELD_VALUES,
        "client_id": FIELD_VALUES,
        "on_busy": FIELD_VALUES,
        "approval_id": FIELD_VALUES,
        "reason": FIELD_VALUES,
        "extra": JSON_VALUES,
    },
)


def check_parse(text: str, limit: int) -> None:
    """Parsing ``text`` gives a client frame or a documented ``FrameError``, nothing else."""
    try:
        frame = parse_client_frame(text, max_content_chars=limit)
    except FrameError as error:
        assert error.code.value in DOCUMENTED_PARSE_CODES
        assert error.ref is None or type(error.ref) in (str, int)
        VALIDATOR.validate(error.frame())
    else:
        assert isinstance(
            frame, MessageFrame | InterruptFrame | ApproveFrame | RejectFrame | PingFrame
        )
        VALIDATOR.validate(json.loads(frame.model_dump_json(exclude_none=True)))


@settings(max_examples=300, **PROPERTY)
@given(value=JSON_VALUES | FRAME_LIKE, limit=st.integers(min_value=1, max_value=50))
def test_any_json_value_parses_or_fails_with_a_documented_code(value: Any, limit: int) -> None:
    """Any JSON value parses into a frame or raises ``FrameError`` with a documented code."""
    check_parse(json.dumps(value), limit)
    check_parse(json.dumps(value, ensure_ascii=False), limit)


@settings(max_examples=300, **PROPERTY)
@given(text=st.text() | st.text(alphabet='{}[]":,.-0123456789 \\eEtrufalsn'))
def test_any_text_parses_or_fails_with_a_documented_code(text: str) -> None:
    """Any text parses into a frame or raises ``FrameError`` with a documented code."""
    check_parse(text, LIMIT)
