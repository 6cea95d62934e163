"""REST routes: sessions, the seed's chat call, health, and the published schemas.

Every error answers JSON ``{"error": ...}`` with a 4xx status; bodies are
validated by the pydantic models of ``protocol.py``.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from pathlib import Path
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.schemas import SchemaGenerator

from ..auth import Claims, api_key_matches, bearer
from ..errors import describe
from ..models import AutonomyLevel, Session, rfc3339
from ..protocol import ChatBody, CreateSessionBody, FrameError, PatchSessionBody, json_schema
from .components import Components

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)
schemas = SchemaGenerator({"openapi": "3.0.0", "info": {"title": "realtime-agent", "version": "1"}})


def _components(request: Request) -> Components:
    c: Components = request.state.components
    return c


async def _body(request: Request, model: type[M]) -> M:
    limit = _components(request).settings.max_frame_bytes
    if int(request.headers.get("content-length") or 0) > limit:
        raise HTTPException(413, f"body over {limit} bytes")
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > limit:
            raise HTTPException(413, f"body over {limit} bytes")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise HTTPException(400, "body is not valid JSON") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise HTTPException(422, f"{where}: {first['msg']}") from None


def _may_create(request: Request) -> None:
    key = _components(request).settings.api_key
    if key is not None and not api_key_matches(
        key.get_secret_value(), bearer(request.headers.get("authorization"))
    ):
        raise HTTPException(401, "creating sessions needs the API key (Authorization: Bearer)")


def _authorize(request: Request, session_id: str, *, owner: bool) -> Claims | None:
    """The caller's claims on the session; ``None`` means the API key. Raises 401/403."""
    c = _components(request)
    token = bearer(request.headers.get("authorization"))
    key = c.settings.api_key
    if key is not None and api_key_matches(key.get_secret_value(), token):
        return None
    claims = c.signer.verify(token, session_id)
    if claims is None:
        raise HTTPException(401, "a valid token for this session is required")
    if owner and claims.role != "owner":
        raise HTTPException(403, "only the session's owner may do this")
    return claims


def _tokens(request: Request, session: Session) -> dict[str, Any]:
    c = _components(request)
    scheme = "wss" if request.url.scheme == "https" else "ws"
    return {
        "owner_token": c.signer.issue(session.id, "owner"),
        "viewer_token": c.signer.issue(session.id, "viewer"),
        "ws_url": f"{scheme}://{request.url.netloc}/agent/ws/{session.id}",
    }


async def create_session(request: Request) -> JSONResponse:
    """
    summary: Create a session
    description: Body {"character_id", "autonomy_level"?}. Answers the owner and viewer tokens.
    responses:
      201: {description: "session_id, status, owner_token, viewer_token, ws_url"}
      401: {description: API key required}
      422: {description: invalid body}
    """
    _may_create(request)
    body = await _body(request, CreateSessionBody)
    c = _components(request)
    session = await c.sessions.create(body.character_id, AutonomyLevel(body.autonomy_level))
    out = {"session_id": session.id, "status": session.status.value} | _tokens(request, session)
    return JSONResponse(out, status_code=201)


async def chat(request: Request) -> JSONResponse:
    """
    summary: Send a message (the seed's call)
    description: >
      Body {"message", "session_id" or null, "character_id"}. Creates the session when
      session_id is null, appends the user message and starts the run in the background;
      the run streams to the session's websocket.
    responses:
      200: {description: "session_id, status, the stored message (and tokens when created)"}
      401: {description: token or API key required}
      404: {description: unknown session}
    """
    body = await _body(request, ChatBody)
    c = _components(request)
    if len(body.message) > c.settings.max_content_chars:
        raise HTTPException(413, f"message over {c.settings.max_content_chars} characters")
    out: dict[str, Any] = {}
    if body.session_id is None:
        _may_create(request)
        if body.character_id is None:
            raise HTTPException(422, "character_id: required to create a session")
        session = await c.sessions.create(body.character_id, AutonomyLevel.RECOMMENDATIONS)
        out |= _tokens(request, session)
    else:
        _authorize(request, body.session_id, owner=True)
        found = await c.sessions.get(body.session_id)
        if found is None:
            raise HTTPException(404, "unknown session")
        session = found
    client_id = body.client_id or f"rest-{secrets.token_hex(8)}"
    try:
        stored, _ = await c.sessions.submit(session.id, body.message, client_id)
    except FrameError as exc:  # the queue is full
        raise HTTPException(429, exc.message) from None
    current = await c.sessions.get(session.id)
    status = (current or session).status.value
    # The stored message: its id matches the websocket's echo, its client_id (the
    # one generated when the body had none) makes a retry idempotent; for a
    # repeated client_id it is the message stored the first time.
    answer = {"session_id": session.id, "status": status, "message": stored.to_wire()}
    return JSONResponse(answer | out)


async def get_session(request: Request) -> JSONResponse:
    """
    summary: Read a session and its transcript
    responses:
      200: {description: "id, character_id, autonomy_level, status, timestamps, context, messages"}
      401: {description: token or API key required}
      404: {description: unknown or deleted session}
    """
    session_id = request.path_params["session_id"]
    claims = _authorize(request, session_id, owner=False)
    c = _components(request)
    session = await c.sessions.get(session_id)
    if session is None:
        raise HTTPException(404, "unknown session")
    if claims is not None and claims.role == "viewer":
        if claims.generation != session.viewer_generation:
            raise HTTPException(401, "this viewer token was revoked")
    messages = await c.sessions.transcript(session_id)
    return JSONResponse(
        {
            "id": session.id,
            "character_id": session.character_id,
            "autonomy_level": int(session.autonomy_level),
            "status": session.status.value,
            "created_at": rfc3339(session.created_at),
            "updated_at": rfc3339(session.updated_at),
            "context": session.context,
            "messages": [m.to_wire() for m in messages],
        }
    )


async def patch_session(request: Request) -> JSONResponse:
    """
    summary: Change a session's autonomy level
    description: 'Body {"autonomy_level": 0-3}; announced to every client as an autonomy event.'
    responses:
      200: {description: "id, autonomy_level"}
      401: {description: token or API key required}
      403: {description: not the owner}
      404: {description: unknown or deleted session}
      422: {description: invalid body}
    """
    session_id = request.path_params["session_id"]
    _authorize(request, session_id, owner=True)
    body = await _body(request, PatchSessionBody)
    session = await _components(request).sessions.set_autonomy(
        session_id, AutonomyLevel(body.autonomy_level)
    )
    if session is None:
        raise HTTPException(404, "unknown session")
    return JSONResponse({"id": session.id, "autonomy_level": int(session.autonomy_level)})


async def revoke_viewers(request: Request) -> JSONResponse:
    """
    summary: Revoke every viewer token of a session
    description: Open viewer sockets close with 1008; answers a new viewer token.
    responses:
      200: {description: "session_id, viewer_token"}
      401: {description: token or API key required}
      403: {description: not the owner}
      404: {description: unknown or deleted session}
    """
    session_id = request.path_params["session_id"]
    _authorize(request, session_id, owner=True)
    c = _components(request)
    if await c.sessions.get(session_id) is None:
        raise HTTPException(404, "unknown session")
    generation = await c.sessions.revoke_viewers(session_id)
    token = c.signer.issue(session_id, "viewer", generation)
    return JSONResponse({"session_id": session_id, "viewer_token": token})


async def delete_session(request: Request) -> JSONResponse:
    """
    summary: Delete (archive) a session
    description: Kept for audit, gone from every read path; its sockets close with 4404.
    responses:
      200: {description: "message, session_id"}
      401: {description: token or API key required}
      403: {description: not the owner}
      404: {description: unknown or deleted session}
    """
    session_id = request.path_params["session_id"]
    _authorize(request, session_id, owner=True)
    if not await _components(request).sessions.delete(session_id):
        raise HTTPException(404, "unknown session")
    return JSONResponse({"message": "Session deleted", "session_id": session_id})


async def list_tools(request: Request) -> JSONResponse:
    """
    summary: The tools the agent can call
    responses:
      200: {description: "tools: name, description, source, changes, input_schema"}
    """
    tools = _components(request).tools
    return JSONResponse(
        {
            "tools": [
                {
                    "name": t.name,
                    "description": t.description,
                    "source": t.source,
                    "changes": t.changes,
                    "input_schema": t.input_schema,
                }
                for t in tools
            ]
        }
    )


async def protocol_schema(request: Request) -> JSONResponse:
    """
    summary: JSON Schema of every websocket frame
    responses:
      200: {description: a JSON Schema}
    """
    return JSONResponse(json_schema())


async def openapi(request: Request) -> Response:
    return JSONResponse(schemas.get_schema(routes=request.app.routes))


async def healthz(request: Request) -> JSONResponse:
    """
    summary: Liveness, with the process's open sockets, asyncio tasks, the
      resume history it holds in memory (events, bytes; embedded mode) and its
      full garbage collections (each stops the event loop)
    responses:
      200: {description: the process is alive}
    """
    c = _components(request)
    events, size = c.channels.held()
    return JSONResponse(
        {
            "status": "ok",
            "sockets": c.sockets.open,
            "tasks": len(asyncio.all_tasks()),
            "history": {"events": events, "bytes": size},
            "gc": c.gc.report(),
        }
    )


async def readyz(request: Request) -> JSONResponse:
    """
    summary: Readiness (the store and the channel layer answer)
    responses:
      200: {description: ready}
      503: {description: a dependency is down}
    """
    c = _components(request)
    out: dict[str, Any] = {"status": "ready", "store": "ok", "channels": "ok"}
    try:
        await c.sessions.store.ping()
    except Exception as exc:  # readiness reports any failure of the dependency
        out["store"] = f"unavailable: {describe(exc)}"
        out["status"] = "unavailable"
    if c.sockets.draining:
        out["status"] = "shutting down"
    if c.channels.problem is not None:
        out["channels"] = c.channels.problem
        out["status"] = "unavailable"
    lag = getattr(c.channels, "probe_lag", None)
    if lag is not None:
        out["redis_probe_lag_ms"] = round(lag * 1000, 3)
    return JSONResponse(out, status_code=200 if out["status"] == "ready" else 503)


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.warning("%s %s: %s", request.method, request.url.path, exc)
    return JSONResponse({"error": "temporarily unavailable; try again"}, status_code=503)


async def internal_error(request: Request, exc: Exception) -> JSONResponse:
    """The last resort: a bug answers JSON 500 (it is logged by Starlette's middleware)."""
    return JSONResponse({"error": "internal server error"}, status_code=500)


async def index(request: Request) -> Response:
    """The full-page chat widget."""
    return FileResponse(Path(__file__).parent.parent / "static" / "index.html")
