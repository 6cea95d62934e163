"""Errors the client reports to the user: a message on stderr and exit code 2."""

from __future__ import annotations

import errno
import socket

#: The exit code of every error the client reports (bad input, unreachable server, refusal).
ERROR_EXIT = 2


class ClientError(Exception):
    """Something the user must fix or know about; ``str(error)`` is the whole message."""

    exit_code = ERROR_EXIT


def network_reason(exc: BaseException) -> str:
    """A short human reason for a failed connection attempt (``connection refused``, ...).

    Walks the exception's causes, since HTTP and websocket libraries wrap the
    ``OSError`` that says what happened.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionRefusedError):
            return "connection refused"
        if isinstance(current, socket.gaierror):
            return "unknown host"
        if isinstance(current, TimeoutError):
            return "timed out"
        if isinstance(current, OSError) and current.errno == errno.ECONNREFUSED:
            return "connection refused"
        current = current.__cause__ or current.__context__
    text = str(exc)
    # Several addresses tried (localhost: ::1 and 127.0.0.1) give one OSError without errno.
    if "refused" in text.lower() or "connect call failed" in text.lower():
        return "connection refused"
    if "timed out" in text.lower() or "timeout" in type(exc).__name__.lower():
        return "timed out"
    return text or type(exc).__name__
