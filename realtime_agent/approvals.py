"""Which tool calls may run, wait for the owner, or are refused (PROTOCOL.md, "Autonomy levels").

Pure: values in, values out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .models import AutonomyLevel, ToolCall

#: At level 2 a plan of this many calls (or more) waits for the owner.
ASSISTED_PLAN_SIZE = 3
REFUSED = (
    "refused: this session's autonomy level is read_only, so tools that change "
    "something may not run"
)


@dataclass(frozen=True, slots=True)
class Plan:
    """The calls of one model answer, sorted by what the autonomy level allows."""

    refused: list[ToolCall] = field(default_factory=list)
    waiting: list[ToolCall] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Decision:
    approved: bool
    reason: str | None = None


def plan_calls(
    level: AutonomyLevel, calls: Sequence[ToolCall], changes: Callable[[str], bool]
) -> Plan:
    """Only calls that change something ever wait or are refused; reads always run."""
    changing = [c for c in calls if changes(c["name"])]
    if not changing or level == AutonomyLevel.AUTONOMOUS:
        return Plan()
    if level == AutonomyLevel.READ_ONLY:
        return Plan(refused=changing)
    if level == AutonomyLevel.RECOMMENDATIONS or len(calls) >= ASSISTED_PLAN_SIZE:
        return Plan(waiting=changing)
    return Plan()


def declined(reason: str | None) -> str:
    """The tool result the model gets for a call the owner rejected."""
    return "declined: the user did not allow this call" + (f" ({reason})" if reason else "")
