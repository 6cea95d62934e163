"""The agent loop: model stream -> events -> tools -> model, until it answers.

One turn starts with a user message taken from the queue. The loop talks to
the session only through :class:`TurnIO` (implemented by the session
service), so it holds no socket, store or channel of its own. Timeouts are
applied here, around each model call and each tool call.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import secrets
from dataclasses import dataclass, field
from typing import Any, Protocol

from .approvals import REFUSED, Decision, Plan, declined, plan_calls
from .coalesce import Coalescer
from .conversation import INTERRUPTED_RESULT, bound_text, build_conversation, split_text
from .llm.base import LLM, LLMError, TextDelta, ToolUse
from .models import AutonomyLevel, Message, SessionStatus, ToolCall, new_message_id
from .protocol import RunErrorCode
from .tools.registry import ToolContext, ToolRegistry

log = logging.getLogger(__name__)


class TurnIO(Protocol):
    """What a turn may do to its session (the session service implements it)."""

    session_id: str
    turn: int

    async def set_status(self, status: SessionStatus) -> None:
        """Persist the new status and emit its ``status`` event."""

    def start_status(self, status: SessionStatus) -> None:
        """Start what :meth:`set_status` does and return at once; every later write
        or event of the turn waits for it (and raises its failure)."""

    async def emit(self, frame: dict[str, Any]) -> None:
        """Emit an event that changes no durable state (``delta``, ``tool_call``)."""

    async def add_message(self, message: Message, *, result: bool = False) -> None:
        """Persist ``message``, then emit its events (``tool_result`` first if ``result``)."""

    async def fail(self, code: RunErrorCode, text: str) -> None:
        """Emit a session ``error`` event."""

    async def conversation(self) -> list[Message]:
        """The messages the model has seen, in turn order, this turn's included."""

    async def context(self) -> dict[str, Any]:
        """The session's context."""

    async def save_context(self, context: dict[str, Any]) -> None:
        """Persist a changed session context."""

    async def autonomy(self) -> AutonomyLevel:
        """The session's autonomy level now (the owner may change it mid-run)."""

    async def ask_approval(self, approval: dict[str, Any], *, announce: bool) -> Decision:
        """Wait for the owner's answer to ``approval``, then resolve it.

        With ``announce``, first store it as pending and emit ``approval_required``
        and ``status: waiting_approval``. Either way, once answered, the pending
        approval is cleared and ``approval_resolved`` emitted.
        """

    async def resolve_approval(self, approval_id: str, decision: Decision) -> None:
        """Clear the pending approval and emit ``approval_resolved``."""


@dataclass(slots=True)
class TurnState:
    """What a turn has streamed but not yet stored: kept when it is interrupted."""

    message_id: str = field(default_factory=new_message_id)
    text: list[str] = field(default_factory=list)
    unanswered: list[ToolCall] = field(default_factory=list)
    tool_failed: bool = False
    approval_id: str | None = None  # tool calls wait for the owner's answer to this

    def take_text(self) -> str:
        text = "".join(self.text)
        self.text.clear()
        return text


@dataclass(frozen=True, slots=True)
class AgentConfig:
    system: str
    max_iterations: int
    llm_timeout: float
    tool_timeout: float
    max_event_bytes: int
    coalesce_seconds: float = 0.005
    coalesce_max_seconds: float = 0.02


class Agent:
    """Runs turns with one model and one tool registry."""

    def __init__(self, llm: LLM, tools: ToolRegistry, config: AgentConfig) -> None:
        self.llm = llm
        self.tools = tools
        self.config = config

    async def run_turn(self, io: TurnIO, state: TurnState, *, queued: bool) -> None:
        """Run one turn to its end status.

        Cancellation (an interrupt) propagates; the caller then stores what
        ``state`` holds with :func:`finish_interrupted`.
        """
        # The status is written while the model is asked: its reply waits for it.
        io.start_status(SessionStatus.EXECUTING_QUEUED if queued else SessionStatus.PLANNING)
        await self._loop(io, state, first=1, replan=queued)

    async def resume_turn(self, io: TurnIO, state: TurnState, approval: dict[str, Any]) -> None:
        """Go on with a turn whose tool calls were waiting for the owner (after a restart)."""
        calls: list[ToolCall] = approval["turn_calls"]
        state.unanswered = list(calls)
        state.approval_id = approval["approval_id"]
        decision = await io.ask_approval(approval, announce=False)
        await self._run_calls(io, state, calls, Plan(waiting=approval["calls"]), decision)
        await self._loop(io, state, first=2, replan=True)

    async def _loop(self, io: TurnIO, state: TurnState, *, first: int, replan: bool) -> None:
        cfg = self.config
        for iteration in range(first, cfg.max_iterations + 1):
            if replan or iteration > first:
                io.start_status(SessionStatus.PLANNING)
            try:
                calls = await self._call_model(io, state)
            except (LLMError, TimeoutError) as exc:
                reason = str(exc) if isinstance(exc, LLMError) else "no answer in time"
                await self._store_partial(io, state)
                await io.fail(RunErrorCode.LLM_ERROR, f"The model call failed: {reason}")
                await io.set_status(SessionStatus.ERROR)
                return
            if not calls:
                done = SessionStatus.COMPLETED
                await io.set_status(
                    SessionStatus.COMPLETED_WITH_ERRORS if state.tool_failed else done
                )
                return
            if iteration == cfg.max_iterations:
                break
            plan = plan_calls(await io.autonomy(), calls, self._changes)
            decision = None
            if plan.waiting:
                approval: dict[str, Any] = {
                    "approval_id": new_approval_id(),
                    "calls": plan.waiting,
                    "turn_calls": calls,
                }
                state.approval_id = approval["approval_id"]
                decision = await io.ask_approval(approval, announce=True)
            await self._run_calls(io, state, calls, plan, decision)
        limit = f"the run reached its limit of {cfg.max_iterations} model calls"
        await answer_unanswered(io, state, f"not run: {limit}")
        text = (
            f"I stopped before finishing: this run reached its limit of {cfg.max_iterations} "
            "model calls. Send another message to let me continue."
        )
        await io.add_message(_assistant(io, new_message_id(), text, None))
        await io.fail(RunErrorCode.MAX_ITERATIONS, limit)
        await io.set_status(SessionStatus.ERROR)

    def _changes(self, name: str) -> bool:
        tool = self.tools.get(name)
        return tool is not None and tool.changes

    async def _run_calls(
        self,
        io: TurnIO,
        state: TurnState,
        calls: list[ToolCall],
        plan: Plan,
        decision: Decision | None,
    ) -> None:
        """Run the calls the autonomy level (and the owner) allow; answer the others."""
        refused = {c["call_id"]: REFUSED for c in plan.refused}
        if decision is not None and not decision.approved:
            refused |= {c["call_id"]: declined(decision.reason) for c in plan.waiting}
        await io.set_status(SessionStatus.EXECUTING)
        for call in calls:
            await self._run_tool(io, state, call, refused.get(call["call_id"]))

    async def _call_model(self, io: TurnIO, state: TurnState) -> list[ToolCall]:
        """Stream one model call; store its assistant message; return its tool calls."""
        state.message_id = new_message_id()
        calls: list[ToolCall] = []
        messages = build_conversation(await io.conversation())

        async def send(text: str) -> None:
            state.text.append(text)  # said once sent: an interrupt keeps exactly this
            for piece in split_text(text, self.config.max_event_bytes - 512):
                await io.emit({"type": "delta", "message_id": state.message_id, "text": piece})

        async with (
            asyncio.timeout(self.config.llm_timeout),
            Coalescer(
                send, self.config.coalesce_seconds, self.config.coalesce_max_seconds
            ) as deltas,
            self.llm.stream(
                system=self.config.system, messages=messages, tools=self.tools.specs()
            ) as events,
        ):
            async for event in events:
                if isinstance(event, TextDelta) and event.text:
                    await deltas.add(event.text)
                elif isinstance(event, ToolUse):
                    calls.append({"call_id": event.id, "name": event.name, "input": event.input})
        text = state.take_text()
        if text or calls:
            state.unanswered = list(calls)
            await io.add_message(_assistant(io, state.message_id, text, calls or None))
        return calls

    async def _run_tool(
        self, io: TurnIO, state: TurnState, call: ToolCall, refused: str | None
    ) -> None:
        await io.emit({"type": "tool_call", **call})
        output, is_error = (refused, True) if refused else await self._execute(io, call)
        state.tool_failed |= is_error and refused is None  # a refusal is not a failure
        state.unanswered.remove(call)  # before the write: add_message completes even if cancelled
        await io.add_message(_tool_message(io, call, output, is_error), result=True)

    async def _execute(self, io: TurnIO, call: ToolCall) -> tuple[str, bool]:
        tool = self.tools.get(call["name"])
        if tool is None:
            return f"unknown tool {call['name']!r}", True
        context = await io.context()
        ctx = ToolContext(session_id=io.session_id, context=copy.deepcopy(context))
        try:
            async with asyncio.timeout(self.config.tool_timeout):
                output = await tool.call(call["input"], ctx)
        except TimeoutError:
            return f"the tool timed out after {self.config.tool_timeout:g} s", True
        except Exception as exc:  # a tool's failure is a result for the model, not a crash
            log.info("tool %s failed in %s", call["name"], io.session_id, exc_info=True)
            return bound_text(
                f"{type(exc).__name__}: {exc}", self.config.max_event_bytes - 1024
            ), True
        if ctx.context != context:
            await io.save_context(ctx.context)
        return bound_text(output, self.config.max_event_bytes - 1024), False

    async def _store_partial(self, io: TurnIO, state: TurnState) -> None:
        text = state.take_text()
        if text:
            await io.add_message(_assistant(io, state.message_id, text, None))


async def answer_unanswered(io: TurnIO, state: TurnState, reason: str) -> None:
    """Store an error result for every tool call that never ran, so the conversation stays valid."""
    while state.unanswered:
        call = state.unanswered.pop(0)
        await io.add_message(_tool_message(io, call, reason, True), result=True)


async def finish_interrupted(io: TurnIO, state: TurnState) -> None:
    """Keep what an interrupted turn had: its partial text, answered tool calls, the status."""
    if state.approval_id is not None:
        await io.resolve_approval(state.approval_id, Decision(False, "interrupted"))
    text = state.take_text()
    if text:
        await io.add_message(_assistant(io, state.message_id, text, None))
    await answer_unanswered(io, state, INTERRUPTED_RESULT)
    await io.set_status(SessionStatus.INTERRUPTED)


def new_approval_id() -> str:
    return "appr-" + secrets.token_hex(8)


def _assistant(io: TurnIO, message_id: str, text: str, calls: list[ToolCall] | None) -> Message:
    return Message(
        id=message_id,
        session_id=io.session_id,
        role="assistant",
        content=text,
        tool_calls=calls,
        turn=io.turn,
    )


def _tool_message(io: TurnIO, call: ToolCall, output: str, is_error: bool) -> Message:
    return Message(
        id=new_message_id(),
        session_id=io.session_id,
        role="tool",
        content=output,
        call_id=call["call_id"],
        name=call["name"],
        is_error=is_error,
        turn=io.turn,
    )
