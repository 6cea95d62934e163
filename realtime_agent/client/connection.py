"""The session's websocket: read every frame into the state, reconnect with ``after``.

:class:`SessionClient` owns the socket. It feeds each frame to the
:class:`~.state.SessionState` and prints what comes out through a sink; when
the connection drops it reconnects with backoff and ``after=<last seq>``, and
sends again the messages whose echo never came (the server runs a
``client_id`` once). Front ends wait on the state with :meth:`wait_for`.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import Callable

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from .errors import ClientError, network_reason
from .items import Notice
from .sinks import Sink
from .state import Frame, SessionState
from .urls import socket_url

#: Seconds to wait for a websocket handshake.
OPEN_TIMEOUT = 10.0
#: Seconds without a connection after which the client gives up reconnecting.
RECONNECT_LIMIT = 300.0
#: Close codes after which reconnecting cannot help, and what they mean.
FATAL_CLOSES = {
    4404: "the session was deleted",
    1008: "the server revoked this connection's access",
    1009: "the server refused a frame as too big",
}


def backoff(attempt: int) -> float:
    """Seconds before reconnect attempt ``attempt`` (0-based): 0.25 s doubling to 10 s."""
    return float(min(10.0, 0.25 * 2 ** min(attempt, 8)))


def handshake_refusal(status: int, base: str, session_id: str) -> ClientError:
    """The error for a refused websocket handshake, by HTTP status."""
    if status in (401, 403):
        return ClientError(f"the token was refused (HTTP {status}) for session {session_id}")
    if status == 404:
        return ClientError(f"no such session: {session_id} (HTTP 404 from {base})")
    return ClientError(f"{base} refused the websocket with HTTP {status}")


class SessionClient:
    """One session's live channel, as the owner or a viewer.

    Args:
        base: the server's HTTP base URL (named in error messages).
        session_id: the session to open.
        token: its owner or viewer token.
        state: the protocol logic every frame goes through.
        sink: where frames and what to show for them go.
        reconnect_limit: seconds of failed reconnects before giving up.
    """

    def __init__(
        self,
        base: str,
        session_id: str,
        token: str,
        state: SessionState,
        sink: Sink,
        *,
        reconnect_limit: float = RECONNECT_LIMIT,
    ) -> None:
        self.base = base
        self.session_id = session_id
        self.token = token
        self.state = state
        self.sink = sink
        self.reconnect_limit = reconnect_limit
        self._ws: ClientConnection | None = None
        self._changed = asyncio.Event()
        self._failure: BaseException | None = None
        self._finished = False
        self._stopping = False

    # --- for the front ends ----------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Whether a socket is open now."""
        return self._ws is not None

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` holds; it is checked after every frame.

        Raises the connection's :class:`ClientError` if it fails first.
        """
        while not predicate():
            if self._failure is not None:
                raise self._failure
            if self._finished:
                raise ClientError("the connection was closed")
            await self._changed.wait()

    async def send(self, frame: Frame) -> bool:
        """Send ``frame`` now; ``False`` when not connected (nothing is sent)."""
        ws = self._ws
        if ws is None:
            return False
        try:
            await ws.send(json.dumps(frame, ensure_ascii=False, separators=(",", ":")))
        except ConnectionClosed:
            return False
        return True

    async def send_message(self, content: str) -> str:
        """Send a user message; its ``client_id``. Sent on reconnect when offline now."""
        client_id = uuid.uuid4().hex
        await self.send(self.state.message_frame(content, client_id))
        return client_id

    async def close(self) -> None:
        """Stop: close the socket (normal closure) and do not reconnect."""
        self._stopping = True
        ws = self._ws
        if ws is not None:
            await ws.close()

    # --- the reader ------------------------------------------------------------------

    async def run(self) -> None:
        """Read the session until :meth:`close`; raises :class:`ClientError` when it must stop."""
        try:
            await self._connect_loop()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self._failure = exc
            raise
        finally:
            self._finished = True
            self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _connect_loop(self) -> None:
        loop = asyncio.get_running_loop()
        failing_since: float | None = None
        attempt = 0
        while not self._stopping:
            after = self.state.last_seq if self.state.connected else None
            url = socket_url(self.base, self.session_id, self.token, after)
            reason: str
            try:
                ws = await connect(url, open_timeout=OPEN_TIMEOUT, max_size=None)
            except InvalidStatus as exc:
                status = exc.response.status_code
                if not self.state.connected or status in (400, 401, 403, 404):
                    raise handshake_refusal(status, self.base, self.session_id) from None
                reason = f"HTTP {status}"
            except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
                if not self.state.connected:
                    raise ClientError(f"cannot reach {self.base}: {network_reason(exc)}") from None
                reason = network_reason(exc)
            else:
                greeted = await self._read(ws)
                if self._stopping:
                    return
                code = ws.close_code or 1006
                if code in FATAL_CLOSES:
                    said = f" ({ws.close_reason})" if ws.close_reason else ""
                    raise ClientError(f"{FATAL_CLOSES[code]}{said}")
                if greeted:
                    failing_since, attempt = None, 0
                    self.sink.show([Notice(f"connection lost (close code {code}); reconnecting")])
                    continue
                reason = f"closed with code {code} before hello"
            now = loop.time()
            failing_since = now if failing_since is None else failing_since
            if now - failing_since > self.reconnect_limit:
                raise ClientError(
                    f"lost the connection to {self.base} and could not reconnect for "
                    f"{self.reconnect_limit:.0f} s ({reason})"
                )
            delay = backoff(attempt) * random.uniform(0.8, 1.2)
            attempt += 1
            self.sink.show(
                [Notice(f"cannot reach {self.base} ({reason}); retrying in {delay:.1f} s")]
            )
            await asyncio.sleep(delay)  # backoff: a deliberate pause between attempts

    async def _read(self, ws: ClientConnection) -> bool:
        """Read frames until the socket closes; whether a ``hello`` came on it."""
        self._ws = ws
        greeted = False
        try:
            async for raw in ws:
                text = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
                try:
                    frame: object = json.loads(text)
                except ValueError:
                    self.sink.show([Notice("warning: the server sent a frame that is not JSON")])
                    continue
                items = self.state.receive(frame)
                if items is None:  # a replayed event already shown
                    continue
                self.sink.frame(frame)
                self.sink.show(items)
                if isinstance(frame, dict) and frame.get("type") == "hello":
                    greeted = True
                    for resend in self.state.unanswered():
                        await ws.send(json.dumps(resend, ensure_ascii=False))
                self._notify()
        except ConnectionClosed:
            pass
        finally:
            self._ws = None
            self._notify()
        return greeted
