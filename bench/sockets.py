"""Sockets: memory per idle socket and connect rate, up to 10,000 sockets on one process.

    python -m bench.sockets [--levels 2000,10000] [--per-session 5] [--client-procs 4]
                            [--messages 0] [--chars 0] [--impl ours,peer,baseline]

One server process per implementation (its open-file limit raised with
``resource.setrlimit`` before it starts, like the client processes'). First
100 sockets are connected and kept (warm-up), and the server's VmRSS
(/proc/<pid>/status) read; then sockets are added up to each level and VmRSS
read again after a short settle: memory per idle socket = (RSS now - RSS
after warm-up) / sockets added. Connect rate = sockets added / wall time,
with 64 handshakes in flight per client process. Sockets are viewers of
sessions (rooms) of ``--per-session`` sockets each. After the last level the
sockets stay idle for ``--hold`` seconds and are counted: any closed by the
server is reported as dropped. ``--messages N`` first gives each of our
sessions a transcript of about N entries (user messages of ``--chars`` extra
characters, and the model's answers), so that memory per socket shows what a
viewer of a session with a history holds (the peer and the baseline have no
transcript). Rows go to bench/results/sockets.json.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from .clients import Clients, split_round_robin
from .common import (
    Deployment,
    add_list_arg,
    create_rooms,
    fill_transcript,
    log,
    over_deployments,
    parse_list,
    percentiles,
    print_table,
    proc_cpu_seconds,
    proc_rss_bytes,
)
from .streaming import KIND, compare, run_scenario

KEY = ("scenario", "impl", "mode", "per_session", "messages", "chars", "sockets")
WARM = 100


async def measure(dep: Any, args: argparse.Namespace) -> list[dict[str, Any]]:
    levels, per_session, client_procs = args.levels, args.per_session, args.client_procs
    hold, settle = args.hold, args.settle
    total = max(levels)
    rooms = await create_rooms(dep, (total + per_session - 1) // per_session)
    if args.messages and dep.impl == "ours":
        for room in rooms:
            await fill_transcript(room.owner_urls[0], args.messages, args.chars)
    kind = KIND[dep.impl]
    specs = []
    for i in range(total):
        room = rooms[i // per_session]
        specs.append(
            {
                "kind": kind,
                "url": room.viewer_urls[0],
                "room": room.key,
                "owner": False,
                "start": None,
            }
        )
    pid = dep.pids[0]
    clients = Clients(client_procs)
    rows = []
    try:
        await clients.connect(split_round_robin(specs[:WARM], client_procs))
        await asyncio.sleep(settle)
        rss0 = proc_rss_bytes(pid)
        have = WARM
        for level in levels:
            batch = specs[have:level]
            cpu0 = proc_cpu_seconds(pid)
            conn = await clients.connect(split_round_robin(batch, client_procs))
            cpu1 = proc_cpu_seconds(pid)
            await asyncio.sleep(settle)
            rss = proc_rss_bytes(pid)
            have = level
            p50, p99 = percentiles(conn["connect_ms"])
            row = {
                "sockets": level,
                "per_session": per_session,
                # only our sessions get a transcript
                "messages": args.messages if dep.impl == "ours" else 0,
                "chars": args.chars if dep.impl == "ours" else 0,
                "added": len(batch),
                "connect_failed": conn["failed"],
                "failures": conn["failures"],
                "connect_per_s": conn["connected"] / conn["wall_s"],
                "server_cpu_us_per_connect": (cpu1 - cpu0) * 1e6 / max(1, conn["connected"]),
                "connect_p50_ms": p50,
                "connect_p99_ms": p99,
                "rss_mb": rss / 2**20,
                "rss_warm_mb": rss0 / 2**20,
                "kb_per_socket": (rss - rss0) / 1024 / (level - WARM),
                "client_rss_mb": conn["client_rss"] / 2**20,
            }
            rows.append(row)
            log(
                f"  {dep.impl}: {level} sockets, {row['kb_per_socket']:.1f} KB each, "
                f"{row['connect_per_s']:.0f} connects/s, {conn['failed']} failed"
            )
        await asyncio.sleep(hold)
        status = await clients.status()
        for row in rows:
            row["open_after_hold"] = status["open"]
            row["dropped"] = status["dropped"]
            row["close_codes"] = status["close_codes"]
            row["connected"] = status["open"] + status["dropped"]
    finally:
        await clients.close(abort=True)
    return rows


async def main(args: argparse.Namespace) -> list[dict[str, Any]]:
    async def one(impl: str, mode: str, dep: Deployment) -> list[dict[str, Any]]:
        log(f"sockets {impl}: levels {args.levels}")
        return await measure(dep, args)

    return await over_deployments("sockets", [(impl, "embedded") for impl in args.impl], one)


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", type=parse_list, default=[2000, 10000])
    parser.add_argument("--per-session", type=int, default=5)
    parser.add_argument("--messages", type=int, default=0, help="transcript entries per session")
    parser.add_argument("--chars", type=int, default=0, help="extra characters per user message")
    parser.add_argument("--client-procs", type=int, default=4)
    parser.add_argument("--hold", type=float, default=2.0)
    parser.add_argument("--settle", type=float, default=0.5)
    add_list_arg(parser, "--impl", ["ours", "peer", "baseline"])
    rows = run_scenario("sockets", parser.parse_args(), main, KEY)
    table = compare(
        rows,
        ("sockets",),
        ["kb_per_socket", "connect_per_s", "dropped", "server_cpu_us_per_connect"],
    )
    print_table(
        table,
        [
            ("sockets", "sockets"),
            ("kb_per_socket:ours", "KB/socket"),
            ("kb_per_socket:peer", "peer"),
            ("kb_per_socket:baseline", "base"),
            ("kb_per_socket:peer/ours", "peer/ours"),
            ("connect_per_s:ours", "connects/s"),
            ("connect_per_s:peer", "peer"),
            ("connect_per_s:baseline", "base"),
            ("server_cpu_us_per_connect:ours", "CPU us/connect"),
            ("server_cpu_us_per_connect:peer", "peer"),
            ("server_cpu_us_per_connect:baseline", "base"),
            ("dropped:ours", "dropped"),
        ],
    )


if __name__ == "__main__":
    cli()
