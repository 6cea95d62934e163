"""The wire contract (docs/protocol.md) as code.

Client frames are pydantic models, parsed once at the edge into values the
rest of the server trusts. Server frames are plain dicts encoded once per
event with orjson; their pydantic models here exist to publish a JSON Schema
(``GET /agent/protocol.schema.json``) and to check captured frames in tests.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

PROTOCOL_VERSION = 1
SUBPROTOCOL = "realtime-agent.v1"


class CloseCode(enum.IntEnum):
    """Websocket close codes the server uses (PROTOCOL.md, "Close codes")."""

    NORMAL = 1000
    GOING_AWAY = 1001
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    SESSION_DELETED = 4404


#: The reason of the 1001 close a graceful shutdown sends every socket.
SHUTDOWN_REASON = "server shutting down; resume with after"


class ErrorCode(enum.StrEnum):
    """Codes of connection ``error`` frames: answers about the client's own frame."""

    BAD_JSON = "bad_json"
    BAD_FRAME = "bad_frame"
    UNKNOWN_TYPE = "unknown_type"
    FORBIDDEN = "forbidden"
    RATE_LIMITED = "rate_limited"
    TOO_LONG = "too_long"
    BUSY = "busy"
    UNKNOWN_APPROVAL = "unknown_approval"
    UNAVAILABLE = "unavailable"


class RunErrorCode(enum.StrEnum):
    """Codes of session ``error`` events: why a run failed."""

    LLM_ERROR = "llm_error"
    MAX_ITERATIONS = "max_iterations"
    RUN_LOST = "run_lost"
    INTERNAL = "internal"


# --- client frames ---------------------------------------------------------

FrameId = Annotated[str, Field(max_length=128)] | Annotated[int, Field(ge=-(2**53), le=2**53)]
OnBusy = Literal["queue", "steer", "interrupt", "reject"]


class _ClientFrame(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)
    id: FrameId | None = None


class MessageFrame(_ClientFrame):
    type: Literal["message"]
    content: Annotated[str, Field(min_length=1)]
    client_id: Annotated[str, Field(min_length=1, max_length=128)]
    on_busy: OnBusy = "queue"


class InterruptFrame(_ClientFrame):
    type: Literal["interrupt"]


class ApproveFrame(_ClientFrame):
    type: Literal["approve"]
    approval_id: Annotated[str, Field(min_length=1, max_length=128)]


class RejectFrame(_ClientFrame):
    type: Literal["reject"]
    approval_id: Annotated[str, Field(min_length=1, max_length=128)]
    reason: Annotated[str, Field(max_length=10_000)] | None = None


class PingFrame(_ClientFrame):
    type: Literal["ping"]


ClientFrame = MessageFrame | InterruptFrame | ApproveFrame | RejectFrame | PingFrame
_CLIENT_FRAMES: dict[str, type[_ClientFrame]] = {
    "message": MessageFrame,
    "interrupt": InterruptFrame,
    "approve": ApproveFrame,
    "reject": RejectFrame,
    "ping": PingFrame,
}
OWNER_ONLY = frozenset({"message", "interrupt", "approve", "reject"})
_ID_ADAPTER: TypeAdapter[Any] = TypeAdapter(FrameId)


class FrameError(Exception):
    """A client frame that the server answers with a connection ``error``."""

    def __init__(self, code: ErrorCode, message: str, ref: str | int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.ref = ref

    def frame(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "error", "code": self.code.value, "message": self.message}
        if self.ref is not None:
            out["ref"] = self.ref
        return out


def _ref_of(data: dict[str, Any]) -> str | int | None:
    try:
        ref: str | int | None = _ID_ADAPTER.validate_python(data.get("id"), strict=True)
    except ValidationError:
        return None
    return ref


def parse_client_frame(text: str, *, max_content_chars: int) -> ClientFrame:
    """Parse one text frame into a client frame, or raise :class:`FrameError`."""
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise FrameError(ErrorCode.BAD_JSON, "frame is not valid JSON") from None
    if not isinstance(data, dict):
        raise FrameError(ErrorCode.BAD_FRAME, "frame must be a JSON object")
    ref = _ref_of(data)
    kind = data.get("type")
    if not isinstance(kind, str):
        raise FrameError(ErrorCode.BAD_FRAME, "frame needs a string 'type'", ref)
    model = _CLIENT_FRAMES.get(kind)
    if model is None:
        raise FrameError(ErrorCode.UNKNOWN_TYPE, f"unknown frame type {kind[:64]!r}", ref)
    try:
        frame = model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or kind
        raise FrameError(ErrorCode.BAD_FRAME, f"{where}: {first['msg']}", ref) from None
    if isinstance(frame, MessageFrame):
        if len(frame.content) > max_content_chars:
            raise FrameError(
                ErrorCode.TOO_LONG,
                f"content is {len(frame.content)} characters; the limit is {max_content_chars}",
                ref,
            )
        if not frame.content.strip():
            raise FrameError(ErrorCode.BAD_FRAME, "content: must not be blank", ref)
    return frame  # type: ignore[return-value]


def encode(frame: dict[str, Any]) -> str:
    """Encode a server frame once; every socket sends the same string."""
    return orjson.dumps(frame).decode()


# --- server frames (for the published JSON Schema and tests) ----------------


class _ServerFrame(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WireToolCall(_ServerFrame):
    call_id: str
    name: str
    input: dict[str, Any]


class WireMessage(_ServerFrame):
    id: str
    role: Literal["user", "assistant", "tool"]
    content: str
    timestamp: str
    client_id: str | None = None
    tool_calls: list[WireToolCall] | None = None
    call_id: str | None = None
    name: str | None = None
    is_error: bool | None = None
    steered: bool | None = None


class PendingApproval(_ServerFrame):
    approval_id: str
    calls: list[WireToolCall]


Status = Literal[
    "idle",
    "planning",
    "executing",
    "executing_queued",
    "waiting_approval",
    "completed",
    "completed_with_errors",
    "error",
    "interrupted",
]


class Hello(_ServerFrame):
    type: Literal["hello"]
    protocol: Literal[1]
    session_id: str
    role: Literal["owner", "viewer"]
    status: Status
    last_seq: int
    resumed: bool
    viewers: int
    pending_approval: PendingApproval | None


class Snapshot(_ServerFrame):
    type: Literal["snapshot"]
    status: Status
    last_seq: int
    messages: list[WireMessage]
    pending_approval: PendingApproval | None = None


class Presence(_ServerFrame):
    type: Literal["presence"]
    viewers: int


class Pong(_ServerFrame):
    type: Literal["pong"]
    id: str | int | None = None


class ConnectionError_(_ServerFrame):
    type: Literal["error"]
    code: Literal[
        "bad_json",
        "bad_frame",
        "unknown_type",
        "forbidden",
        "rate_limited",
        "too_long",
        "busy",
        "unknown_approval",
        "unavailable",
    ]
    message: str
    ref: str | int | None = None


class _Event(_ServerFrame):
    session_id: str
    seq: int = Field(ge=1)
    ts: str


class StatusEvent(_Event):
    type: Literal["status"]
    status: Status
    previous: Status


class MessageEvent(_Event):
    type: Literal["message"]
    message: WireMessage


class DeltaEvent(_Event):
    type: Literal["delta"]
    message_id: str
    text: str


class ToolCallEvent(_Event):
    type: Literal["tool_call"]
    call_id: str
    name: str
    input: dict[str, Any]


class ToolResultEvent(_Event):
    type: Literal["tool_result"]
    call_id: str
    output: str
    is_error: bool


class QueuedEvent(_Event):
    type: Literal["queued"]
    client_id: str
    position: int = Field(ge=1)


class ApprovalRequiredEvent(_Event):
    type: Literal["approval_required"]
    approval_id: str
    calls: list[WireToolCall]


class ApprovalResolvedEvent(_Event):
    type: Literal["approval_resolved"]
    approval_id: str
    approved: bool
    reason: str | None = None


class AutonomyEvent(_Event):
    type: Literal["autonomy"]
    autonomy_level: int = Field(ge=0, le=3)
    previous: int = Field(ge=0, le=3)


class RunErrorEvent(_Event):
    type: Literal["error"]
    code: Literal["llm_error", "max_iterations", "run_lost", "internal"]
    message: str


ServerFrame = Annotated[
    Hello
    | Snapshot
    | Presence
    | Pong
    | StatusEvent
    | MessageEvent
    | DeltaEvent
    | ToolCallEvent
    | ToolResultEvent
    | QueuedEvent
    | ApprovalRequiredEvent
    | ApprovalResolvedEvent
    | AutonomyEvent
    | RunErrorEvent
    | ConnectionError_,
    Field(union_mode="left_to_right"),
]
SERVER_FRAME: TypeAdapter[Any] = TypeAdapter(ServerFrame)
ANY_FRAME: TypeAdapter[Any] = TypeAdapter(
    Annotated[ClientFrame, Field(discriminator="type")] | ServerFrame
)


def json_schema() -> dict[str, Any]:
    """A JSON Schema (2020-12) matching every frame of the protocol, both directions."""
    schema: dict[str, Any] = ANY_FRAME.json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = f"realtime-agent wire protocol v{PROTOCOL_VERSION}"
    return schema


# --- REST bodies ---------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class CreateSessionBody(_Body):
    character_id: Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]
    autonomy_level: Annotated[int, Field(ge=0, le=3)] = 1


class PatchSessionBody(_Body):
    autonomy_level: Annotated[int, Field(ge=0, le=3)]


class ChatBody(_Body):
    message: Annotated[str, Field(min_length=1, pattern=r"\S")]
    session_id: Annotated[str, Field(max_length=64)] | None = None
    character_id: Annotated[int, Field(ge=-(2**63), le=2**63 - 1)] | None = None
    client_id: Annotated[str, Field(min_length=1, max_length=128)] | None = None
