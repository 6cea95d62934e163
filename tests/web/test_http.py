"""The REST API end to end: a real server on a real socket, a real HTTP client."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from tests.helpers import Api, Frame, RunningServer, settings_for

API_KEY = "k-test-0123456789abcdef"
FINAL = {"completed", "completed_with_errors", "error", "interrupted"}
SESSION_KEYS = {
    "id",
    "character_id",
    "autonomy_level",
    "status",
    "created_at",
    "updated_at",
    "context",
    "messages",
}
UNKNOWN_SESSION = "sess-0123456789abcdef"
URL_SAFE = re.compile(r"[A-Za-z0-9._~-]+")


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_json_error(response: httpx.Response, status: int) -> None:
    """The response is ``status`` with a JSON ``{"error": str}`` body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.text
    body = response.json()
    assert isinstance(body, dict) and isinstance(body.get("error"), str), body


async def read(api: Api, session_id: str, token: str) -> dict[str, Any]:
    response = await api.http.get(f"/agent/session/{session_id}", headers=auth(token))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def chat(api: Api, token: str | None, **body: Any) -> httpx.Response:
    headers = auth(token) if token is not None else {}
    return await api.http.post("/agent/chat", json=body, headers=headers)


def assistant_messages(events: list[Frame]) -> list[dict[str, Any]]:
    return [
        e["message"]
        for e in events
        if e["type"] == "message" and e["message"]["role"] == "assistant"
    ]


@pytest.fixture
async def keyed(tmp_path: Path) -> AsyncIterator[Api]:
    """A server that needs the API key to create sessions."""
    settings = settings_for(tmp_path, api_key=API_KEY)
    async with RunningServer(settings) as running, Api(running.base_url) as client:
        yield client


# --- POST /agent/sessions ------------------------------------------------------


async def test_create_answers_id_tokens_and_ws_url(server: RunningServer, api: Api) -> None:
    """Creating a session answers 201 with its id, idle status, both tokens and the ws URL."""
    response = await api.http.post("/agent/sessions", json={"character_id": 7})
    assert response.status_code == 201, response.text
    created = response.json()
    assert set(created) == {"session_id", "status", "owner_token", "viewer_token", "ws_url"}
    assert re.fullmatch(r"sess-[0-9a-f]{12,}", created["session_id"])
    assert created["status"] == "idle"
    assert created["owner_token"] != created["viewer_token"]
    for token in (created["owner_token"], created["viewer_token"]):
        assert isinstance(token, str) and URL_SAFE.fullmatch(token), token
    assert created["ws_url"] == f"ws://127.0.0.1:{server.port}/agent/ws/{created['session_id']}"


async def test_each_created_session_is_new(api: Api) -> None:
    """Two creations give two distinct sessions."""
    first, second = await api.create(), await api.create()
    assert first["session_id"] != second["session_id"]


@pytest.mark.parametrize(
    ("extra", "level"),
    [({}, 1), ({"autonomy_level": 0}, 0), ({"autonomy_level": 2}, 2), ({"autonomy_level": 3}, 3)],
)
async def test_autonomy_level_defaults_to_1_and_is_honoured(
    api: Api, extra: dict[str, int], level: int
) -> None:
    """The autonomy level given at creation (1 when omitted) is the session's level."""
    created = await api.create(character_id=42, **extra)
    session = await read(api, created["session_id"], created["owner_token"])
    assert session["autonomy_level"] == level
    assert session["character_id"] == 42


@pytest.mark.parametrize(
    ("body", "status"),
    [
        pytest.param(b'{"character_id": 7', 400, id="malformed-json"),
        pytest.param(b"", 400, id="empty-body"),
        pytest.param(b"\xff\xfe", 400, id="not-utf8"),
        pytest.param(b'{"character_id": "7"}', 422, id="string-character-id"),
        pytest.param(b'{"character_id": 7.5}', 422, id="float-character-id"),
        pytest.param(b'{"character_id": true}', 422, id="bool-character-id"),
        pytest.param(b'{"character_id": 7, "autonomy_level": 9}', 422, id="level-too-high"),
        pytest.param(b'{"character_id": 7, "autonomy_level": -1}', 422, id="level-negative"),
        pytest.param(b'{"character_id": 7, "colour": "red"}', 422, id="extra-field"),
        pytest.param(b"{}", 422, id="missing-character-id"),
        pytest.param(b"[]", 422, id="array"),
        pytest.param(b"null", 422, id="null"),
    ],
)
async def test_bad_create_bodies_get_a_json_4xx(api: Api, body: bytes, status: int) -> None:
    """A malformed or invalid creation body answers a JSON error with a 4xx status."""
    response = await api.http.post(
        "/agent/sessions", content=body, headers={"content-type": "application/json"}
    )
    assert_json_error(response, status)


async def test_body_over_the_limit_is_413(api: Api) -> None:
    """A body over 1 MiB (declared in Content-Length) answers 413."""
    body = b'{"character_id": 7, "pad": "' + b"x" * (1 << 20) + b'"}'
    response = await api.http.post(
        "/agent/sessions", content=body, headers={"content-type": "application/json"}
    )
    assert_json_error(response, 413)


async def test_streamed_body_over_the_limit_is_413(api: Api) -> None:
    """A chunked body (no Content-Length) that grows past 1 MiB answers 413."""

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"character_id": 7, "pad": "'
        for _ in range(12):
            yield b"x" * 100_000
        yield b'"}'

    response = await api.http.post("/agent/sessions", content=chunks())
    assert_json_error(response, 413)


# --- the API key -----------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-header"),
        pytest.param(auth("k-wrong"), id="wrong-key"),
        pytest.param({"Authorization": API_KEY}, id="no-scheme"),
        pytest.param({"Authorization": f"Basic {API_KEY}"}, id="basic-scheme"),
    ],
)
async def test_creating_needs_the_api_key(keyed: Api, headers: dict[str, str]) -> None:
    """With an API key configured, creating without it (or with a wrong one) answers 401."""
    response = await keyed.http.post("/agent/sessions", json={"character_id": 7}, headers=headers)
    assert_json_error(response, 401)
    created_by_chat = await keyed.http.post(
        "/agent/chat",
        json={"message": "hi", "session_id": None, "character_id": 7},
        headers=headers,
    )
    assert_json_error(created_by_chat, 401)


async def test_api_key_creates_reads_and_deletes_any_session(keyed: Api) -> None:
    """The API key creates sessions, reads them and deletes them."""
    response = await keyed.http.post(
        "/agent/sessions", json={"character_id": 7}, headers=auth(API_KEY)
    )
    assert response.status_code == 201, response.text
    session_id = response.json()["session_id"]
    session = await read(keyed, session_id, API_KEY)
    assert session["id"] == session_id
    deleted = await keyed.http.delete(f"/agent/session/{session_id}", headers=auth(API_KEY))
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {"message": "Session deleted", "session_id": session_id}
    gone = await keyed.http.get(f"/agent/session/{session_id}", headers=auth(API_KEY))
    assert_json_error(gone, 404)


async def test_api_key_on_an_unknown_session_is_404(keyed: Api) -> None:
    """With the API key, reading or deleting a session that never existed answers 404."""
    path = f"/agent/session/{UNKNOWN_SESSION}"
    assert_json_error(await keyed.http.get(path, headers=auth(API_KEY)), 404)
    assert_json_error(await keyed.http.delete(path, headers=auth(API_KEY)), 404)


# --- GET /agent/session/{id} -------------------------------------------------------


@pytest.mark.parametrize("role", ["owner", "viewer"])
async def test_owner_and_viewer_tokens_read_the_session(api: Api, role: str) -> None:
    """Both tokens read the session with exactly the documented fields."""
    created = await api.create(character_id=9)
    session = await read(api, created["session_id"], created[f"{role}_token"])
    assert set(session) == SESSION_KEYS
    assert session["id"] == created["session_id"]
    assert session["character_id"] == 9
    assert session["status"] == "idle"
    assert session["messages"] == []
    assert isinstance(session["context"], dict)
    for stamp in (session["created_at"], session["updated_at"]):
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", stamp), stamp


@pytest.mark.parametrize(
    "who", ["none", "garbage", "other-owner", "other-viewer", "no-scheme", "tampered"]
)
async def test_reading_needs_a_token_for_that_session(api: Api, who: str) -> None:
    """No token, a garbage or tampered token, or another session's token answers 401."""
    created, other = await api.create(), await api.create()
    headers = {
        "none": {},
        "garbage": auth("garbage"),
        "other-owner": auth(other["owner_token"]),
        "other-viewer": auth(other["viewer_token"]),
        "no-scheme": {"Authorization": created["owner_token"]},
        "tampered": auth(created["viewer_token"].replace(".v.", ".o.", 1)),
    }[who]
    response = await api.http.get(f"/agent/session/{created['session_id']}", headers=headers)
    assert_json_error(response, 401)


# --- DELETE /agent/session/{id} ----------------------------------------------------


async def test_owner_deletes_the_session(api: Api) -> None:
    """The owner deletes: 200, then reading and deleting again answer 404."""
    created = await api.create()
    session_id, owner = created["session_id"], created["owner_token"]
    response = await api.http.delete(f"/agent/session/{session_id}", headers=auth(owner))
    assert response.status_code == 200, response.text
    assert response.json() == {"message": "Session deleted", "session_id": session_id}
    again = await api.http.delete(f"/agent/session/{session_id}", headers=auth(owner))
    assert_json_error(again, 404)
    for token in (owner, created["viewer_token"]):
        gone = await api.http.get(f"/agent/session/{session_id}", headers=auth(token))
        assert_json_error(gone, 404)


async def test_viewer_cannot_delete(api: Api) -> None:
    """A viewer's delete answers 403 and the session stays."""
    created = await api.create()
    response = await api.http.delete(
        f"/agent/session/{created['session_id']}", headers=auth(created["viewer_token"])
    )
    assert_json_error(response, 403)
    assert (await read(api, created["session_id"], created["owner_token"]))["status"] == "idle"


async def test_deleting_needs_a_token_for_that_session(api: Api) -> None:
    """Deleting without a token, or with another session's owner token, answers 401."""
    created, other = await api.create(), await api.create()
    path = f"/agent/session/{created['session_id']}"
    assert_json_error(await api.http.delete(path), 401)
    assert_json_error(await api.http.delete(path, headers=auth(other["owner_token"])), 401)
    await read(api, created["session_id"], created["owner_token"])


# --- POST /agent/chat -------------------------------------------------------------


async def test_chat_continues_a_session_and_the_run_streams(api: Api) -> None:
    """Chat on an existing session answers at once; a viewer sees the user message and reply."""
    created = await api.create()
    viewer = await api.join(created, "viewer")
    response = await chat(
        api, created["owner_token"], message="hello from REST", session_id=created["session_id"]
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["session_id"] == created["session_id"]
    assert answer["status"] in {"idle", "planning", *FINAL}
    assert "owner_token" not in answer and "viewer_token" not in answer
    assert (await viewer.until_idle())["status"] == "completed"
    events = viewer.events()
    users = [
        e["message"] for e in events if e["type"] == "message" and e["message"]["role"] == "user"
    ]
    assert users == [answer["message"]]  # the answer holds the message the socket echoed
    assert users[0]["content"] == "hello from REST"
    assert re.fullmatch(r"rest-[0-9a-f]{16}", users[0]["client_id"])
    (reply,) = assistant_messages(events)
    assert "offline demo model" in reply["content"]
    assert "".join(e["text"] for e in events if e["type"] == "delta") == reply["content"]
    session = await read(api, created["session_id"], created["viewer_token"])
    assert session["status"] == "completed"
    assert [(m["role"], m["content"]) for m in session["messages"]] == [
        ("user", "hello from REST"),
        ("assistant", reply["content"]),
    ]


async def test_chat_retried_with_its_client_id_stores_and_runs_the_message_once(
    api: Api,
) -> None:
    """A retry of a chat with the client_id its first answer gave (generated, since the
    body had none) answers the message stored the first time and adds nothing."""
    created = await api.create()
    viewer = await api.join(created, "viewer")
    token, session_id = created["owner_token"], created["session_id"]
    first = (await chat(api, token, message="only once", session_id=session_id)).json()
    await viewer.until_idle()
    client_id = first["message"]["client_id"]
    retry = await chat(api, token, message="a retry", session_id=session_id, client_id=client_id)
    assert retry.status_code == 200, retry.text
    assert retry.json()["message"] == first["message"]
    assert retry.json()["message"]["content"] == "only once"
    session = await read(api, session_id, token)
    assert [(m["role"], m["content"]) for m in session["messages"]][:1] == [("user", "only once")]
    assert [m["role"] for m in session["messages"]] == ["user", "assistant"]


async def test_chat_without_session_creates_one_and_runs(api: Api) -> None:
    """Chat with session_id null creates the session, answers its tokens, and runs the message."""
    response = await chat(api, None, message="hello, new session", session_id=None, character_id=5)
    assert response.status_code == 200, response.text
    created = response.json()
    assert {"session_id", "status", "owner_token", "viewer_token"} <= set(created)
    assert re.fullmatch(r"sess-[0-9a-f]{12,}", created["session_id"])
    # The run may be over before we join: the snapshot shows it, else we follow it live.
    viewer = await api.connect(created["session_id"], created["viewer_token"])
    hello = await viewer.recv()
    assert hello["type"] == "hello" and hello["role"] == "viewer"
    snapshot = await viewer.recv()
    assert snapshot["type"] == "snapshot"
    if snapshot["status"] not in FINAL:
        await viewer.until_idle()
    session = await read(api, created["session_id"], created["owner_token"])
    assert session["character_id"] == 5 and session["autonomy_level"] == 1
    assert session["status"] == "completed"
    roles = [(m["role"], m["content"]) for m in session["messages"]]
    assert [r for r, _ in roles] == ["user", "assistant"]
    assert roles[0][1] == "hello, new session"
    assert "offline demo model" in roles[1][1]


async def test_chat_on_an_unknown_session_is_404(keyed: Api) -> None:
    """Chat (with the API key) naming a session that does not exist answers 404."""
    response = await chat(keyed, API_KEY, message="anyone there?", session_id=UNKNOWN_SESSION)
    assert_json_error(response, 404)


async def test_chat_on_a_deleted_session_is_404(keyed: Api) -> None:
    """Chat (with the API key) on a deleted session answers 404."""
    response = await keyed.http.post(
        "/agent/sessions", json={"character_id": 7}, headers=auth(API_KEY)
    )
    session_id = response.json()["session_id"]
    deleted = await keyed.http.delete(f"/agent/session/{session_id}", headers=auth(API_KEY))
    assert deleted.status_code == 200, deleted.text
    assert_json_error(await chat(keyed, API_KEY, message="hi", session_id=session_id), 404)


async def test_chat_with_a_viewer_token_is_403(api: Api) -> None:
    """A viewer cannot chat: 403, and nothing is stored."""
    created = await api.create()
    response = await chat(
        api, created["viewer_token"], message="let me in", session_id=created["session_id"]
    )
    assert_json_error(response, 403)
    assert (await read(api, created["session_id"], created["owner_token"]))["messages"] == []


@pytest.mark.parametrize("who", ["none", "other-owner", "garbage"])
async def test_chat_without_a_token_for_the_session_is_401(api: Api, who: str) -> None:
    """Chat on a session without that session's token answers 401 and stores nothing."""
    created, other = await api.create(), await api.create()
    token = {"none": None, "other-owner": other["owner_token"], "garbage": "garbage"}[who]
    response = await chat(api, token, message="hi", session_id=created["session_id"])
    assert_json_error(response, 401)
    assert (await read(api, created["session_id"], created["owner_token"]))["messages"] == []


async def test_chat_creating_without_character_id_is_422(api: Api) -> None:
    """Creating a session through chat needs a character_id."""
    response = await chat(api, None, message="hi", session_id=None)
    assert_json_error(response, 422)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"session_id": None, "character_id": 7}, id="no-message"),
        pytest.param({"message": "", "session_id": None, "character_id": 7}, id="empty-message"),
        pytest.param({"message": 5, "session_id": None, "character_id": 7}, id="int-message"),
        pytest.param({"message": "hi", "character_id": "7"}, id="string-character-id"),
        pytest.param({"message": "hi", "character_id": 7, "extra": 1}, id="extra-field"),
    ],
)
async def test_bad_chat_bodies_are_422(api: Api, body: dict[str, Any]) -> None:
    """An invalid chat body answers a JSON 422."""
    response = await api.http.post("/agent/chat", json=body)
    assert_json_error(response, 422)


async def test_chat_message_over_the_limit_is_413(api: Api) -> None:
    """A chat message over max_content_chars answers 413 and stores nothing."""
    created = await api.create()
    response = await chat(
        api, created["owner_token"], message="x" * 100_001, session_id=created["session_id"]
    )
    assert_json_error(response, 413)
    assert (await read(api, created["session_id"], created["owner_token"]))["messages"] == []


# --- the demo's session_note ------------------------------------------------------


async def test_remember_that_saves_a_session_note(api: Api) -> None:
    """At autonomy 3, "remember that ..." runs session_note and the note is in the context."""
    created = await api.create(autonomy_level=3)
    viewer = await api.join(created, "viewer")
    response = await chat(
        api,
        created["owner_token"],
        message="remember that the sky is green",
        session_id=created["session_id"],
    )
    assert response.status_code == 200, response.text
    assert (await viewer.until_idle())["status"] == "completed"
    events = viewer.events()
    (call,) = [e for e in events if e["type"] == "tool_call"]
    assert call["name"] == "session_note" and call["input"] == {"note": "the sky is green"}
    (result,) = [e for e in events if e["type"] == "tool_result"]
    assert result["call_id"] == call["call_id"] and result["is_error"] is False
    session = await read(api, created["session_id"], created["viewer_token"])
    assert [n["note"] for n in session["context"]["notes"]] == ["the sky is green"]


# --- published documents and health ----------------------------------------------


async def test_openapi_lists_the_rest_paths(api: Api) -> None:
    """/openapi.json is a JSON OpenAPI document listing the REST routes and their methods."""
    response = await api.http.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json"), (
        response.headers["content-type"],
        response.text[:200],
    )
    doc = response.json()
    assert doc["openapi"].startswith("3.")
    assert doc["info"]["title"]
    paths = doc["paths"]
    assert "post" in paths["/agent/sessions"]
    assert "post" in paths["/agent/chat"]
    assert {"get", "delete"} <= set(paths["/agent/session/{session_id}"])


async def test_protocol_schema_validates_frames(api: Api) -> None:
    """The published JSON Schema is valid 2020-12 and accepts a hello and a delta, not junk."""
    response = await api.http.get("/agent/protocol.schema.json")
    assert response.status_code == 200
    schema = response.json()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    hello = {
        "type": "hello",
        "protocol": 1,
        "session_id": "sess-0123456789abcdef",
        "role": "owner",
        "status": "idle",
        "last_seq": 0,
        "resumed": False,
        "viewers": 1,
        "pending_approval": None,
    }
    delta = {
        "type": "delta",
        "session_id": "sess-0123456789abcdef",
        "seq": 3,
        "ts": "2025-01-01T00:00:00Z",
        "message_id": "msg-0123456789abcdef",
        "text": "Hello",
    }
    validator.validate(hello)
    validator.validate(delta)
    assert not validator.is_valid({"type": "delta", "text": "no seq"})
    assert not validator.is_valid({"type": "nonsense"})


async def test_protocol_schema_accepts_real_frames(api: Api) -> None:
    """Every frame of a real demo conversation validates against the published schema."""
    schema = (await api.http.get("/agent/protocol.schema.json")).json()
    validator = jsonschema.Draft202012Validator(schema)
    created = await api.create()
    owner = await api.join(created)
    await owner.message("hello", "c-1")
    await owner.until_idle()
    assert {"hello", "snapshot", "delta", "message", "status"} <= {f["type"] for f in owner.frames}
    for frame in owner.frames:
        errors = list(validator.iter_errors(frame))
        assert not errors, (frame, errors[0].message)


async def test_tools_lists_the_builtins(api: Api) -> None:
    """/agent/tools lists current_time (reads) and session_note (changes) with input schemas."""
    response = await api.http.get("/agent/tools")
    assert response.status_code == 200
    tools = {t["name"]: t for t in response.json()["tools"]}
    assert tools["current_time"]["changes"] is False
    assert tools["session_note"]["changes"] is True
    for tool in tools.values():
        assert tool["description"]
        assert tool["input_schema"]["type"] == "object"
        jsonschema.Draft202012Validator.check_schema(tool["input_schema"])
    assert "note" in tools["session_note"]["input_schema"]["required"]


async def test_healthz_and_readyz(api: Api) -> None:
    """/healthz answers 200 with what the process holds; /readyz 200 with status ready."""
    health = await api.http.get("/healthz")
    assert health.status_code == 200
    assert health.json()["history"] == {"events": 0, "bytes": 0}
    # Only `realtime-agent serve` freezes (tests/test_gcwatch.py unfreezes what it froze).
    assert health.json()["gc"]["frozen_objects"] == 0
    created = await api.create()
    owner = await api.join(created)
    await owner.message("hello", "c-1")
    await owner.until_idle()
    held = (await api.http.get("/healthz")).json()
    assert held["sockets"] == 1
    assert held["history"]["events"] == len(owner.events())
    assert held["history"]["bytes"] > 0
    ready = await api.http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"


async def test_unknown_route_is_json_404(api: Api) -> None:
    """An unknown path answers a JSON 404."""
    assert_json_error(await api.http.get("/no/such/route"), 404)
    assert_json_error(await api.http.post("/agent/nope", json={}), 404)


async def test_wrong_method_is_json_405(api: Api) -> None:
    """A known path with the wrong method answers a JSON 405."""
    assert_json_error(await api.http.get("/agent/sessions"), 405)
    assert_json_error(await api.http.put(f"/agent/session/{UNKNOWN_SESSION}"), 405)
