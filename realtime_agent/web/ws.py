"""The websocket endpoint ``/agent/ws/{session_id}``: handshake, reader, writer.

Each connection is its reader (this coroutine); what it sends goes through
its :class:`SocketSender`, straight to the transport on our uvicorn protocol
(no task per socket), else through a writer task in the connection's task
group. Bad frames get a connection ``error`` and change nothing; an
unexpected exception is caught here, once, logged, and the socket closed
with 1011.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from starlette.responses import JSONResponse
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from ..approvals import Decision
from ..auth import Claims, origin_allowed
from ..errors import Unavailable
from ..limits import TokenBucket
from ..models import Session
from ..protocol import (
    OWNER_ONLY,
    PROTOCOL_VERSION,
    SHUTDOWN_REASON,
    SUBPROTOCOL,
    ApproveFrame,
    ClientFrame,
    CloseCode,
    ErrorCode,
    FrameError,
    InterruptFrame,
    MessageFrame,
    PingFrame,
    RejectFrame,
    encode,
    parse_client_frame,
)
from ..sessions import Welcome
from .components import Components
from .sender import FrameSink, QueuedSink, SocketClosed, SocketSender
from .wsprotocol import DIRECT_SINK

log = logging.getLogger(__name__)


def _wire_approval(session: Session) -> dict[str, Any] | None:
    """The pending approval as the protocol shows it (without our bookkeeping)."""
    pending = session.pending_approval
    if pending is None:
        return None
    return {"approval_id": pending["approval_id"], "calls": pending["calls"]}


def _deny(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"error": detail}, status_code=status)


def _token(ws: WebSocket) -> tuple[str | None, str | None]:
    """The token (query ``token`` or subprotocol ``bearer.<token>``) and the subprotocol to echo."""
    offered: list[str] = ws.scope.get("subprotocols") or []
    chosen = SUBPROTOCOL if SUBPROTOCOL in offered else None
    token = ws.query_params.get("token")
    for proto in offered:
        if proto.startswith("bearer."):
            token = token or proto.removeprefix("bearer.")
    return token, chosen


def _after(ws: WebSocket) -> int | None:
    raw = ws.query_params.get("after")
    if raw is None or raw == "":
        return None
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise ValueError("after must be a non-negative integer")
    return int(raw)


class SessionSocket:
    """The ASGI app of the session websocket (an app, not a function endpoint,
    so the writer sends on the raw ASGI ``send`` without Starlette's per-frame checks)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _session_socket(scope, receive, send)


async def _session_socket(scope: Scope, receive: Receive, send: Send) -> None:
    ws = WebSocket(scope, receive, send)
    c: Components = ws.state.components
    session_id: str = ws.path_params["session_id"]
    token, subprotocol = _token(ws)
    claims = c.signer.verify(token, session_id)
    if claims is None:
        return await ws.send_denial_response(_deny(403, "bad or missing token"))
    if not origin_allowed(
        ws.headers.get("origin"), ws.headers.get("host"), c.settings.allowed_origins
    ):
        return await ws.send_denial_response(_deny(403, "origin not allowed"))
    try:
        after = _after(ws)
    except ValueError as exc:
        return await ws.send_denial_response(_deny(400, str(exc)))
    if denial := await _session_refusal(c, session_id, claims):
        return await ws.send_denial_response(denial)
    address = ws.client.host if ws.client else "unknown"
    if refused := c.sockets.admit(session_id, address):
        return await ws.send_denial_response(_deny(429, refused))
    try:
        await ws.accept(subprotocol=subprotocol)
        direct: FrameSink | None = (scope.get("extensions") or {}).get(DIRECT_SINK)
        await Connection(c, ws, direct or QueuedSink(send), claims).serve(after)
    finally:
        c.sockets.release(session_id, address)


async def _session_refusal(c: Components, session_id: str, claims: Claims) -> JSONResponse | None:
    """Why the session cannot be joined with these claims now, or ``None``. (Its own
    function so that the session read here is not held for the socket's lifetime.)"""
    try:
        session = await c.sessions.get(session_id)
    except Unavailable:
        return _deny(503, "temporarily unavailable")
    if session is None:
        return _deny(404, "unknown session")
    if claims.role == "viewer" and claims.generation != session.viewer_generation:
        return _deny(403, "this viewer token was revoked")
    return None


class Connection:
    """One accepted socket of a session."""

    def __init__(self, c: Components, ws: WebSocket, sink: FrameSink, claims: Claims) -> None:
        self.c = c
        self.ws = ws
        self.claims = claims
        self.session_id = claims.session_id
        self.sink = sink
        self.sender = SocketSender(sink, c.settings.send_queue_bytes)
        self.bucket = TokenBucket(c.settings.rate_limit_per_second, c.settings.rate_limit_burst)
        self.strikes = 0  # frames refused in a row by the rate limit

    async def serve(self, after: int | None) -> None:
        sender = self.sender
        try:
            async with asyncio.TaskGroup() as tg:
                sink = self.sink
                writer = tg.create_task(sink.run()) if isinstance(sink, QueuedSink) else None
                if not await self._join(after):
                    sender.close(CloseCode.SESSION_DELETED, "session deleted")
                elif self.c.sockets.closing.is_set():  # the shutdown closed the others meanwhile
                    sender.close(CloseCode.GOING_AWAY, SHUTDOWN_REASON)
                else:
                    async with self.c.channels.watch(self.session_id, self._on_signal):
                        await self._read()
                    if sender.close_code is None and writer is not None:  # the client left
                        writer.cancel()
                    # else: we are closing: a writer sends the close frame, then ends
        except* SocketClosed:
            pass
        except* Unavailable as group:  # Redis or the store is briefly gone: come back later
            log.warning("websocket %s: %s", self.session_id, group.exceptions[0])
            await self._close_quietly(CloseCode.TRY_AGAIN_LATER, "temporarily unavailable")
        except* Exception as group:  # the one broad catch of a connection: log and close 1011
            log.error("websocket %s failed", self.session_id, exc_info=group.exceptions[0])
            await self._close_quietly(CloseCode.INTERNAL_ERROR, "internal error")
        finally:
            try:
                await asyncio.shield(self.c.sessions.leave(self.session_id, sender))
            except Unavailable as exc:
                log.warning("websocket %s left without presence update: %s", self.session_id, exc)

    async def _close_quietly(self, code: int, reason: str) -> None:
        if not isinstance(self.sink, QueuedSink):  # closes without waiting on the peer
            self.sender.close(code, reason, flush=True)
            return
        try:
            await self.ws.close(code, reason)
        except Exception:  # the socket may be gone already; nothing more to tell it
            pass

    async def _join(self, after: int | None) -> bool:
        """Join the session and greet the client; ``False`` when the session is gone.

        Nothing of the greeting outlives this call: a snapshot holds the whole
        transcript, which a socket would otherwise keep for as long as it is open.
        """
        welcome = await self.c.sessions.join(self.session_id, self.sender, after)
        if welcome is None:
            return False
        self._greet(welcome, after)
        return True

    def _greet(self, welcome: Welcome, after: int | None) -> None:
        session, joined = welcome.session, welcome.joined
        resumed = welcome.snapshot is None
        self.sender.send(
            encode(
                {
                    "type": "hello",
                    "protocol": PROTOCOL_VERSION,
                    "session_id": self.session_id,
                    "role": self.claims.role,
                    "status": session.status.value,
                    "last_seq": joined.last_seq,
                    "resumed": resumed and after is not None,
                    "viewers": joined.viewers,
                    "pending_approval": _wire_approval(session),
                }
            )
        )
        if welcome.snapshot is not None:
            self.sender.send(
                encode(
                    {
                        "type": "snapshot",
                        "status": session.status.value,
                        "last_seq": joined.last_seq,
                        "messages": [m.to_wire() for m in welcome.snapshot],
                        "pending_approval": _wire_approval(session),
                    }
                )
            )
        for event in joined.replay or ():  # frames kept in history are not built again
            self.sender.send(event.text, event.frame)
        self.sender.go_live(joined.last_seq)

    def _on_signal(self, signal: str) -> None:
        kind, _, arg = signal.partition("|")
        if kind == "revoke-viewers" and self.claims.role == "viewer":
            if self.claims.generation < int(arg):
                self.sender.close(CloseCode.POLICY_VIOLATION, "viewer access was revoked")

    async def _read(self) -> None:
        """Handle the client's frames until it leaves or we close. Each is handled in a
        call of its own, so none stays referenced while the socket waits for the next
        (an idle socket would otherwise keep its last frame, up to 1 MiB)."""
        while await self._on_frame(await self.ws.receive()):
            pass

    async def _on_frame(self, message: Message) -> bool:
        """Handle one ASGI message from the client; whether to read on."""
        if message["type"] == "websocket.disconnect" or self.sender.close_code is not None:
            return False  # the client left, or we are closing: what it sent is not acted on
        if not self.bucket.take(asyncio.get_running_loop().time()):
            self.strikes += 1
            if self.strikes > self.bucket.burst:  # sustained abuse, not a burst
                self.sender.close(CloseCode.POLICY_VIOLATION, "too many frames", flush=True)
                return False
            self.sender.send(
                encode(
                    {
                        "type": "error",
                        "code": "rate_limited",
                        "message": "too many frames; slow down",
                    }
                )
            )
            return True
        self.strikes = 0
        text = message.get("text")
        try:
            if text is None:
                raise FrameError(ErrorCode.BAD_FRAME, "binary frames are not accepted")
            await self._handle(
                parse_client_frame(text, max_content_chars=self.c.settings.max_content_chars)
            )
        except FrameError as exc:
            self.sender.send(encode(exc.frame()))
        return True

    async def _handle(self, frame: ClientFrame) -> None:
        if frame.type in OWNER_ONLY and self.claims.role != "owner":
            raise FrameError(ErrorCode.FORBIDDEN, f"a viewer cannot send {frame.type!r}", frame.id)
        match frame:
            case PingFrame():
                pong: dict[str, Any] = {"type": "pong"}
                if frame.id is not None:
                    pong["id"] = frame.id
                self.sender.send(encode(pong))
            case MessageFrame():
                try:
                    await self.c.sessions.submit(
                        self.session_id, frame.content, frame.client_id, frame.on_busy
                    )
                except FrameError as exc:
                    exc.ref = frame.id
                    raise
                except Unavailable as exc:
                    log.warning("message refused: %s", exc)
                    raise FrameError(
                        ErrorCode.UNAVAILABLE,
                        "the server cannot store messages right now; nothing was stored, "
                        "send it again later",
                        frame.id,
                    ) from None
            case InterruptFrame():
                await self.c.sessions.interrupt(self.session_id)
            case ApproveFrame() | RejectFrame():
                approved = isinstance(frame, ApproveFrame)
                reason = None if isinstance(frame, ApproveFrame) else frame.reason
                try:
                    await self.c.sessions.answer_approval(
                        self.session_id, frame.approval_id, Decision(approved, reason)
                    )
                except FrameError as exc:
                    exc.ref = frame.id
                    raise
