"""Abuse limits and access control: rate limits, caps, revocation, isolation, expiry."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from websockets.exceptions import InvalidStatus

from realtime_agent.auth import TokenSigner
from tests.helpers import Api, RunningServer, settings_for, standin_settings
from tests.standin_anthropic import AnthropicStandIn, Text

SECRET = b"test-secret-0123456789abcdef"


async def test_rate_limit_answers_rate_limited_then_closes_1008(tmp_path: Path) -> None:
    """Frames past the bucket get rate_limited; sustained abuse closes the socket with 1008."""
    settings = settings_for(tmp_path, rate_limit_per_second=1, rate_limit_burst=3)
    async with RunningServer(settings) as server, Api(server.base_url) as api:
        created = await api.create()
        owner = await api.join(created)
        for i in range(20):
            await owner.send({"type": "ping", "id": i})
        codes = []
        for _ in range(3):
            codes.append(await owner.recv())
        assert [f["type"] for f in codes] == ["pong", "pong", "pong"]
        limited = await owner.recv()
        assert limited["type"] == "error" and limited["code"] == "rate_limited"
        assert await owner.closed() == 1008


async def test_socket_caps_per_session_and_per_address(tmp_path: Path) -> None:
    """Past the per-session or per-address cap the handshake answers 429."""
    settings = settings_for(tmp_path, max_sockets_per_session=2, max_sockets_per_address=3)
    async with RunningServer(settings) as server, Api(server.base_url) as api:
        a, b = await api.create(), await api.create()
        await api.join(a)
        await api.join(a, "viewer")
        with pytest.raises(InvalidStatus) as full:
            await api.connect(a["session_id"], a["viewer_token"])
        assert full.value.response.status_code == 429
        await api.join(b)
        with pytest.raises(InvalidStatus) as crowded:
            await api.connect(b["session_id"], b["viewer_token"])
        assert crowded.value.response.status_code == 429


async def test_queue_cap_refuses_with_busy(tmp_path: Path, standin: AnthropicStandIn) -> None:
    """A full queue refuses a message with busy and stores nothing."""
    settings = standin_settings(
        tmp_path,
        standin,
        max_queued_messages=1,
    )
    standin.push(Text(["held"], hold_after=0))
    async with RunningServer(settings) as server, Api(server.base_url) as api:
        created = await api.create()
        owner = await api.join(created)
        await owner.message("one", "c-1")
        await owner.until_status("planning")
        await owner.message("two", "c-2")
        await owner.until_type("queued")
        await owner.message("three", "c-3", id="x")
        busy = await owner.until_type("error")
        assert busy["code"] == "busy" and busy["ref"] == "x" and "queue is full" in busy["message"]
        standin.release()
        await owner.until_idle()
        await owner.until_idle()
        messages = (
            await api.http.get(
                f"/agent/session/{created['session_id']}",
                headers={"Authorization": f"Bearer {created['owner_token']}"},
            )
        ).json()["messages"]
        assert [m["content"] for m in messages if m["role"] == "user"] == ["one", "two"]


async def test_revoking_viewers_closes_their_sockets_and_old_tokens(api: Api) -> None:
    """revoke-viewers: open viewer sockets close 1008, old tokens fail, the new one works."""
    created = await api.create()
    owner = await api.join(created)
    viewer = await api.join(created, "viewer")
    url = f"/agent/session/{created['session_id']}"
    refused = await api.http.post(
        f"{url}/revoke-viewers", headers={"Authorization": f"Bearer {created['viewer_token']}"}
    )
    assert refused.status_code == 403
    response = await api.http.post(
        f"{url}/revoke-viewers", headers={"Authorization": f"Bearer {created['owner_token']}"}
    )
    assert response.status_code == 200
    assert await viewer.closed() == 1008
    await owner.send({"type": "ping", "id": "still"})
    assert (await owner.until_type("pong"))["id"] == "still"
    with pytest.raises(InvalidStatus) as old:
        await api.connect(created["session_id"], created["viewer_token"])
    assert old.value.response.status_code == 403
    read = await api.http.get(url, headers={"Authorization": f"Bearer {created['viewer_token']}"})
    assert read.status_code == 401
    fresh = response.json()["viewer_token"]
    assert (await api.join({**created, "viewer_token": fresh}, "viewer")).frames[0]["role"] == (
        "viewer"
    )


async def test_expired_tokens_are_refused(api: Api) -> None:
    """A token past its expiry opens no socket and reads nothing."""
    created = await api.create()
    expired = TokenSigner(SECRET, -10).issue(created["session_id"], "owner")
    with pytest.raises(InvalidStatus) as refused:
        await api.connect(created["session_id"], expired)
    assert refused.value.response.status_code == 403
    read = await api.http.get(
        f"/agent/session/{created['session_id']}", headers={"Authorization": f"Bearer {expired}"}
    )
    assert read.status_code == 401


async def test_tokens_of_one_session_never_act_on_another(api: Api) -> None:
    """Session A's tokens get nothing from session B, on every endpoint."""
    a, b = await api.create(), await api.create()
    url = f"/agent/session/{b['session_id']}"
    for token in (a["owner_token"], a["viewer_token"]):
        auth = {"Authorization": f"Bearer {token}"}
        assert (await api.http.get(url, headers=auth)).status_code == 401
        assert (await api.http.delete(url, headers=auth)).status_code == 401
        assert (
            await api.http.patch(url, json={"autonomy_level": 3}, headers=auth)
        ).status_code == 401
        assert (await api.http.post(f"{url}/revoke-viewers", headers=auth)).status_code == 401
        chat = await api.http.post(
            "/agent/chat",
            headers=auth,
            json={"message": "hi", "session_id": b["session_id"], "character_id": 1},
        )
        assert chat.status_code == 401
        with pytest.raises(InvalidStatus) as refused:
            await api.connect(b["session_id"], token)
        assert refused.value.response.status_code == 403
    owner_b = await api.join(b)
    assert owner_b.events() == []


async def test_runs_beyond_the_process_cap_wait_their_turn(
    tmp_path: Path, standin: AnthropicStandIn
) -> None:
    """With one run slot, a second session's run starts only after the first ends."""
    settings = standin_settings(
        tmp_path,
        standin,
        max_concurrent_runs=1,
    )
    standin.push(Text(["first"], hold_after=0), Text(["second"]))
    async with RunningServer(settings) as server, Api(server.base_url) as api:
        a, b = await api.create(), await api.create()
        owner_a, owner_b = await api.join(a), await api.join(b)
        await owner_a.message("one", "c-1")
        await owner_a.until_status("planning")
        await owner_b.message("two", "c-2")
        await owner_b.until_type("message")
        assert len(await standin.wait_for_requests(1)) == 1
        standin.release()
        assert (await owner_a.until_idle())["status"] == "completed"
        assert (await owner_b.until_idle())["status"] == "completed"
        assert len(standin.requests) == 2


async def test_keepalive_drops_a_dead_peer_but_not_a_live_one(tmp_path: Path) -> None:
    """A peer that never answers pings is dropped; a normal client on the same server stays."""
    settings = settings_for(tmp_path, ws_ping_interval=0.3)
    async with RunningServer(settings) as server, Api(server.base_url) as api:
        created = await api.create()
        alive = await api.join(created)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        request = (
            f"GET /agent/ws/{created['session_id']}?token={created['viewer_token']} HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{server.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        writer.write(request.encode())
        status = await reader.readline()
        assert b" 101 " in status
        # This peer reads but never answers a ping: the server must hang up on it.
        async with asyncio.timeout(10):
            while await reader.read(65536):
                pass
        writer.close()
        await alive.send({"type": "ping", "id": "still here"})
        assert (await alive.until_type("pong"))["id"] == "still here"
        assert alive.conn.close_code is None


async def test_a_slow_request_head_is_cut_at_the_handshake_timeout(tmp_path: Path) -> None:
    """A client that never finishes its request head (slowloris) is disconnected."""
    settings = settings_for(tmp_path, handshake_timeout_seconds=0.3)
    async with RunningServer(settings) as server, Api(server.base_url) as api:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /agent/ws/sess-0 HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never ends
        async with asyncio.timeout(10):
            assert await reader.read() == b""  # the server closed the connection
        writer.close()
        assert (await api.http.get("/healthz")).status_code == 200  # others are served
