"""A handshake timeout: the request head (HTTP or websocket upgrade) must arrive in time.

uvicorn starts its keep-alive timer only after a response, so a client that
opens a connection and sends its request head byte by byte (slowloris) would
hold a connection forever. This protocol closes a connection whose first
request head is not complete within ``RA_HANDSHAKE_TIMEOUT_SECONDS``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class _TimedHttpProtocol(HttpToolsProtocol):
    handshake_timeout = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer: asyncio.TimerHandle | None = self.loop.call_later(
            self.handshake_timeout, self._too_slow
        )

    def on_headers_complete(self) -> None:
        self._stop_timer()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        super().connection_lost(exc)

    def _stop_timer(self) -> None:
        timer = getattr(self, "_head_timer", None)
        if timer is not None:
            timer.cancel()
            self._head_timer = None

    def _too_slow(self) -> None:
        self._head_timer = None
        self.transport.close()


def timed_http_protocol(timeout: float) -> type[Any]:
    """uvicorn's httptools protocol with a deadline for the first request head."""
    return type("TimedHttpProtocol", (_TimedHttpProtocol,), {"handshake_timeout": timeout})
