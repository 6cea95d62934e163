"""The one REST call the client makes: ``POST /agent/sessions``."""

from __future__ import annotations

from dataclasses import dataclass

import httpx2

from .errors import ClientError, network_reason

#: Seconds to wait for the server to answer a REST call.
HTTP_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class CreatedSession:
    """A new session and its two tokens."""

    session_id: str
    owner_token: str
    viewer_token: str


def _error_text(response: httpx2.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:200]
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return str(body["error"])
    return response.text.strip()[:200]


async def create_session(base: str, character_id: int, api_key: str | None) -> CreatedSession:
    """Create a session on the server at ``base``; raises :class:`ClientError` on failure."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        async with httpx2.AsyncClient(timeout=HTTP_TIMEOUT) as http:
            response = await http.post(
                f"{base}/agent/sessions", json={"character_id": character_id}, headers=headers
            )
    except httpx2.HTTPError as exc:
        raise ClientError(f"cannot reach {base}: {network_reason(exc)}") from None
    if response.status_code == 401:
        if api_key:
            raise ClientError("the API key was refused (HTTP 401)")
        raise ClientError(
            "the server needs an API key to create sessions: pass --api-key or set RA_API_KEY"
        )
    if response.status_code != 201:
        raise ClientError(
            f"could not create a session: HTTP {response.status_code}: {_error_text(response)}"
        )
    try:
        body = response.json()
        return CreatedSession(
            str(body["session_id"]), str(body["owner_token"]), str(body["viewer_token"])
        )
    except (ValueError, KeyError, TypeError):
        raise ClientError(
            f"{base} answered POST /agent/sessions with something other than a session"
        ) from None
