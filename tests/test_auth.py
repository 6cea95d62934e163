"""Session tokens, the bearer header, the API key and the websocket origin check."""

from __future__ import annotations

import re
import time
from urllib.parse import quote

import pytest

from realtime_agent.auth import (
    Claims,
    TokenRole,
    TokenSigner,
    api_key_matches,
    bearer,
    origin_allowed,
)

SECRET = b"test-secret-0123456789abcdef"
TTL = 3600
SESSION = "sess-0123456789abcdef"
OTHER_SESSION = "sess-fedcba9876543210"
URL_SAFE = re.compile(r"[A-Za-z0-9._~-]+")


@pytest.fixture
def signer() -> TokenSigner:
    """A signer with a one-hour ttl."""
    return TokenSigner(SECRET, TTL)


@pytest.mark.parametrize("role", ["owner", "viewer"])
def test_issue_verify_round_trip(signer: TokenSigner, role: TokenRole) -> None:
    """A fresh token verifies for its session and carries its role, generation and expiry."""
    before = int(time.time())
    token = signer.issue(SESSION, role)
    after = int(time.time())
    claims = signer.verify(token, SESSION)
    assert claims is not None
    assert claims.session_id == SESSION
    assert claims.role == role
    assert claims.generation == 0
    assert before + TTL <= claims.expires <= after + TTL


def test_generation_is_carried(signer: TokenSigner) -> None:
    """The generation given at issue comes back in the claims."""
    claims = signer.verify(signer.issue(SESSION, "owner", generation=7), SESSION)
    assert claims is not None
    assert claims.generation == 7


def test_owner_and_viewer_tokens_differ(signer: TokenSigner) -> None:
    """The owner's and the viewer's tokens of one session are different strings."""
    assert signer.issue(SESSION, "owner") != signer.issue(SESSION, "viewer")


def test_token_for_another_session_is_refused(signer: TokenSigner) -> None:
    """A token for session A does not open session B."""
    token = signer.issue(SESSION, "owner")
    assert signer.verify(token, OTHER_SESSION) is None
    assert signer.verify(token, SESSION + "x") is None
    assert signer.verify(token, "sess-0123") is None


def test_tampered_role_is_refused(signer: TokenSigner) -> None:
    """Turning a viewer token into an owner token breaks the signature."""
    token = signer.issue(SESSION, "viewer")
    sid, role, generation, expires, signature = token.split(".")
    assert role == "v"
    forged = ".".join([sid, "o", generation, expires, signature])
    assert signer.verify(forged, SESSION) is None


def test_tampered_expiry_is_refused(signer: TokenSigner) -> None:
    """Extending a token's expiry breaks the signature."""
    sid, role, generation, expires, signature = signer.issue(SESSION, "owner").split(".")
    forged = ".".join([sid, role, generation, str(int(expires) + 10**6), signature])
    assert signer.verify(forged, SESSION) is None


def test_tampered_session_is_refused(signer: TokenSigner) -> None:
    """Rewriting the session id in a token breaks the signature."""
    token = signer.issue(SESSION, "owner")
    forged = token.replace(SESSION, OTHER_SESSION, 1)
    assert signer.verify(forged, OTHER_SESSION) is None


def test_tampered_signature_is_refused(signer: TokenSigner) -> None:
    """Changing, cutting or dropping the signature is refused."""
    token = signer.issue(SESSION, "owner")
    payload, _, signature = token.rpartition(".")
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    for forged in (f"{payload}.{flipped}", f"{payload}.{signature[:-2]}", f"{payload}.", payload):
        assert signer.verify(forged, SESSION) is None


def test_expired_token_is_refused() -> None:
    """A token whose expiry is in the past is refused, even with a good signature."""
    expired = TokenSigner(SECRET, ttl_seconds=-60)
    token = expired.issue(SESSION, "owner")
    assert expired.verify(token, SESSION) is None
    assert TokenSigner(SECRET, TTL).verify(token, SESSION) is None


def test_tokens_use_only_url_safe_characters() -> None:
    """Tokens use only ``A-Z a-z 0-9 . _ ~ -`` and survive URL quoting unchanged."""
    for n in range(200):
        signer = TokenSigner(SECRET + bytes([n]), TTL)
        for role in ("owner", "viewer"):
            token = signer.issue(f"sess-{n:016x}", role, generation=n)
            assert URL_SAFE.fullmatch(token), token
            assert quote(token, safe="") == token


@pytest.mark.parametrize(
    "token",
    [None, "", ".", "....", "nodots", "a.b.c.d.e", "x" * 10_000, " ", "\x00", "é.é.é.é.é"],
)
def test_garbage_is_refused(signer: TokenSigner, token: str | None) -> None:
    """Empty, missing, huge or malformed tokens are refused without raising."""
    assert signer.verify(token, SESSION) is None


def test_valid_token_with_junk_around_is_refused(signer: TokenSigner) -> None:
    """A genuine token with anything added before or after it is refused."""
    token = signer.issue(SESSION, "owner")
    for forged in (token + "x", "x" + token, token + ".", " " + token, token + "=" * 2):
        assert signer.verify(forged, SESSION) is None


def test_oversized_token_is_refused_even_when_signed() -> None:
    """A token longer than 512 characters is refused before any other check."""
    signer = TokenSigner(SECRET, TTL)
    session = "sess-" + "a" * 600
    assert signer.verify(signer.issue(session, "owner"), session) is None


def test_different_secret_is_refused(signer: TokenSigner) -> None:
    """A token signed with another secret is refused."""
    token = TokenSigner(b"another-secret-0123456789", TTL).issue(SESSION, "owner")
    assert signer.verify(token, SESSION) is None


@pytest.mark.parametrize("secret", [b"", b"short", b"x" * 15])
def test_short_secret_raises(secret: bytes) -> None:
    """A secret shorter than 16 bytes is a configuration error."""
    with pytest.raises(ValueError):
        TokenSigner(secret, TTL)


def test_sixteen_byte_secret_is_enough() -> None:
    """A 16-byte secret is accepted."""
    signer = TokenSigner(b"x" * 16, TTL)
    claims = signer.verify(signer.issue(SESSION, "viewer"), SESSION)
    assert claims is not None
    assert claims == Claims(SESSION, "viewer", 0, claims.expires)


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc.def", "abc.def"),
        ("bearer abc", "abc"),
        ("BEARER abc", "abc"),
        ("Bearer   abc  ", "abc"),
        ("Bearer", None),
        ("Bearer ", None),
        ("Bearer    ", None),
        ("Basic dXNlcjpwYXNz", None),
        ("Token abc", None),
        ("Bearerabc", None),
        ("", None),
        (None, None),
    ],
)
def test_bearer(header: str | None, token: str | None) -> None:
    """``bearer()`` takes the token of a ``Bearer`` authorization header, else ``None``."""
    assert bearer(header) == token


@pytest.mark.parametrize(
    ("expected", "given", "matches"),
    [
        ("k-123", "k-123", True),
        ("k-123", "k-124", False),
        ("k-123", "K-123", False),
        ("k-123", "k-12", False),
        ("k-123", "", False),
        ("k-123", None, False),
        (None, "k-123", False),
        (None, None, False),
        ("clé-ünïcode", "clé-ünïcode", True),
    ],
)
def test_api_key_matches(expected: str | None, given: str | None, matches: bool) -> None:
    """The API key matches only when configured and equal."""
    assert api_key_matches(expected, given) is matches


@pytest.mark.parametrize(
    ("origin", "host", "allowed", "ok"),
    [
        (None, "example.com", [], True),
        (None, None, ["https://app.example"], True),
        ("https://example.com", "example.com", [], True),
        ("http://localhost:8000", "localhost:8000", [], True),
        ("https://Example.COM", "example.com", [], True),
        ("https://example.com/", "example.com", [], True),
        ("https://evil.com", "example.com", [], False),
        ("https://example.com.evil.com", "example.com", [], False),
        ("http://localhost:9000", "localhost:8000", [], False),
        ("null", "example.com", [], False),
        ("https://example.com", None, [], False),
        ("https://app.example", "api.example", ["https://app.example"], True),
        ("https://app.example/", "api.example", ["https://app.example"], True),
        ("https://evil.example", "api.example", ["https://app.example"], False),
        ("https://api.example", "api.example", ["https://app.example"], False),
        ("https://anything.example", "api.example", ["*"], True),
        ("null", "api.example", ["*"], True),
    ],
)
def test_origin_allowed(origin: str | None, host: str | None, allowed: list[str], ok: bool) -> None:
    """No origin passes; otherwise the allow-list decides, or without one, the server's host."""
    assert origin_allowed(origin, host, allowed) is ok
