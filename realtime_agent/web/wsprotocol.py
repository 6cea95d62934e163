"""uvicorn's websockets-sansio protocol with a direct frame path for the session socket.

uvicorn's ASGI ``send`` frames every message with the websockets state
machine, in Python, per socket. A session event is the same bytes for every
socket (:attr:`~realtime_agent.channels.base.Event.frame`), so this protocol
offers itself to the app as a :class:`~realtime_agent.web.sender.FrameSink`
(scope extension :data:`DIRECT_SINK`) that writes such bytes straight to the
transport: no task, queue, await or framing per socket and event. The
handshake, reading, keep-alive pings and closing stay uvicorn's.

The fast path is offered only without permessage-deflate (frames would have to
be compressed per socket); with it, the app falls back to the ASGI ``send``.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import State

from ..wsframe import text_frame

#: The scope extension under which the protocol offers itself as a frame sink.
DIRECT_SINK = "realtime_agent.direct_sink"


class DirectWebSocketProtocol(WebSocketsSansIOProtocol):
    """The session socket's transport, usable as a frame sink.

    While the transport is paused for writing (its buffer above the high-water
    mark, the peer not reading), frames wait here instead, and go out as it
    drains: uvicorn's keep-alive pings and pongs, written to the transport
    directly, never queue behind more than that mark.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._waiting: deque[bytes] = deque()
        self._waiting_size = 0

    async def run_asgi(self) -> None:
        if not self.conn.extensions:  # no permessage-deflate: frames are the same for all
            extensions: dict[str, object] = self.scope["extensions"]  # type: ignore[assignment]
            extensions[DIRECT_SINK] = self
        await super().run_asgi()

    async def send(self, message: Any) -> None:
        await super().send(message)
        if self.handshake_complete and self.request is not None:
            # uvicorn keeps the handshake's request and response (their headers: about
            # 30 objects the garbage collector walks) for the socket's whole life and
            # never reads them again once the response is sent.
            self.request = self.response = None  # type: ignore[assignment]

    def write(self, text: str, frame: bytes | None) -> None:
        # Not after a close frame, ours or the peer's (uvicorn answers a peer's close
        # and a shutdown's 1012 without setting close_sent).
        if self.close_sent or self.disconnected or self.conn.state is not State.OPEN:
            return
        data = frame if frame is not None else text_frame(text)
        if self._waiting or not self.writable.is_set():
            self._waiting.append(data)
            self._waiting_size += len(data)
        else:
            self.transport.write(data)

    def buffered(self) -> int:
        return self.transport.get_write_buffer_size() + self._waiting_size

    def resume_writing(self) -> None:
        super().resume_writing()
        waiting = self._waiting
        while waiting and self.writable.is_set():  # a write may pause it again at once
            data = waiting.popleft()
            self._waiting_size -= len(data)
            self.transport.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._waiting.clear()
        self._waiting_size = 0
        super().connection_lost(exc)

    def close(self, code: int, reason: str, flush: bool) -> None:
        """uvicorn's ``websocket.close``, without waiting for the buffer to drain.

        The close frame goes after what is buffered (a slow reader reads it last);
        if the peer has not answered within uvicorn's close timeout, the
        connection is aborted, dropping what is still buffered, so a reader that
        stopped reading holds no memory past it. The reader gets its disconnect
        at once. Frames still waiting to be written go first with ``flush``, and
        are dropped without it (a client that fell behind resumes anyway).
        """
        if self.close_sent or self.disconnected or self.transport.is_closing():
            return
        if flush and self._waiting:
            self.transport.write(b"".join(self._waiting))
        self._waiting.clear()
        self._waiting_size = 0
        self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
        self.conn.send_close(code, reason)
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()
        self.close_timer = self.loop.call_later(self.close_timeout, self.transport.abort)
