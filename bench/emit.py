"""The Redis layer's emit: CPU per event when sessions emit one at a time or at once.

    python -m bench.emit [--emits 6000] [--sessions 1,10,50]

Builds the server's own ``RedisChannels`` on the local Redis (a fresh key
prefix, deleted afterwards) and emits ``--emits`` deltas from ``--sessions``
sessions at once: each session's task emits its next event as soon as the
previous one returned, so with 1 session every emit goes to Redis alone, and
with 50 the emits due in one turn of the loop leave as one pipeline
(``realtime_agent/channels/batch.py``). Reported: the CPU of this process per
emit (``time.process_time``: redis-py, the layer, the loop) and the wall time
of an emit, p50/p99. Redis's own CPU is not in it. Rows go to
bench/results/emit.json.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import time
from typing import Any

from .common import (
    REDIS_URL,
    clear_redis_prefix,
    emit_json,
    log,
    parse_list,
    percentiles,
    print_table,
)
from .streaming import run_scenario

KEY = ("scenario", "sessions")


async def measure(emits: int, sessions: int) -> dict[str, Any]:
    from redis.asyncio import Redis

    from realtime_agent.channels.redis import RedisChannels

    reserved: dict[str, int] = {}

    async def reserve(session_id: str, count: int) -> int:
        before = reserved.setdefault(session_id, 0)
        reserved[session_id] = before + count
        return before

    prefix = f"ra-bench-emit-{secrets.token_hex(4)}:"
    redis = Redis.from_url(REDIS_URL)
    layer = RedisChannels(
        redis,
        reserve,
        prefix=prefix,
        min_events=1000,
        min_seconds=120,
        max_events=20_000,
        history_ttl=600,
        lease_seconds=30,
        probe_seconds=2,
    )
    ids = [f"sess-{secrets.token_hex(6)}" for _ in range(sessions)]
    walls: list[float] = []
    frame = {"type": "delta", "message_id": "msg-1", "text": "x" * 40}

    async def stream(session_id: str, count: int) -> None:
        for _ in range(count):
            start = time.perf_counter()
            await layer.emit(session_id, dict(frame))
            walls.append((time.perf_counter() - start) * 1000)

    try:
        async with layer:
            await asyncio.gather(*(stream(s, 20) for s in ids))  # warm up: counters, code
            walls.clear()
            per_session = max(1, emits // sessions)
            cpu, wall = time.process_time(), time.perf_counter()
            await asyncio.gather(*(stream(s, per_session) for s in ids))
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    finally:
        await redis.aclose()
        await clear_redis_prefix(prefix)
    done = per_session * sessions
    p50, p99 = percentiles(walls)
    return {
        "scenario": "emit",
        "sessions": sessions,
        "emits": done,
        "cpu_us_per_emit": cpu * 1e6 / done,
        "emits_per_s": done / wall,
        "wall_p50_ms": p50,
        "wall_p99_ms": p99,
    }


async def main(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    for sessions in args.sessions:
        log(f"emit: {args.emits} emits from {sessions} sessions at once")
        rows.append(await measure(args.emits, sessions))
        emit_json(rows[-1])
    return rows


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--emits", type=int, default=6000)
    parser.add_argument("--sessions", type=parse_list, default=[1, 10, 50])
    rows = run_scenario("emit", parser.parse_args(), main, KEY)
    print_table(
        rows,
        [
            ("sessions", "sessions at once"),
            ("emits", "emits"),
            ("cpu_us_per_emit", "CPU µs/emit"),
            ("emits_per_s", "emits/s"),
            ("wall_p50_ms", "emit p50 ms"),
            ("wall_p99_ms", "emit p99 ms"),
        ],
    )


if __name__ == "__main__":
    cli()
