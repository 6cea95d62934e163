"""The domain model: sessions, messages, statuses, autonomy levels.

Plain dataclasses with no I/O. Pydantic stays at the edge (``protocol.py``,
``config.py``); everything inside the server passes these around.
"""

from __future__ import annotations

import enum
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, TypedDict

Role = Literal["user", "assistant", "tool"]


class SessionStatus(enum.StrEnum):
    """The seed's nine session states (PROTOCOL.md, "Status values")."""

    IDLE = "idle"
    PLANNING = "planning"
    EXECUTING = "executing"
    EXECUTING_QUEUED = "executing_queued"
    WAITING_APPROVAL = "waiting_approval"
    COMPLETED = "completed"
    COMPLETED_WITH_ERRORS = "completed_with_errors"
    ERROR = "error"
    INTERRUPTED = "interrupted"

    @property
    def running(self) -> bool:
        """True while a run is in progress (the session is busy)."""
        return self in _RUNNING


_RUNNING = frozenset(
    {
        SessionStatus.PLANNING,
        SessionStatus.EXECUTING,
        SessionStatus.EXECUTING_QUEUED,
        SessionStatus.WAITING_APPROVAL,
    }
)


class AutonomyLevel(enum.IntEnum):
    """How much the agent may change without asking (PROTOCOL.md, "Autonomy levels")."""

    READ_ONLY = 0
    RECOMMENDATIONS = 1
    ASSISTED = 2
    AUTONOMOUS = 3


class ToolCall(TypedDict):
    call_id: str
    name: str
    input: dict[str, Any]


def utcnow() -> datetime:
    return datetime.now(UTC)


def rfc3339(ts: datetime) -> str:
    """Format a UTC time the way the protocol does: ``2026-11-24T11:16:36.123456Z``."""
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def new_session_id() -> str:
    return "sess-" + secrets.token_hex(8)


def new_message_id() -> str:
    return "msg-" + secrets.token_hex(8)


@dataclass(slots=True)
class Session:
    id: str
    character_id: int
    autonomy_level: AutonomyLevel = AutonomyLevel.RECOMMENDATIONS
    status: SessionStatus = SessionStatus.IDLE
    context: dict[str, Any] = field(default_factory=dict)
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)
    #: ``{"approval_id", "calls", "turn_calls"}`` while tool calls wait for the owner.
    pending_approval: dict[str, Any] | None = None
    #: Viewer tokens of an older generation are refused (the owner revoked them).
    viewer_generation: int = 0


@dataclass(slots=True)
class Message:
    """One transcript entry.

    ``turn`` is the run that consumed (user) or produced (assistant, tool) the
    message; ``None`` marks a user message still waiting in the queue. The
    model's conversation is ordered by ``(turn, position)``, the transcript
    clients see by ``position`` (arrival order).
    """

    id: str
    session_id: str
    role: Role
    content: str
    timestamp: datetime = field(default_factory=utcnow)
    client_id: str | None = None
    tool_calls: list[ToolCall] | None = None
    call_id: str | None = None
    name: str | None = None
    is_error: bool | None = None
    turn: int | None = None
    priority: int = 0
    position: int = 0
    steered: bool = False

    def to_wire(self) -> dict[str, Any]:
        """The message object of PROTOCOL.md (only the fields that apply)."""
        out: dict[str, Any] = {
            "id": self.id,
            "role": self.role,
            "content": self.content,
            "timestamp": rfc3339(self.timestamp),
        }
        if self.client_id is not None:
            out["client_id"] = self.client_id
        if self.tool_calls:
            out["tool_calls"] = self.tool_calls
        if self.steered:
            out["steered"] = True
        if self.role == "tool":
            out["call_id"] = self.call_id
            out["name"] = self.name
            out["is_error"] = bool(self.is_error)
        return out
