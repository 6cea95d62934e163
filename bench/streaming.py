"""One streaming measurement: rooms of sockets, the owners start, everyone receives.

Used by the fan-out scenario (one room, N viewers) and the many-sessions
scenario (200 rooms of 1 owner + 4 viewers).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from .clients import Clients, split_round_robin
from .common import (
    RESULTS_DIR,
    Deployment,
    Room,
    collect,
    gc_during,
    log,
    machine,
    machine_busy_seconds,
    percentiles,
    proc_cpu_seconds,
    proc_cpu_split,
    server_gc,
    standin_stats,
    start_content,
    versions,
    wait_quiet,
)

KIND = {"ours": "ra", "peer": "sio", "baseline": "bare", "floor": "bare"}


def socket_specs(
    dep: Deployment, rooms: list[tuple[Room, int]], start: str
) -> list[dict[str, Any]]:
    """The owner of each room on the first process, its viewers spread over all processes."""
    kind = KIND[dep.impl]
    specs = []
    for room, viewers in rooms:
        specs.append(
            {
                "kind": kind,
                "url": room.owner_urls[0],
                "room": room.key,
                "owner": True,
                "start": start,
            }
        )
        for i in range(viewers):
            url = room.viewer_urls[i % len(room.viewer_urls)]
            specs.append(
                {"kind": kind, "url": url, "room": room.key, "owner": False, "start": None}
            )
    return specs


async def measure_stream(
    dep: Deployment,
    rooms: list[tuple[Room, int]],
    *,
    chunks: int,
    rate: float,
    pad: int = 0,
    client_procs: int = 2,
    timeout: float = 60.0,
    settle: float = 0.5,
    client: str = "websockets",
    quiet: tuple[float, float] = (0.4, 10.0),
    on_go: Callable[[], Awaitable[None]] | None = None,
) -> dict[str, Any]:
    """Connect every socket, let the machine settle, then stream and measure.

    ``on_go`` is awaited once all sockets are connected, just before the
    owners send (the profiler starts there, so it samples the streaming only).
    """
    specs = socket_specs(dep, rooms, start_content(chunks, rate, pad))
    for spec in specs:
        spec["client"] = client
    client_procs = max(1, min(client_procs, len(specs)))
    # the rooms' sockets are interleaved so each process holds a share of every room
    per_proc = split_round_robin(specs, client_procs)
    clients = Clients(client_procs)
    try:
        conn = await clients.connect(per_proc)
        if conn["failed"]:
            log(f"{conn['failed']} sockets failed to connect: {conn['failures']}")
        await asyncio.sleep(settle)  # presence frames of the joins, connection set-up
        load_before, waited = await wait_quiet(*quiet)
        gc0 = await server_gc(dep)  # full collections from here (they stop the loop)
        await standin_stats(dep.model_url)  # its lateness counts from here
        if on_go is not None:
            await on_go()
        cpu0, busy0, wall0 = (
            [(proc_cpu_seconds(pid), proc_cpu_split(pid)) for pid in dep.pids],
            machine_busy_seconds(),
            time.perf_counter(),
        )
        res = await clients.go({"deadline": timeout})
        cpu1, busy1, wall1 = (
            [(proc_cpu_seconds(pid), proc_cpu_split(pid)) for pid in dep.pids],
            machine_busy_seconds(),
            time.perf_counter(),
        )
        late = await standin_stats(dep.model_url)
        gc1 = await server_gc(dep)
    finally:
        await clients.close()
    lat = res["lat_us"]
    p50, p99, p100 = percentiles(lat, (50, 99, 100))
    frames = res["frames"]
    span_s = max(1e-9, (res["last_ns"] - res["t_go"]) / 1e9) if res["last_ns"] else float("nan")
    # (user, system) seconds of each server process during the stream: the exact
    # on-CPU time, split by the shares of its clock-tick counts
    used = [
        _split(ran1 - ran0, u1 - u0, s1 - s0)
        for (ran0, (u0, s0)), (ran1, (u1, s1)) in zip(cpu0, cpu1, strict=True)
    ]
    server_sys = sum(s for _, s in used)
    server_cpu = sum(u for u, _ in used) + server_sys
    expected = chunks * conn["connected"]
    return {
        "impl": dep.impl,
        "mode": dep.mode,
        "server_processes": len(dep.procs),
        "rooms": len(rooms),
        "sockets": conn["connected"],
        "connect_failed": conn["failed"],
        "chunks": chunks,
        "rate": rate,
        "p50_ms": p50 / 1000,
        "p99_ms": p99 / 1000,
        "max_ms": p100 / 1000,
        "chunks_received": len(lat),
        "chunks_expected": expected,
        "missing_chunks": expected - len(lat),
        "delivered_events": frames,
        "deltas": res["deltas"],
        "events_per_s": frames / span_s,
        "stream_s": span_s,
        "standin_late_p99_ms": late.get("late_p99_ms"),
        "standin_late_max_ms": late.get("late_max_ms"),
        # the server's full garbage collections during the stream: each stops its loop
        **gc_during(gc0, gc1),
        "server_cpu_s": server_cpu,
        "server_sys_share": server_sys / server_cpu if server_cpu else None,
        "cpu_us_per_event": server_cpu * 1e6 / frames if frames else None,
        "client_cpu_s": res["cpu_s"],
        "client_cpu_us_per_event": res["cpu_s"] * 1e6 / frames if frames else None,
        # per chunk delivered to a socket: the same as per event when every chunk is its
        # own delta (the peer, the baseline); lower than per event when the server merges
        "chunks_per_delta": len(lat) / res["deltas"] if res["deltas"] else None,
        "cpu_us_per_chunk": server_cpu * 1e6 / len(lat) if len(lat) else None,
        "client_cpu_us_per_chunk": res["cpu_s"] * 1e6 / len(lat) if len(lat) else None,
        # user and system CPU of each server process per chunk the model streamed (the
        # first process runs the turn): where a distributed deployment spends its time
        "proc_cpu_us_per_model_chunk": [
            {"user": u * 1e6 / chunks, "sys": s * 1e6 / chunks} for u, s in used
        ],
        "client_processes": client_procs,
        "client": client,
        # everything else the machine ran meanwhile (stand-in, Redis, PostgreSQL, other
        # users of the machine), in cores: a noise indicator
        "load_before_cores": load_before,
        "quiet_wait_s": waited,
        "other_cpu_cores": max(0.0, (busy1 - busy0) - server_cpu - res["cpu_s"]) / (wall1 - wall0),
        "dropped": res["dropped"],
        "close_codes": res["close_codes"],
        "incomplete": res["incomplete"],
        "errors": res["errors"],
    }


def _split(ran: float, user_ticks: float, sys_ticks: float) -> tuple[float, float]:
    """``ran`` seconds as (user, system), in the proportion the tick counts show."""
    ticks = user_ticks + sys_ticks
    user = ran * user_ticks / ticks if ticks else ran
    return user, ran - user


def run_scenario(
    name: str,
    args: argparse.Namespace,
    main: Callable[[argparse.Namespace], Awaitable[list[dict[str, Any]]]],
    key: tuple[str, ...],
) -> list[dict[str, Any]]:
    """A scenario's command: run ``main(args)`` and merge the rows into
    ``bench/results/<name>.json``; the rows, for the scenario's own table."""
    rows = collect(main, args)
    merge_results(name, rows, key, {})
    return rows


def merge_results(
    name: str, rows: list[dict[str, Any]], key: tuple[str, ...], meta: dict[str, Any]
) -> Path:
    """Write ``bench/results/<name>.json``, replacing earlier rows with the same key."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    old: list[dict[str, Any]] = []
    if path.exists():
        try:
            old = json.loads(path.read_text()).get("rows", [])
        except (OSError, ValueError):
            old = []
    from .common import START_CODE_HASH, code_hash, log

    now_hash = code_hash()
    for r in rows:
        r.setdefault("code_hash", START_CODE_HASH)
        if now_hash != START_CODE_HASH:
            r["code_changed_during_run"] = True
    if now_hash != START_CODE_HASH:
        log(f"warning: realtime_agent/ changed during this run ({START_CODE_HASH} -> {now_hash})")
    new_keys = {tuple(r.get(k) for k in key) for r in rows}
    kept = [r for r in old if tuple(r.get(k) for k in key) not in new_keys]
    doc = {
        "scenario": name,
        "machine": machine(),
        "versions": versions(),
        **meta,
        "rows": kept + rows,
    }
    path.write_text(json.dumps(doc, indent=1, default=str) + "\n")
    return path


def compare(
    rows: list[dict[str, Any]], key: tuple[str, ...], metrics: list[str]
) -> list[dict[str, Any]]:
    """One row per key: ours, peer, baseline and floor side by side, with peer/ours,
    baseline/ours and floor/ours."""
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in rows:
        k = tuple(r.get(f) for f in key)
        row = out.setdefault(k, dict(zip(key, k, strict=True)))
        for m in metrics:
            row[f"{m}:{r['impl']}"] = r.get(m)
        row.setdefault("code_hash", r.get("code_hash"))
    for row in out.values():
        for m in metrics:
            ours = row.get(f"{m}:ours")
            for other in ("peer", "baseline", "floor"):
                theirs = row.get(f"{m}:{other}")
                if ours and theirs and ours == ours and theirs == theirs and ours > 0:
                    row[f"{m}:{other}/ours"] = theirs / ours
    return list(out.values())


async def warm_up(dep: Deployment, turns: int = 2) -> None:
    """A few unmeasured streams first: imports, connections to the model, caches."""
    from .common import create_rooms

    for _ in range(turns):
        (room,) = await create_rooms(dep, 1)
        await measure_stream(
            dep,
            [(room, 2)],
            chunks=100,
            rate=0,
            client_procs=1,
            timeout=30,
            settle=0.1,
            quiet=(float("inf"), 0.0),
        )
