"""Many sessions: 200 sessions of 1 owner + 4 viewers, all streaming at once.

    python -m bench.many_sessions [--sessions 200] [--viewers 4] [--rate 50] [--seconds 2]
                                  [--mode embedded,distributed] [--impl ours,peer,baseline]

Every owner sends its message at the same moment; the stand-in streams
``rate * seconds`` chunks to each session at ``rate`` chunks/s. The same
figures as the fan-out (latency from the model's chunk to each socket, owners
included; events/s; server CPU µs per delivered event; dropped sockets).
Rows go to bench/results/many_sessions.json.
"""

from __future__ import annotations

import argparse
from typing import Any

from .common import (
    Deployment,
    add_list_arg,
    add_stream_args,
    create_rooms,
    log,
    over_deployments,
    print_table,
    stream_options,
)
from .streaming import compare, measure_stream, run_scenario, warm_up

KEY = ("scenario", "impl", "mode", "sessions", "viewers", "rate", "client")


async def main(args: argparse.Namespace) -> list[dict[str, Any]]:
    async def one(impl: str, mode: str, dep: Deployment) -> list[dict[str, Any]]:
        await warm_up(dep)
        rooms = await create_rooms(dep, args.sessions)
        chunks = max(1, int(args.rate * args.seconds))
        log(
            f"many sessions {mode} {impl}: {args.sessions} x (1 + {args.viewers}), "
            f"{args.rate:g} chunks/s, {chunks} chunks"
        )
        row = await measure_stream(
            dep,
            [(room, args.viewers) for room in rooms],
            chunks=chunks,
            rate=args.rate,
            settle=1.0,
            **stream_options(args),
        )
        row.update(sessions=args.sessions, viewers=args.viewers)
        return [row]

    pairs = [(impl, mode) for mode in args.mode for impl in args.impl]
    return await over_deployments("many_sessions", pairs, one)


def report(rows: list[dict[str, Any]]) -> None:
    metrics = [
        "p50_ms",
        "p99_ms",
        "max_ms",
        "events_per_s",
        "cpu_us_per_chunk",
        "dropped",
        "client_cpu_us_per_event",
        "missing_chunks",
    ]
    table = compare(rows, ("mode", "sessions", "viewers", "rate"), metrics)
    print_table(
        table,
        [
            ("mode", "mode"),
            ("sessions", "sessions"),
            ("rate", "chunks/s"),
            ("p50_ms:ours", "p50 ms"),
            ("p99_ms:ours", "p99 ms"),
            ("max_ms:ours", "max ms"),
            ("p99_ms:peer", "peer p99"),
            ("p99_ms:baseline", "base p99"),
            ("events_per_s:ours", "events/s"),
            ("events_per_s:peer", "peer ev/s"),
            ("cpu_us_per_chunk:ours", "CPU us/chunk"),
            ("cpu_us_per_chunk:peer", "peer"),
            ("cpu_us_per_chunk:baseline", "base"),
            ("cpu_us_per_chunk:peer/ours", "peer/ours"),
            ("dropped:ours", "dropped"),
            ("missing_chunks:ours", "missing"),
        ],
    )


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--viewers", type=int, default=4, help="viewers per session (+1 owner)")
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--seconds", type=float, default=2.0)
    add_list_arg(parser, "--mode", ["embedded"])
    add_stream_args(
        parser,
        timeout=20.0,
        timeout_help="seconds past the stream's length to wait for the last frame "
        "(a server that falls behind reports the chunks still missing)",
    )
    rows = run_scenario("many_sessions", parser.parse_args(), main, KEY)
    report(rows)


if __name__ == "__main__":
    cli()
