"""The session as the client sees it, built from the frames it receives. No I/O.

:class:`SessionState` is the client's whole protocol logic: it tracks the
highest ``seq`` (to resume with ``after`` and drop replayed duplicates), the
status, the viewer count, the pending approval and the fate of the messages
this client sent, and it turns every frame into :mod:`~.items` to print.
The connection feeds it frames; the front ends ask it for frames to send.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from .items import EndText, Item, Line, Notice, Text

Frame = dict[str, Any]

#: Statuses in which no run is in progress.
TERMINAL = frozenset({"idle", "completed", "completed_with_errors", "error", "interrupted"})
#: Statuses that end a run.
FINAL = TERMINAL - {"idle"}
#: Final statuses of a run that did its job.
SUCCESS = frozenset({"completed", "completed_with_errors"})

#: Longest tool input or output shown on one line, in characters.
DETAIL_LIMIT = 200


@dataclass
class Sent:
    """A message this client sent, and what became of it.

    ``runs_ahead`` counts the runs that start before this message's own run
    (its ``queued`` position minus one); the next run start after that is
    this message's, and the final status after that start is its ``outcome``.
    """

    client_id: str
    content: str
    echoed: bool = False
    runs_ahead: int = 0
    started: bool = False
    outcome: str | None = None
    refused: str | None = None

    @property
    def done(self) -> bool:
        """Whether its run ended or the server refused the message."""
        return self.outcome is not None or self.refused is not None


@dataclass
class Approval:
    """Tool calls waiting for the owner's ``approve`` or ``reject``."""

    approval_id: str
    calls: list[Frame] = field(default_factory=list)


def short(text: str, limit: int = DETAIL_LIMIT) -> str:
    """``text`` on one line (whitespace collapsed), cut to ``limit`` characters with ``…``."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def compact(value: object) -> str:
    """``value`` as compact JSON on one line, cut like :func:`short`."""
    return short(json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str))


def _dim(text: str) -> Line:
    return Line("· " + text, dim=True)


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _calls(calls: object) -> str:
    if not isinstance(calls, list):
        return ""
    return ", ".join(
        f"{c.get('name', '?')} {compact(c.get('input', {}))}" for c in calls if isinstance(c, dict)
    )


class SessionState:
    """Everything the client knows about its session, updated frame by frame.

    Args:
        echo_own: print this client's own user messages when the server echoes
            them (off at an interactive prompt, where the typed line stays on
            screen).
    """

    def __init__(self, *, echo_own: bool = True) -> None:
        self.echo_own = echo_own
        self.session_id: str | None = None
        self.role: str | None = None
        self.status = "idle"
        self.viewers = 0
        #: Highest seq received (or covered by a snapshot): the ``after`` of a reconnect.
        self.last_seq: int | None = None
        self.pending_approval: Approval | None = None
        #: ``hello`` frames received: 0 before the first connection, 2+ after a reconnect.
        self.connections = 0
        self._sent: dict[str, Sent] = {}
        self._streams: dict[str, str] = {}
        self._open_stream: str | None = None
        self._seen: set[str] = set()
        self._tools: dict[str, str] = {}
        self._interrupting = False

    # --- what the front ends ask -----------------------------------------------------

    @property
    def connected(self) -> bool:
        """Whether a ``hello`` arrived (on this or an earlier connection)."""
        return self.connections > 0

    @property
    def running(self) -> bool:
        """Whether a run is in progress."""
        return self.status not in TERMINAL

    @property
    def is_owner(self) -> bool:
        """Whether the token is the owner's (only the owner may send)."""
        return self.role == "owner"

    def sent(self, client_id: str) -> Sent:
        """The message this client sent with ``client_id``."""
        return self._sent[client_id]

    def all_done(self) -> bool:
        """Whether every message this client sent has ended its run (or was refused)."""
        return all(s.done for s in self._sent.values())

    def status_line(self) -> str:
        """The answer to ``/status``."""
        if not self.connected:
            return "status: not connected yet"
        seq = "-" if self.last_seq is None else str(self.last_seq)
        line = (
            f"status: {self.status} · viewers: {self.viewers} · role: {self.role} · last seq: {seq}"
        )
        if self.pending_approval is not None:
            line += f" · approval pending: {self.pending_approval.approval_id}"
        return line

    def on_ctrl_c(self) -> Literal["interrupt", "quit"]:
        """Ctrl-C interrupts the owner's run in progress the first time, else quits."""
        if self.running and self.is_owner and not self._interrupting:
            self._interrupting = True
            return "interrupt"
        return "quit"

    # --- frames to send ---------------------------------------------------------------

    def message_frame(self, content: str, client_id: str) -> Frame:
        """A ``message`` frame, remembered so its echo, run and refusal are tracked.

        The frame's ``id`` is the ``client_id``, so a connection ``error`` about it
        (``ref``) is recognised.
        """
        self._sent[client_id] = Sent(client_id, content)
        return {"type": "message", "content": content, "client_id": client_id, "id": client_id}

    def unanswered(self) -> list[Frame]:
        """Message frames to send again after a reconnect: never echoed nor refused.

        Resending is safe: the server stores and runs a ``client_id`` once.
        """
        return [
            {"type": "message", "content": s.content, "client_id": s.client_id, "id": s.client_id}
            for s in self._sent.values()
            if not s.echoed and s.refused is None
        ]

    @staticmethod
    def interrupt_frame() -> Frame:
        """An ``interrupt`` frame."""
        return {"type": "interrupt"}

    def approval_frame(self, approve: bool, reason: str | None = None) -> Frame | None:
        """``approve``/``reject`` for the pending approval; ``None`` when none is pending."""
        if self.pending_approval is None:
            return None
        frame: Frame = {
            "type": "approve" if approve else "reject",
            "approval_id": self.pending_approval.approval_id,
        }
        if not approve and reason:
            frame["reason"] = reason
        return frame

    # --- frames received --------------------------------------------------------------

    def receive(self, frame: object) -> list[Item] | None:
        """Take one frame from the server; what to print, or ``None`` for a duplicate.

        A duplicate is a session event whose ``seq`` is not above the highest
        seen (a replay overlapping what was already shown): it changes nothing
        and is not shown at all.
        """
        if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
            return [Notice("warning: the server sent a frame without a type")]
        kind: str = frame["type"]
        seq = _int(frame.get("seq"))
        if seq is not None:
            if self.last_seq is not None and seq <= self.last_seq:
                return None
            self.last_seq = seq
            return self._event(kind, frame)
        match kind:
            case "hello":
                return self._hello(frame)
            case "snapshot":
                return self._snapshot(frame)
            case "presence":
                self.viewers = _int(frame.get("viewers")) or 0
                return [_dim(f"{self.viewers} connected")]
            case "error":
                return self._connection_error(frame)
            case _:  # pong, and frames of later protocol versions
                return []

    def _hello(self, frame: Frame) -> list[Item]:
        first = self.connections == 0
        self.connections += 1
        self.session_id = str(frame.get("session_id") or self.session_id)
        self.role = str(frame.get("role") or self.role)
        self.viewers = _int(frame.get("viewers")) or self.viewers
        resumed = bool(frame.get("resumed"))
        if not resumed:
            # The snapshot that follows covers every event up to last_seq.
            self.status = str(frame.get("status") or self.status)
            self.last_seq = _int(frame.get("last_seq"))
            self._set_approval(frame.get("pending_approval"))
        # When resumed, the replay that follows brings status and approval up to date.
        items: list[Item] = []
        if first:
            items.append(
                _dim(
                    f"connected to {self.session_id} as {self.role}: "
                    f"status {self.status}, {self.viewers} connected"
                )
            )
            if not self.is_owner:
                items.append(_dim("read-only: this token can watch but not send"))
        elif resumed:
            items.append(_dim(f"reconnected: resumed after seq {self.last_seq}"))
        else:
            items.append(_dim("reconnected: too much was missed to replay; the transcript follows"))
        if not resumed and self.pending_approval is not None:
            items.append(self._approval_line(self.pending_approval.calls))
        return items

    def _snapshot(self, frame: Frame) -> list[Item]:
        items: list[Item] = []
        if self._open_stream is not None:
            items.append(EndText())
            self._open_stream = None
        self.status = str(frame.get("status") or self.status)
        last = _int(frame.get("last_seq"))
        if last is not None:
            self.last_seq = last
        if "pending_approval" in frame:
            self._set_approval(frame["pending_approval"])
        messages = [m for m in frame.get("messages") or [] if isinstance(m, dict)]
        for message in messages:
            mid = str(message.get("id"))
            if mid not in self._seen:
                self._seen.add(mid)
                items.extend(self._transcript_message(message))
        self._settle_from_snapshot(messages)
        return items

    def _settle_from_snapshot(self, messages: list[Frame]) -> None:
        """After a snapshot replaced lost events, guess (best effort) where own runs stand.

        Ours and something after it (or its run had started), with a final
        status: that status is its outcome. Ours the last user message while a
        run is in progress: that run is ours. Otherwise the next run to start
        is counted as ours.
        """
        user_ids = [m.get("client_id") for m in messages if m.get("role") == "user"]
        for sent in self._sent.values():
            if sent.done or sent.client_id not in user_ids:
                continue
            index = next(i for i, m in enumerate(messages) if m.get("client_id") == sent.client_id)
            sent.echoed = True
            sent.runs_ahead = 0
            if self.status in FINAL and (sent.started or index < len(messages) - 1):
                sent.outcome = self.status
            elif self.running and user_ids[-1] == sent.client_id:
                sent.started = True

    def _connection_error(self, frame: Frame) -> list[Item]:
        code = frame.get("code", "error")
        message = frame.get("message", "")
        ref = frame.get("ref")
        if isinstance(ref, str) and ref in self._sent and not self._sent[ref].echoed:
            self._sent[ref].refused = f"{message} ({code})"
        return [Notice(f"warning: {message} ({code})")]

    def _event(self, kind: str, frame: Frame) -> list[Item]:
        match kind:
            case "message":
                message = frame.get("message")
                return self._live_message(message) if isinstance(message, dict) else []
            case "delta":
                return self._delta(str(frame.get("message_id")), str(frame.get("text", "")))
            case "status":
                return self._status(frame)
            case "tool_call":
                name = str(frame.get("name", "?"))
                self._tools[str(frame.get("call_id"))] = name
                return [_dim(f"tool call: {name} {compact(frame.get('input', {}))}")]
            case "tool_result":
                name = self._tools.get(str(frame.get("call_id")), "tool")
                output = frame.get("output", "")
                text = output if isinstance(output, str) else compact(output)
                label = "tool error" if frame.get("is_error") else "tool result"
                return [_dim(f"{label}: {name}: {short(text)}")]
            case "queued":
                return self._queued(frame)
            case "approval_required":
                calls = frame.get("calls")
                self._set_approval({"approval_id": frame.get("approval_id"), "calls": calls})
                return [self._approval_line(calls)]
            case "approval_resolved":
                if (
                    self.pending_approval is not None
                    and self.pending_approval.approval_id == frame.get("approval_id")
                ):
                    self.pending_approval = None
                if frame.get("approved"):
                    return [_dim("approved")]
                reason = frame.get("reason")
                return [_dim("rejected" + (f": {reason}" if reason else ""))]
            case "error":
                return [Line(f"error ({frame.get('code', '?')}): {frame.get('message', '')}")]
            case _:
                return []

    def _live_message(self, message: Frame) -> list[Item]:
        mid = str(message.get("id"))
        self._seen.add(mid)
        role = message.get("role")
        content = str(message.get("content") or "")
        if role == "user":
            sent = self._sent.get(str(message.get("client_id")))
            if sent is not None:
                sent.echoed = True
                if not self.echo_own:
                    return []
            return [Line("> " + content)]
        if role == "assistant":
            if mid in self._streams:
                # Already shown as it streamed (joined mid-stream: its tail only).
                del self._streams[mid]
                if self._open_stream == mid:
                    self._open_stream = None
                return [EndText()]
            # Not streamed (a message with no deltas); tool calls show as their own events.
            return [Line(content)] if content else []
        return []  # tool messages: their tool_result event showed them

    def _transcript_message(self, message: Frame) -> list[Item]:
        role = message.get("role")
        content = str(message.get("content") or "")
        if role == "user":
            own = str(message.get("client_id")) in self._sent
            return [] if own and not self.echo_own else [Line("> " + content)]
        if role == "assistant":
            items: list[Item] = [Line(content)] if content else []
            for call in message.get("tool_calls") or []:
                if isinstance(call, dict):
                    name = str(call.get("name", "?"))
                    items.append(_dim(f"tool call: {name} {compact(call.get('input', {}))}"))
            return items
        if role == "tool":
            label = "tool error" if message.get("is_error") else "tool result"
            return [_dim(f"{label}: {message.get('name', 'tool')}: {short(content)}")]
        return []

    def _delta(self, message_id: str, text: str) -> list[Item]:
        items: list[Item] = []
        if self._open_stream not in (None, message_id):
            items.append(EndText())
        self._open_stream = message_id
        self._streams[message_id] = self._streams.get(message_id, "") + text
        items.append(Text(text))
        return items

    def _status(self, frame: Frame) -> list[Item]:
        new = str(frame.get("status"))
        previous = str(frame.get("previous") or self.status)
        self.status = new
        items: list[Item] = []
        if previous in TERMINAL and new not in TERMINAL:
            self._run_started()
        if new in FINAL:
            self._run_ended(new)
            if self._open_stream is not None:  # text that never became a message
                items.append(EndText())
                self._streams.pop(self._open_stream, None)
                self._open_stream = None
        items.append(_dim(f"status: {new}"))
        return items

    def _run_started(self) -> None:
        claimed = False
        for sent in self._sent.values():
            if not sent.echoed or sent.started or sent.done:
                continue
            if sent.runs_ahead > 0:
                sent.runs_ahead -= 1
            elif not claimed:
                sent.started = claimed = True

    def _run_ended(self, status: str) -> None:
        self._interrupting = False
        self.pending_approval = None
        for sent in self._sent.values():
            if sent.started and sent.outcome is None:
                sent.outcome = status

    def _queued(self, frame: Frame) -> list[Item]:
        position = _int(frame.get("position")) or 1
        sent = self._sent.get(str(frame.get("client_id")))
        if sent is None:
            return [_dim(f"a message is queued at position {position}")]
        sent.runs_ahead = position - 1
        return [_dim(f"your message is queued at position {position}")]

    def _set_approval(self, value: object) -> None:
        if isinstance(value, dict) and isinstance(value.get("approval_id"), str):
            calls = value.get("calls")
            self.pending_approval = Approval(
                value["approval_id"],
                [c for c in calls if isinstance(c, dict)] if isinstance(calls, list) else [],
            )
        else:
            self.pending_approval = None

    def _approval_line(self, calls: object) -> Line:
        if self.is_owner:
            return Line(f"approval needed for {_calls(calls)}: /approve or /reject [reason]")
        return _dim(f"waiting for the owner's approval of {_calls(calls)}")
