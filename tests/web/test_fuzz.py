"""Protocol fuzzing: thousands of generated frames against a live server (hypothesis)."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from realtime_agent.app import create_app, server_config
from realtime_agent.protocol import ErrorCode, FrameError, parse_client_frame
from tests.helpers import listening_socket, settings_for

CODES = {c.value for c in ErrorCode}
LIMIT = 1000  # the server's content limit in this suite (kept small so examples stay small)
TYPES = ["message", "interrupt", "approve", "reject", "ping", "hello", "", "MESSAGE"]
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=50),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=20,
)
frames = st.one_of(
    json_values.map(lambda v: orjson.dumps(v).decode()),
    st.fixed_dictionaries(
        {"type": st.sampled_from(TYPES)},
        optional={
            "content": json_values | st.text(max_size=200) | st.just("x" * (LIMIT + 1)),
            "client_id": json_values | st.text(max_size=200),
            "on_busy": json_values | st.sampled_from(["queue", "steer", "never"]),
            "approval_id": json_values,
            "id": json_values | st.integers(min_value=2**53, max_value=2**63 - 1),
            "extra": json_values,
        },
    ).map(lambda v: orjson.dumps(v).decode()),
    st.text(max_size=300),  # control characters, surrogates excluded by JSON encoding
    st.just(""),
    st.just("[" * 1100 + "]" * 1100),  # nesting deeper than the JSON parser allows
    st.binary(max_size=100),
)


class Server:
    """The app in its own thread and event loop, so hypothesis can drive it synchronously."""

    def __init__(self, tmp_path: Path) -> None:
        self.settings = settings_for(
            tmp_path, rate_limit_per_second=1e6, rate_limit_burst=10**6, max_content_chars=LIMIT
        )
        self.sock = listening_socket()
        self.port = self.sock.getsockname()[1]
        self.server = uvicorn.Server(
            server_config(
                create_app(self.settings),
                self.settings,
                host="127.0.0.1",
                port=self.port,
                log_level="warning",
            )
        )
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.run(self.server.serve(sockets=[self.sock]))

    def __enter__(self) -> Server:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture(scope="module")
def live(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Server, dict[str, Any], dict[str, Any]]]:
    """A running server with a session under attack and a bystander session."""
    with Server(tmp_path_factory.mktemp("fuzz")) as server:
        base = f"http://127.0.0.1:{server.port}"
        with httpx.Client(base_url=base, timeout=10) as http:
            target = http.post("/agent/sessions", json={"character_id": 1}).json()
            bystander = http.post("/agent/sessions", json={"character_id": 2}).json()
        yield server, target, bystander


@contextmanager
def _open(session: dict[str, Any], role: str = "owner") -> Iterator[ClientConnection]:
    url = f"{session['ws_url']}?token={session[f'{role}_token']}"
    with connect(url, open_timeout=10, ping_interval=None) as conn:
        assert orjson.loads(conn.recv(timeout=10))["type"] == "hello"
        assert orjson.loads(conn.recv(timeout=10))["type"] == "snapshot"
        yield conn


def _valid(frame: str | bytes) -> bool:
    if isinstance(frame, bytes):
        return False
    try:
        parse_client_frame(frame, max_content_chars=LIMIT)
    except FrameError:
        return False
    return True


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
    ],
    database=None,
)
@given(batch=st.lists(frames, min_size=1, max_size=40))
def test_every_bad_frame_gets_a_documented_error(
    live: tuple[Server, dict[str, Any], dict[str, Any]],
    batch: list[str | bytes],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Each generated bad frame gets exactly one documented error; nothing else changes."""
    _, target, _ = live
    bad = [f for f in batch if not _valid(f)]
    with caplog.at_level(logging.ERROR), _open(target) as conn:
        for frame in bad:
            conn.send(frame)
        conn.send('{"type": "ping", "id": "end"}')
        answers = []
        while True:
            answer = orjson.loads(conn.recv(timeout=10))
            if answer.get("type") == "pong" and answer.get("id") == "end":
                break
            if answer.get("type") == "presence":  # the previous example's socket leaving
                continue
            answers.append(answer)
    assert len(answers) == len(bad)
    for answer in answers:
        assert answer["type"] == "error" and answer["code"] in CODES and "seq" not in answer
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_invalid_utf8_text_frame_closes_1007(
    live: tuple[Server, dict[str, Any], dict[str, Any]],
) -> None:
    """A text frame that is not UTF-8 closes the socket with 1007 (the websocket protocol's)."""
    _, target, _ = live
    with _open(target) as conn:
        conn.send(b"\xff\xfe not utf-8", text=True)
        with pytest.raises(ConnectionClosed):
            conn.recv(timeout=10)
        assert conn.close_code == 1007


def test_after_the_fuzzing_nothing_was_stored_and_bystanders_saw_nothing(
    live: tuple[Server, dict[str, Any], dict[str, Any]],
) -> None:
    """The attacked session's transcript is empty and the bystander's stream is untouched."""
    server, target, bystander = live
    with _open(bystander, "viewer") as watcher:
        watcher.send('{"type": "ping", "id": 1}')
        assert orjson.loads(watcher.recv(timeout=10)) == {"type": "pong", "id": 1}
    base = f"http://127.0.0.1:{server.port}"
    with httpx.Client(base_url=base, timeout=10) as http:
        for session in (target, bystander):
            read = http.get(
                f"/agent/session/{session['session_id']}",
                headers={"Authorization": f"Bearer {session['owner_token']}"},
            )
            assert read.status_code == 200 and read.json()["messages"] == []


@settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    body=st.one_of(json_values.map(orjson.dumps), st.binary(max_size=200)),
    path=st.sampled_from(["/agent/sessions", "/agent/chat"]),
)
def test_rest_bodies_never_give_500(
    live: tuple[Server, dict[str, Any], dict[str, Any]],
    body: bytes,
    path: str,
) -> None:
    """Malformed or wrongly typed REST bodies get a 4xx with a JSON error, never a 500."""
    server, target, _ = live
    with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=10) as http:
        response = http.post(
            path, content=body, headers={"Authorization": f"Bearer {target['owner_token']}"}
        )
    if response.status_code < 400:
        assert response.status_code in (200, 201)  # a body that happened to be valid
        return
    assert 400 <= response.status_code < 500, response.text
    assert "error" in response.json()


def test_oversized_rest_body_is_413(live: tuple[Server, dict[str, Any], dict[str, Any]]) -> None:
    """A body over the limit is refused with 413 and a JSON error."""
    server, _, _ = live
    with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=10) as http:
        response = http.post("/agent/sessions", content=b"{" + b" " * (2 << 20) + b"}")
    assert response.status_code == 413 and "error" in response.json()
