"""Every protocol promise across server processes: Redis fan-out, Postgres transcript."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.distributed.conftest import Cluster
from tests.helpers import Api, Frame, WSClient, poll
from tests.standin_anthropic import AnthropicStandIn, Text, ToolCalls

FINAL = {"completed", "completed_with_errors", "error", "interrupted"}


def seq_types(client: WSClient) -> list[tuple[int, str]]:
    return [(e["seq"], e["type"]) for e in client.events()]


def contiguous(events: list[Frame]) -> bool:
    seqs = [e["seq"] for e in events]
    return seqs == list(range(seqs[0], seqs[0] + len(seqs)))


async def read_until_seq(client: WSClient, last_seq: int) -> None:
    while not client.events() or client.events()[-1]["seq"] < last_seq:
        await client.recv()


async def retry(connect: Callable[[], Awaitable[WSClient]]) -> tuple[WSClient, Frame]:
    """Reconnect the way a client does after a drop: retry until a process says hello."""
    async with asyncio.timeout(20):
        while True:
            try:
                client = await connect()
                return client, await client.recv()
            except (InvalidStatus, OSError, ConnectionClosed):
                await asyncio.sleep(0.2)  # the client's reconnect backoff


async def transcript(api: Api, created: dict[str, Any]) -> list[dict[str, Any]]:
    response = await api.http.get(
        f"/agent/session/{created['session_id']}",
        headers={"Authorization": f"Bearer {created['owner_token']}"},
    )
    assert response.status_code == 200, response.text
    messages: list[dict[str, Any]] = response.json()["messages"]
    return messages


async def test_owner_on_a_and_viewers_on_b_see_identical_streams(
    cluster: Cluster, standin: AnthropicStandIn
) -> None:
    """Three viewers on B see exactly the owner's (seq, type) stream from A."""
    standin.push(
        ToolCalls([("toolu_1", "current_time", {})], text_chunks=["let me ", "check "]),
        Text(["It ", "is ", "now."]),
    )
    a, b = cluster.api(0), cluster.api(1)
    created = await a.create()
    owner = await a.join(created)
    viewers = [await b.join(created, "viewer") for _ in range(3)]
    await owner.message("what time is it?", "c-1")
    await owner.until_idle()
    for viewer in viewers:
        await viewer.until_idle()
    assert all(seq_types(v) == seq_types(owner) for v in viewers)
    events = owner.events()
    assert events[0]["seq"] >= 1 and contiguous(events)
    assert [e["status"] for e in events if e["type"] == "status"] == [
        "planning",
        "executing",
        "planning",
        "completed",
    ]
    reply = [
        e for e in events if e["type"] == "message" and e["message"]["content"] == "It is now."
    ]
    assert len(reply) == 1
    assert viewers[0].frames[0]["viewers"] >= 2  # presence counts sockets on both processes


async def test_resume_on_b_after_a_disconnect_from_a(
    cluster: Cluster, standin: AnthropicStandIn
) -> None:
    """A viewer that drops from A mid-stream resumes on B with no gap and no duplicate."""
    standin.push(Text([f"part {i}. " for i in range(8)], hold_after=3))
    a, b = cluster.api(0), cluster.api(1)
    created = await a.create()
    owner = await a.join(created)
    viewer = await a.join(created, "viewer")
    await owner.message("story", "c-1")
    await viewer.until(lambda f: f["type"] == "delta" and "part 1. " in f["text"])
    last = viewer.events()[-1]["seq"]
    await viewer.close()
    standin.release()
    await owner.until_idle()
    resumed = await b.connect(created["session_id"], created["viewer_token"], after=last)
    hello = await resumed.recv()
    assert hello["resumed"] is True
    await read_until_seq(resumed, hello["last_seq"])
    assert viewer.events() + resumed.events() == owner.events()


async def test_owners_on_a_and_b_never_run_two_turns_at_once(
    cluster: Cluster, standin: AnthropicStandIn
) -> None:
    """Messages sent at once to A and B run one turn at a time, each exactly once."""
    for i in range(6):
        standin.push(Text([f"reply {i} ", "done"], delay=0.01))
    a, b = cluster.api(0), cluster.api(1)
    created = await a.create()
    observer = await a.join(created, "viewer")
    owner_a = await a.join(created)
    owner_b = await b.join(created)
    await asyncio.gather(
        *(owner_a.message(f"from a {i}", f"a-{i}") for i in range(3)),
        *(owner_b.message(f"from b {i}", f"b-{i}") for i in range(3)),
    )
    finals = 0
    while finals < 6:
        frame = await observer.until_type("status")
        finals += frame["status"] in FINAL
    open_run = False
    for event in observer.events():
        if event["type"] != "status":
            continue
        if event["status"] in ("planning", "executing_queued") and event["previous"] in FINAL | {
            "idle"
        }:
            assert not open_run, "a turn started while another was running"
            open_run = True
        elif event["status"] in FINAL:
            assert open_run
            open_run = False
    messages = await transcript(a, created)
    users = sorted(m["client_id"] for m in messages if m["role"] == "user")
    assert users == sorted([f"a-{i}" for i in range(3)] + [f"b-{i}" for i in range(3)])
    assert sum(m["role"] == "assistant" for m in messages) == 6
    assert len(standin.requests) == 6


async def test_kill_9_mid_stream_loses_nothing_and_b_takes_over(
    cluster: Cluster, standin: AnthropicStandIn
) -> None:
    """kill -9 of the running process: the run ends run_lost on B; nothing acknowledged is lost."""
    standin.push(Text(["partial ", "never sent"], hold_after=1), Text(["recovered"]))
    a, b = cluster.api(0), cluster.api(1)
    created = await a.create()
    owner = await a.join(created)
    viewer = await b.join(created, "viewer")
    await owner.message("first", "c-1")
    await viewer.until(lambda f: f["type"] == "delta")
    await cluster.servers[0].stop(signal.SIGKILL)
    error = await viewer.until_type("error")
    assert error["code"] == "run_lost"
    assert (await viewer.until_type("status"))["status"] == "error"
    standin.release()
    owner_b = await b.connect(
        created["session_id"], created["owner_token"], after=viewer.events()[-1]["seq"]
    )
    assert (await owner_b.recv())["resumed"] is True
    await owner_b.message("second", "c-2")
    assert (await owner_b.until_idle())["status"] == "completed"
    messages = await transcript(b, created)
    assert [(m["role"], m["content"]) for m in messages if m["role"] == "user"] == [
        ("user", "first"),
        ("user", "second"),
    ]
    assert messages[-1]["content"] == "recovered"
    assert contiguous(viewer.events() + owner_b.events())


async def test_redis_restart_mid_session_every_client_resumes(
    cluster: Cluster, standin: AnthropicStandIn
) -> None:
    """Redis restarts (losing its data): sockets close 1001, resume gets a snapshot, seq grows."""
    a, b = cluster.api(0), cluster.api(1)
    created = await a.create()
    owner = await a.join(created)
    viewer = await b.join(created, "viewer")
    await owner.message("before", "c-1")
    await owner.until_idle()
    await viewer.until_idle()
    last = owner.events()[-1]["seq"]
    await cluster.redis.stop()
    assert await owner.closed() == 1001
    assert await viewer.closed() == 1001
    await cluster.redis.start()
    sid = created["session_id"]
    owner, owner_hello = await retry(lambda: a.connect(sid, created["owner_token"], after=last))
    viewer, viewer_hello = await retry(lambda: b.connect(sid, created["viewer_token"], after=last))
    for client, hello in ((owner, owner_hello), (viewer, viewer_hello)):
        snapshot = await client.recv()
        assert hello["resumed"] is False and snapshot["type"] == "snapshot"
        assert hello["last_seq"] >= last
        assert snapshot["messages"][0]["content"] == "before"
    await owner.message("after", "c-2")
    await owner.until_idle()
    await viewer.until_idle()
    assert seq_types(owner) == seq_types(viewer)
    assert owner.events()[0]["seq"] > last and contiguous(owner.events())


async def test_killed_subscriber_connection_closes_sockets_and_resume_has_no_gap(
    cluster: Cluster, standin: AnthropicStandIn
) -> None:
    """CLIENT KILL TYPE pubsub: sockets close 1001, resume replays from history, no gap."""
    a, b = cluster.api(0), cluster.api(1)
    created = await a.create()
    owner = await a.join(created)
    viewer = await b.join(created, "viewer")
    await owner.message("one", "c-1")
    await owner.until_idle()
    await viewer.until_idle()
    last = viewer.events()[-1]["seq"]
    client = aioredis.Redis.from_url(cluster.redis.url)
    try:
        await client.execute_command("CLIENT", "KILL", "TYPE", "pubsub")  # type: ignore[no-untyped-call]
    finally:
        await client.aclose()
    assert await owner.closed() == 1001
    assert await viewer.closed() == 1001
    sid = created["session_id"]
    owner, owner_hello = await retry(lambda: a.connect(sid, created["owner_token"], after=last))
    viewer, viewer_hello = await retry(lambda: b.connect(sid, created["viewer_token"], after=last))
    for hello in (owner_hello, viewer_hello):
        assert hello["resumed"] is True and hello["last_seq"] == last
    await owner.message("two", "c-2")
    await owner.until_idle()
    await viewer.until_idle()
    assert seq_types(owner) == seq_types(viewer)
    assert owner.events()[0]["seq"] == last + 1 and contiguous(owner.events())


async def test_postgres_down_refuses_messages_and_reads_say_503(
    cluster: Cluster, standin: AnthropicStandIn
) -> None:
    """With PostgreSQL gone a message is refused (never acknowledged); reads and /readyz say 503."""
    a = cluster.api(0)
    created = await a.create()
    owner = await a.join(created)
    name = cluster.dsn.rsplit("/", 1)[1]
    admin = await asyncpg.connect(cluster.dsn.rsplit("/", 1)[0] + "/postgres")
    try:
        await admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
        )
        await owner.message("lost?", "c-1", id="m1")
        refused = await owner.until_type("error")
        assert refused["code"] == "unavailable" and refused["ref"] == "m1"
        assert "seq" not in refused and not owner.events()
        read = await a.http.get(
            f"/agent/session/{created['session_id']}",
            headers={"Authorization": f"Bearer {created['owner_token']}"},
        )
        assert read.status_code == 503 and "error" in read.json()
        ready = await a.http.get("/readyz")
        assert ready.status_code == 503 and ready.json()["store"].startswith("unavailable")
    finally:
        await admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
        await admin.close()
    await owner.message("stored", "c-2")
    assert (await owner.until_idle())["status"] == "completed"
    messages = await transcript(a, created)
    assert [m["content"] for m in messages if m["role"] == "user"] == ["stored"]


async def test_readyz_reports_redis_down(cluster: Cluster, standin: AnthropicStandIn) -> None:
    """/readyz answers 503 while Redis is down and 200 with the probe lag once it is back."""
    a = cluster.api(0)

    async def status_is(code: int) -> bool:
        return (await a.http.get("/readyz")).status_code == code

    await poll(lambda: status_is(200))
    await cluster.redis.stop()

    await poll(lambda: status_is(503))
    await cluster.redis.start()
    await poll(lambda: status_is(200))
    ready = await a.http.get("/readyz")
    assert ready.json()["channels"] == "ok"


async def test_approval_answered_on_another_process(
    cluster: Cluster, standin: AnthropicStandIn
) -> None:
    """The run waits on A; the owner approves from a socket on B; the run goes on on A."""
    standin.push(ToolCalls([("toolu_n", "session_note", {"note": "x"})]), Text(["noted"]))
    a, b = cluster.api(0), cluster.api(1)
    created = await a.create()
    owner_a = await a.join(created)
    await owner_a.message("remember x", "c-1")
    required = await owner_a.until_type("approval_required")
    owner_b = await b.join(created)
    assert owner_b.frames[0]["pending_approval"]["approval_id"] == required["approval_id"]
    await owner_b.send({"type": "approve", "approval_id": required["approval_id"]})
    assert (await owner_a.until_idle())["status"] == "completed"
    assert next(e for e in owner_a.events() if e["type"] == "approval_resolved")["approved"]


async def test_rest_reads_answer_from_postgres_while_redis_is_down(
    cluster: Cluster, standin: AnthropicStandIn
) -> None:
    """GET /agent/session keeps answering (from PostgreSQL) while Redis is down."""
    a = cluster.api(0)
    created = await a.create()
    owner = await a.join(created)
    await owner.message("kept", "c-1")
    await owner.until_idle()
    await cluster.redis.stop()
    read = await a.http.get(
        f"/agent/session/{created['session_id']}",
        headers={"Authorization": f"Bearer {created['owner_token']}"},
    )
    assert read.status_code == 200
    assert read.json()["messages"][0]["content"] == "kept"
