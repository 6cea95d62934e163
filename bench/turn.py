"""Turn overhead: the owner's message to its echo, and to the first delta.

    python -m bench.turn [--turns 200] [--mode embedded,distributed] [--gap 0.06]

One owner socket sends a message, waits for the run's final status, pauses
``--gap`` seconds (the default keeps under the per-socket frame rate limit,
20 frames/s, and lets the session go idle; ``--gap 0`` lifts that limit and
sends the next message as soon as a turn ends) and sends the next. The stand-in
answers at once with one chunk (the zero-latency model), so what is measured
is the server: the store write and echo (``message`` event), then run start,
conversation load and model call set-up (first ``delta``), and the whole turn
(final ``status``). A fresh session every 10 turns keeps the conversation
short. Rows go to bench/results/turn.json.

The physical floor is measured in the same run, at the same pace: after each
turn and its pause, the hops the echo needs in series, made by this process
with no server code between them, then another pause. With PostgreSQL +
Redis: a websocket ping to the server (the frame in and the event out), a
Redis round trip (the session lock), a durable single-row insert (the
append, synchronous commit) and a second Redis round trip (the numbered
publish). Embedded: the ping only. A durable write's cost depends on how
long the disk was idle (an fsync on this VM class: 0.1 ms back to back,
0.86 ms after 60 ms), so only a floor taken at the turns' own pace says how
much of the echo is the server's own work.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import time
from typing import Any

import orjson
from websockets.exceptions import ConnectionClosed

from .common import (
    NO_RATE_LIMIT,
    PG_ADMIN_URL,
    REDIS_URL,
    Deployment,
    add_list_arg,
    create_rooms,
    log,
    over_deployments,
    percentiles,
    print_table,
    start_content,
)
from .streaming import run_scenario

FINAL = {"completed", "completed_with_errors", "error", "interrupted"}
KEY = ("scenario", "impl", "mode", "gap_s")


class Floor:
    """The echo's hops with no server code between them (see the module's doc)."""

    def __init__(self, dep: Any) -> None:
        self.dep = dep
        self.parts: dict[str, list[float]] = {"ws_ping": [], "redis": [], "pg_insert": []}
        self._redis: Any = None
        self._pg: Any = None

    async def __aenter__(self) -> Floor:
        if self.dep.mode == "distributed":
            import asyncpg
            from redis.asyncio import Redis

            self._redis = Redis.from_url(REDIS_URL)
            dsn = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + self.dep.extra["db"]
            self._pg = await asyncpg.connect(dsn)
            await self._pg.execute(
                "CREATE TABLE IF NOT EXISTS bench_floor"
                " (id BIGSERIAL PRIMARY KEY, body TEXT NOT NULL)"
            )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._pg is not None:
            await self._pg.close()
        if self._redis is not None:
            await self._redis.aclose()

    async def sample(self, ws: Any, record: bool) -> None:
        key = self.dep.extra["prefix"] + "floor"
        t0 = time.perf_counter_ns()
        await (await ws.ping())
        t1 = time.perf_counter_ns()
        times = {"ws_ping": t1 - t0}
        if self._pg is not None:
            await self._redis.set(key, secrets.token_hex(8), px=10_000)
            t2 = time.perf_counter_ns()
            await self._pg.execute("INSERT INTO bench_floor (body) VALUES ($1)", key)
            t3 = time.perf_counter_ns()
            await self._redis.incr(key + ":n")
            t4 = time.perf_counter_ns()
            times.update(redis=t2 - t1 + t4 - t3, pg_insert=t3 - t2)
        if record:
            for name, ns in times.items():
                self.parts[name].append(ns / 1e6)

    @property
    def total(self) -> list[float]:
        """Each sample's hops added up."""
        return [sum(hops) for hops in zip(*(s for s in self.parts.values() if s), strict=True)]

    def figures(self) -> dict[str, Any]:
        p50, p99 = percentiles(self.total)
        row: dict[str, Any] = {"floor_p50_ms": p50, "floor_p99_ms": p99}
        for name, samples in self.parts.items():
            if samples:
                row[f"floor_{name}_p50_ms"] = percentiles(samples)[0]
        return row


async def measure_turns(dep: Any, turns: int, gap: float, per_session: int = 10) -> dict[str, Any]:
    run = _Turns(turns, gap, per_session)
    rooms = await create_rooms(dep, (run.total + per_session - 1) // per_session + 1)
    async with Floor(dep) as floor:
        for room in rooms:
            if run.done >= run.total:
                break
            try:
                await run.session(room, floor)
            except ConnectionClosed as exc:  # the server closed the socket: count it, go on
                code = str(exc.rcvd.code if exc.rcvd else "none")
                run.closed[code] = run.closed.get(code, 0) + 1
                run.done += 1
    e50, e99 = percentiles(run.echo)
    f50, f99 = percentiles(run.first)
    w50, w99 = percentiles(run.whole)
    row: dict[str, Any] = {
        "turns": len(run.echo),
        "echo_p50_ms": e50,
        "echo_p99_ms": e99,
        "first_delta_p50_ms": f50,
        "first_delta_p99_ms": f99,
        "turn_p50_ms": w50,
        "turn_p99_ms": w99,
        "queued_events": run.queued,
        "closed_by_server": run.closed,  # sockets the server closed mid-turn (close code: count)
        "gap_s": gap,
    }
    row.update(floor.figures())
    if floor.total:
        row["echo_over_floor_p50_ms"] = e50 - row["floor_p50_ms"]
    return row


class _Turns:
    """The turns of one run, over as many sessions as they need."""

    WARM = 5  # turns not counted: connections and prepared statements warm up

    def __init__(self, turns: int, gap: float, per_session: int) -> None:
        self.total = turns + self.WARM
        self.gap = gap
        self.per_session = per_session
        self.content = start_content(1, 0)
        self.done = 0
        self.queued = 0
        self.closed: dict[str, int] = {}
        self.echo: list[float] = []
        self.first: list[float] = []
        self.whole: list[float] = []

    async def session(self, room: Any, floor: Floor) -> None:
        from websockets.asyncio.client import connect

        async with connect(room.owner_urls[0], compression=None, max_size=None) as ws:
            hello = orjson.loads(await ws.recv())
            assert hello["type"] == "hello", hello
            await ws.recv()  # snapshot
            for _ in range(self.per_session):
                if self.done >= self.total:
                    break
                record = self.done >= self.WARM
                await self.turn(ws, record)
                self.done += 1
                # The floor's hops, each after the same pause as a turn's echo.
                await asyncio.sleep(self.gap)
                await floor.sample(ws, record)
                await asyncio.sleep(self.gap)

    async def turn(self, ws: Any, record: bool) -> None:
        client_id = "t-" + secrets.token_hex(6)
        frame = orjson.dumps(
            {"type": "message", "content": self.content, "client_id": client_id}
        ).decode()
        t0 = time.perf_counter_ns()
        await ws.send(frame)
        t_echo = t_first = 0
        while True:
            data = orjson.loads(await ws.recv())
            now = time.perf_counter_ns()
            kind = data.get("type")
            if kind == "message" and data["message"].get("client_id") == client_id:
                t_echo = now
            elif kind == "delta" and not t_first:
                t_first = now
            elif kind == "queued":
                self.queued += 1
            elif kind == "status" and data["status"] in FINAL and t_echo:
                break
            elif kind == "error" and "seq" not in data:
                raise RuntimeError(f"connection error: {data}")
        if record:
            self.echo.append((t_echo - t0) / 1e6)
            self.first.append((t_first - t0) / 1e6)
            self.whole.append((now - t0) / 1e6)


async def main(args: argparse.Namespace) -> list[dict[str, Any]]:
    async def one(impl: str, mode: str, dep: Deployment) -> list[dict[str, Any]]:
        log(f"turn overhead {mode}: {args.turns} turns")
        row = await measure_turns(dep, args.turns, args.gap)
        row["store"] = "PostgreSQL + Redis" if mode == "distributed" else "SQLite"
        return [row]

    # Under the per-socket frame limit (20 frames/s by default) the limit is lifted.
    lift = NO_RATE_LIMIT if args.gap < 0.05 else None
    return await over_deployments(
        "turn", [("ours", mode) for mode in args.mode], one, extra_env=lift
    )


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument(
        "--gap",
        type=float,
        default=0.06,
        help="seconds between turns; 0 sends the next message as soon as a turn ends",
    )
    add_list_arg(parser, "--mode", ["embedded", "distributed"])
    rows = run_scenario("turn", parser.parse_args(), main, KEY)
    print_table(
        rows,
        [
            ("mode", "mode"),
            ("gap_s", "pause s"),
            ("store", "store"),
            ("turns", "turns"),
            ("echo_p50_ms", "echo p50 ms"),
            ("echo_p99_ms", "echo p99"),
            ("first_delta_p50_ms", "1st delta p50"),
            ("first_delta_p99_ms", "p99"),
            ("turn_p50_ms", "turn p50"),
            ("turn_p99_ms", "turn p99"),
            ("floor_p50_ms", "floor p50"),
            ("echo_over_floor_p50_ms", "echo - floor"),
            ("queued_events", "queued"),
        ],
    )


if __name__ == "__main__":
    cli()
