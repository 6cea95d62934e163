"""Session tokens, the API key and the websocket origin check.

A token is ``<session_id>.<role>.<generation>.<expiry>.<signature>``: the
signature is HMAC-SHA256 over the rest with ``RA_SECRET``, in URL-safe base64,
so tokens use only the characters PROTOCOL.md allows and travel in a query
string. A token is bound to one session and one role; comparisons are
constant-time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

TokenRole = Literal["owner", "viewer"]
_ROLE_CODE: dict[TokenRole, str] = {"owner": "o", "viewer": "v"}
_CODE_ROLE: dict[str, TokenRole] = {"o": "owner", "v": "viewer"}


@dataclass(frozen=True, slots=True)
class Claims:
    session_id: str
    role: TokenRole
    generation: int
    expires: int


#: The shortest signing key accepted (``RA_SECRET``), in bytes.
MIN_SECRET_BYTES = 16


class TokenSigner:
    """Issues and checks session tokens."""

    def __init__(self, secret: bytes, ttl_seconds: int) -> None:
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"the token secret must be at least {MIN_SECRET_BYTES} bytes")
        self._secret = secret
        self._ttl = ttl_seconds

    def _sign(self, payload: str) -> str:
        digest = hmac.new(self._secret, payload.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def issue(self, session_id: str, role: TokenRole, generation: int = 0) -> str:
        payload = f"{session_id}.{_ROLE_CODE[role]}.{generation}.{int(time.time()) + self._ttl}"
        return f"{payload}.{self._sign(payload)}"

    def verify(self, token: str | None, session_id: str) -> Claims | None:
        """The token's claims if it is genuine, unexpired and for ``session_id``."""
        if not token or len(token) > 512:
            return None
        payload, _, signature = token.rpartition(".")
        if not hmac.compare_digest(self._sign(payload).encode(), signature.encode()):
            return None
        parts = payload.split(".")
        if len(parts) != 4 or parts[1] not in _CODE_ROLE:
            return None
        sid, role, generation, expires = parts
        if not hmac.compare_digest(sid.encode(), session_id.encode()):
            return None
        if not (generation.isdigit() and expires.isdigit()) or int(expires) < time.time():
            return None
        return Claims(sid, _CODE_ROLE[role], int(generation), int(expires))


def bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header."""
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def api_key_matches(expected: str | None, given: str | None) -> bool:
    """Constant-time check of the API key; ``False`` when none is configured."""
    if expected is None or given is None:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


def origin_allowed(origin: str | None, host: str | None, allowed: list[str]) -> bool:
    """The cross-site websocket hijacking check.

    No ``Origin`` header: not a browser, allowed (tokens still apply). With an
    allow-list, the origin must be in it (``*`` allows any). Without one, only
    the server's own host may open a socket from a browser.
    """
    if origin is None:
        return True
    origin = origin.rstrip("/")
    if allowed:
        return "*" in allowed or origin in allowed
    return host is not None and urlsplit(origin).netloc.lower() == host.lower()
