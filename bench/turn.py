"""Turn overhead: the owner's message to its echo, and to the first delta.

    python -m bench.turn [--turns 200] [--mode embedded,distributed] [--gap 0.06]

One owner socket sends a message, waits for the run's final status, pauses
``--gap`` seconds (the default keeps under the per-socket frame rate limit,
20 frames/s, and lets the session go idle) and sends the next. The stand-in
answers at once with one chunk (the zero-latency model), so what is measured
is the server: the store write and echo (``message`` event), then run start,
conversation load and model call set-up (first ``delta``), and the whole turn
(final ``status``). A fresh session every 10 turns keeps the conversation
short. Rows go to bench/results/turn.json.
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
    Deployment,
    add_list_arg,
    collect,
    create_rooms,
    log,
    over_deployments,
    percentiles,
    print_table,
    start_content,
)
from .streaming import merge_results

FINAL = {"completed", "completed_with_errors", "error", "interrupted"}
KEY = ("scenario", "impl", "mode")


async def measure_turns(dep: Any, turns: int, gap: float, per_session: int = 10) -> dict[str, Any]:
    echo: list[float] = []
    first: list[float] = []
    whole: list[float] = []
    QUEUED[0] = 0
    content = start_content(1, 0)
    warm = 5
    rooms = await create_rooms(dep, (turns + warm + per_session - 1) // per_session + 1)
    done = 0
    closed: dict[str, int] = {}
    for room in rooms:
        if done >= turns + warm:
            break
        try:
            done = await _session_turns(
                room, done, turns + warm, warm, per_session, gap, content, echo, first, whole
            )
        except ConnectionClosed as exc:  # the server closed the socket: count it, go on
            code = str(exc.rcvd.code if exc.rcvd else "none")
            closed[code] = closed.get(code, 0) + 1
            done += 1
    e50, e99 = percentiles(echo)
    f50, f99 = percentiles(first)
    w50, w99 = percentiles(whole)
    return {
        "turns": len(echo),
        "echo_p50_ms": e50,
        "echo_p99_ms": e99,
        "first_delta_p50_ms": f50,
        "first_delta_p99_ms": f99,
        "turn_p50_ms": w50,
        "turn_p99_ms": w99,
        "queued_events": QUEUED[0],
        "closed_by_server": closed,  # sockets the server closed mid-turn (close code: count)
    }


QUEUED = [0]


async def _session_turns(
    room: Any,
    done: int,
    total: int,
    warm: int,
    per_session: int,
    gap: float,
    content: str,
    echo: list[float],
    first: list[float],
    whole: list[float],
) -> int:
    from websockets.asyncio.client import connect

    async with connect(room.owner_urls[0], compression=None, max_size=None) as ws:
        hello = orjson.loads(await ws.recv())
        assert hello["type"] == "hello", hello
        await ws.recv()  # snapshot
        for _ in range(per_session):
            if done >= total:
                break
            client_id = "t-" + secrets.token_hex(6)
            frame = orjson.dumps(
                {"type": "message", "content": content, "client_id": client_id}
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
                    QUEUED[0] += 1
                elif kind == "status" and data["status"] in FINAL and t_echo:
                    break
                elif kind == "error" and "seq" not in data:
                    raise RuntimeError(f"connection error: {data}")
            if done >= warm:
                echo.append((t_echo - t0) / 1e6)
                first.append((t_first - t0) / 1e6)
                whole.append((now - t0) / 1e6)
            done += 1
            if gap > 0:
                await asyncio.sleep(gap)
    return done


async def main(args: argparse.Namespace) -> list[dict[str, Any]]:
    async def one(impl: str, mode: str, dep: Deployment) -> list[dict[str, Any]]:
        log(f"turn overhead {mode}: {args.turns} turns")
        row = await measure_turns(dep, args.turns, args.gap)
        row["store"] = "PostgreSQL + Redis" if mode == "distributed" else "SQLite"
        return [row]

    return await over_deployments("turn", [("ours", mode) for mode in args.mode], one)


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--gap", type=float, default=0.06, help="seconds between turns")
    add_list_arg(parser, "--mode", ["embedded", "distributed"])
    args = parser.parse_args()
    rows = collect(main, args)
    merge_results("turn", rows, KEY, {})
    print_table(
        rows,
        [
            ("mode", "mode"),
            ("store", "store"),
            ("turns", "turns"),
            ("echo_p50_ms", "echo p50 ms"),
            ("echo_p99_ms", "echo p99"),
            ("first_delta_p50_ms", "1st delta p50"),
            ("first_delta_p99_ms", "p99"),
            ("turn_p50_ms", "turn p50"),
            ("turn_p99_ms", "turn p99"),
            ("queued_events", "queued"),
        ],
    )


if __name__ == "__main__":
    cli()
