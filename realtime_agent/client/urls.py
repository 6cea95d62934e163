"""The server's addresses as the client needs them: the HTTP base and the session socket."""

from __future__ import annotations

from urllib.parse import quote, urlencode, urlsplit, urlunsplit

from .errors import ClientError

DEFAULT_URL = "http://127.0.0.1:8000"

_HTTP_SCHEMES = {"http": "http", "https": "https", "ws": "http", "wss": "https"}


def http_base(url: str) -> str:
    """Normalise a server URL to ``http(s)://host[:port][/prefix]`` without a trailing slash.

    ``ws://``/``wss://`` are accepted for ``http://``/``https://``, and a bare
    ``host:port`` means ``http://host:port``. Raises :class:`ClientError` for
    anything else.
    """
    text = url.strip()
    if "://" not in text:
        text = "http://" + text
    parts = urlsplit(text)
    scheme = _HTTP_SCHEMES.get(parts.scheme.lower())
    if scheme is None or not parts.hostname:
        raise ClientError(f"not a server URL: {url!r} (expected http://host:port)")
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def socket_url(base: str, session_id: str, token: str, after: int | None = None) -> str:
    """The session's websocket URL with its ``token`` (and ``after`` to resume)."""
    parts = urlsplit(base)
    scheme = "wss" if parts.scheme == "https" else "ws"
    path = f"{parts.path}/agent/ws/{quote(session_id, safe='')}"
    query: dict[str, str | int] = {"token": token}
    if after is not None:
        query["after"] = after
    return urlunsplit((scheme, parts.netloc, path, urlencode(query), ""))


def watch_command(base: str, session_id: str, token: str) -> str:
    """The command line that follows the session read-only (what a user shares)."""
    return f"realtime-agent watch {base} --session {session_id} --token {token}"


def join_command(base: str, session_id: str, token: str) -> str:
    """The command line that rejoins the session as its owner."""
    return f"realtime-agent chat {base} --session {session_id} --token {token}"
