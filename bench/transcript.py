"""Transcript: user messages per second the store takes while 200 sessions stream.

    python -m bench.transcript [--sessions 200] [--seconds 5] [--rate 50]
                               [--on-busy steer] [--mode embedded,distributed]

Each session's owner starts a long streaming run (``rate`` chunks/s), and
from its first delta on sends user messages one after another: the next as
soon as the echo (``message`` event) of the previous one comes back, with
``on_busy: "steer"`` (stored in the running turn: one durable write and one
event each; ``--on-busy queue`` queues them instead). Messages/s = echoes
received within the ``--seconds`` window (after ``--warmup``) / window,
summed over the sessions; echo latency p50/p99 as well. Owners are spread
over the server processes. The per-socket frame rate limit and the queue
bound are lifted for this scenario (RA_RATE_LIMIT_PER_SECOND,
RA_RATE_LIMIT_BURST, RA_MAX_QUEUED_MESSAGES), since the point is the store's
rate, not the abuse limits. Rows go to bench/results/transcript.json.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from .clients import Clients, split_round_robin
from .common import (
    NO_RATE_LIMIT,
    Deployment,
    add_list_arg,
    cpu_of,
    create_rooms,
    log,
    over_deployments,
    percentiles,
    print_table,
    start_content,
)
from .streaming import run_scenario

KEY = ("scenario", "impl", "mode", "sessions", "on_busy", "stream_rate")
LIFT = {**NO_RATE_LIMIT, "RA_MAX_QUEUED_MESSAGES": "1000000"}


async def measure(dep: Any, args: argparse.Namespace) -> dict[str, Any]:
    rooms = await create_rooms(dep, args.sessions)
    chunks = int(args.rate * (args.warmup + args.seconds + 5))
    content = start_content(chunks, args.rate)
    specs = [
        {
            "kind": "ra",
            "url": room.owner_urls[i % len(room.owner_urls)],
            "room": room.key,
            "owner": True,
            "start": content,
            "chat": True,
        }
        for i, room in enumerate(rooms)
    ]
    clients = Clients(args.client_procs)
    try:
        await clients.connect(split_round_robin(specs, args.client_procs))
        await asyncio.sleep(0.5)
        cpu0, t0 = cpu_of(dep.pids), time.perf_counter()
        res = await clients.go(
            {
                "deadline": args.warmup + args.seconds + 30,
                "chat_warmup": args.warmup,
                "chat_seconds": args.seconds,
                "on_busy": args.on_busy,
            }
        )
        cpu1, t1 = cpu_of(dep.pids), time.perf_counter()
    finally:
        await clients.close()
    echo = [v / 1000 for v in res["echo_us"]]
    p50, p99 = percentiles(echo)
    return {
        "sessions": args.sessions,
        "on_busy": args.on_busy,
        "stream_rate": args.rate,
        "window_s": args.seconds,
        "messages_per_s": res["chat_in_window"] / args.seconds,
        "messages_in_window": res["chat_in_window"],
        "messages_echoed": res["chat_echoed"],
        "echo_p50_ms": p50,
        "echo_p99_ms": p99,
        "stream_chunks_received": len(res["lat_us"]),
        "server_cpu_cores": (cpu1 - cpu0) / (t1 - t0),
        "client_cpu_s": res["cpu_s"],
        "errors": res["errors"],
        "dropped": res["dropped"],
        "close_codes": res["close_codes"],
    }


async def main(args: argparse.Namespace) -> list[dict[str, Any]]:
    async def one(impl: str, mode: str, dep: Deployment) -> list[dict[str, Any]]:
        log(f"transcript {mode}: {args.sessions} sessions, {args.seconds:g}s window")
        row = await measure(dep, args)
        row["store"] = "PostgreSQL + Redis" if mode == "distributed" else "SQLite"
        return [row]

    pairs = [("ours", mode) for mode in args.mode]
    return await over_deployments("transcript", pairs, one, extra_env=LIFT)


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=5.0, help="measured window")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--rate", type=float, default=10.0, help="chunks/s of each stream")
    parser.add_argument("--on-busy", default="steer", choices=["steer", "queue"])
    parser.add_argument("--client-procs", type=int, default=2)
    add_list_arg(parser, "--mode", ["embedded", "distributed"])
    rows = run_scenario("transcript", parser.parse_args(), main, KEY)
    print_table(
        rows,
        [
            ("mode", "mode"),
            ("store", "store"),
            ("sessions", "sessions"),
            ("on_busy", "on_busy"),
            ("messages_per_s", "messages/s"),
            ("echo_p50_ms", "echo p50 ms"),
            ("echo_p99_ms", "echo p99"),
            ("server_cpu_cores", "server cores"),
            ("dropped", "dropped"),
        ],
    )


if __name__ == "__main__":
    cli()
