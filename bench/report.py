"""Markdown tables of the latest results, written into bench/README.md.

    python -m bench.report            # rewrites the part between the results markers
    python -m bench.report --print    # prints it instead

Reads bench/results/*.json (and the profile summaries); every figure in the
README's results section comes from there.
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

from .common import BENCH_DIR, RESULTS_DIR

START, END = "<!-- results:start -->", "<!-- results:end -->"


def load(name: str) -> dict[str, Any] | None:
    path = RESULTS_DIR / f"{name}.json"
    if not path.exists():
        return None
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


def f(v: Any, digits: int = 2) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        a = abs(v)
        if a >= 1000:
            return f"{v:,.0f}"
        if a >= 100:
            return f"{v:.0f}"
        if a >= 10:
            return f"{v:.1f}"
        return f"{v:.{digits}f}"
    return str(v)


def x(v: float | None) -> str:
    return "–" if v is None else f"{f(v)}×"


def div(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0 or a != a or b != b:
        return None
    return a / b


def table(head: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(head) + " |", "|" + "|".join(" --- " for _ in head) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


#: What a row written before a field existed measured.
DEFAULTS: dict[str, Any] = {"client": "websockets", "per_session": 5, "messages": 0, "chars": 0}


def pick(rows: list[dict[str, Any]], **kw: Any) -> dict[str, Any] | None:
    for r in rows:
        if all(r.get(k, DEFAULTS.get(k)) == v for k, v in kw.items()):
            return r
    return None


def gc_cell(row: dict[str, Any]) -> str:
    """The server's full garbage collections during the stream, and the loop time they took."""
    n = row.get("gc_full_collections")
    return "" if n is None else f"{n} ({f(row.get('gc_full_ms'))})"


def streaming_table(rows: list[dict[str, Any]], keys: list[str], client: str) -> str:
    ours_rows = [r for r in rows if r["impl"] == "ours" and r.get("client", "websockets") == client]
    ours_rows.sort(key=lambda r: (r["mode"] != "embedded", *(r[k] for k in keys)))
    with_floor = any(r["impl"] == "floor" for r in rows)  # the floor runs in the fan-out only
    body = []
    for o in ours_rows:
        sel = {k: o[k] for k in keys}
        p = pick(rows, impl="peer", mode=o["mode"], client=client, **sel)
        b = pick(rows, impl="baseline", mode="embedded", client=client, **sel)
        b = b if o["mode"] == "embedded" else None
        # one process, the reference of both modes
        fl = pick(rows, impl="floor", mode="embedded", client=client, **sel)

        def miss(r: dict[str, Any] | None) -> str:
            if r is None:
                return ""
            m = r.get("missing_chunks") or 0
            return f" ({m:,} missing)" if m else ""

        body.append(
            [
                o["mode"],
                *(f(o[k]) for k in keys),
                f(o["p50_ms"]),
                f(o["p99_ms"]) + miss(o),
                f(o["max_ms"]),
                f(o.get("stream_s")) + (f" / {f(p.get('stream_s'))}" if p else ""),
                f(o.get("standin_late_p99_ms")),
                gc_cell(o),
                f(p and p["p99_ms"]) + miss(p),
                f(b and b["p99_ms"]) + miss(b),
                x(div(p and p["p99_ms"], o["p99_ms"])),
                f(o["events_per_s"]),
                f(o.get("chunks_per_delta")),
                f(p and p["events_per_s"]),
                f(o.get("cpu_us_per_chunk")),
                f(o["cpu_us_per_event"]),
                f(p and p.get("cpu_us_per_chunk")),
                f(b and b.get("cpu_us_per_chunk")),
                x(div(p and p.get("cpu_us_per_chunk"), o.get("cpu_us_per_chunk"))),
                x(div(b and b.get("cpu_us_per_chunk"), o.get("cpu_us_per_chunk"))),
                *(
                    [
                        f(fl and fl.get("cpu_us_per_chunk")),
                        x(div(fl and fl.get("cpu_us_per_chunk"), o.get("cpu_us_per_chunk"))),
                    ]
                    if with_floor
                    else []
                ),
                f(o.get("client_cpu_us_per_chunk")),
                f"{o['dropped']}"
                + (f" / {p['dropped']}" if p else "")
                + (f" / {b['dropped']}" if b else ""),
                f(o.get("other_cpu_cores")),
            ]
        )
    head = [
        "mode",
        *keys,
        "p50 ms",
        "**p99 ms**",
        "max ms",
        "done s ours/peer",
        "stand-in late p99 ms",
        "full GCs (ms)",
        "peer p99",
        "base p99",
        "p99 peer/ours",
        "events/s",
        "chunks/delta",
        "peer events/s",
        "**CPU µs/chunk**",
        "CPU µs/event",
        "peer µs/chunk",
        "base µs/chunk",
        "CPU peer/ours",
        "CPU base/ours",
        *(["floor µs/chunk", "CPU floor/ours"] if with_floor else []),
        "client µs/chunk",
        "dropped ours/peer/base",
        "other load (cores)",
    ]
    return table(head, body)


def targets(
    fan: list[dict[str, Any]],
    many: list[dict[str, Any]],
    turn: list[dict[str, Any]],
    seed: list[dict[str, Any]],
    sock: list[dict[str, Any]],
) -> str:
    def g(rows: list[dict[str, Any]], key: str, **kw: Any) -> float | None:
        r = pick(rows, **kw)
        return None if r is None else r.get(key)

    # The verdicts read the rows of the default client (the tables above), not the
    # lean client's, which leaves the servers more of the 2 cores.
    fan = [r for r in fan if r.get("client", "websockets") == "websockets"]
    o100 = dict(impl="ours", viewers=100, rate=100.0)
    o1k = dict(impl="ours", viewers=100, rate=1000.0)
    m = "cpu_us_per_chunk"
    p100e = g(fan, m, impl="peer", mode="embedded", viewers=100, rate=100.0)
    p100d = g(fan, m, impl="peer", mode="distributed", viewers=100, rate=100.0)
    p1k = g(fan, m, impl="peer", mode="embedded", viewers=100, rate=1000.0)
    c100e = g(fan, m, mode="embedded", **o100)
    c100d = g(fan, m, mode="distributed", **o100)
    c1k = g(fan, m, mode="embedded", **o1k)
    c1k_ev = g(fan, "cpu_us_per_event", mode="embedded", **o1k)
    dropped = sum(
        (r.get("dropped") or 0) + (r.get("connect_failed") or 0)
        for r in fan + many
        if r["impl"] == "ours"
    )
    sock10k = pick(sock, impl="ours", sockets=10000, per_session=5, messages=0)
    checks: list[tuple[str, str, float | int | None, str, bool | None]] = []

    def add(
        name: str, measured: float | int | None, want: str, ok: bool | None, unit: str = ""
    ) -> None:
        checks.append(
            (name, f(measured) + unit if measured is not None else "not run", measured, want, ok)
        )

    def lt(v: float | None, lim: float) -> bool | None:
        return None if v is None else v < lim

    def ge(v: float | None, lim: float) -> bool | None:
        return None if v is None else v >= lim

    v = g(fan, "p99_ms", mode="embedded", **o100)
    add("100 viewers @ 100 chunks/s, 1 process: p99", v, "< 5 ms", lt(v, 5), " ms")
    v = g(fan, "p99_ms", mode="distributed", **o100)
    add("100 viewers @ 100 chunks/s, 2 processes + Redis: p99", v, "< 10 ms", lt(v, 10), " ms")
    v = div(p100e, c100e)
    add("… server CPU/chunk, peer ÷ ours (1 process)", v, "≥ 3×", ge(v, 3), "×")
    v = div(p100d, c100d)
    add("… server CPU/chunk, peer ÷ ours (2 processes)", v, "≥ 3×", ge(v, 3), "×")
    floor100 = g(fan, m, impl="floor", mode="embedded", viewers=100, rate=100.0)
    add(
        "… the floor's CPU/chunk: frames written straight to the transports, 1 process",
        floor100,
        "no target (reference: mostly the kernel's work per write)",
        None,
        " µs",
    )
    v = div(p100d, floor100)
    add(
        "… peer (2 processes) ÷ floor: about the most the ratio above could be",
        v,
        "no target (a server reading the model more cheaply than the floor gains a little)",
        None,
        "×",
    )
    v = g(fan, "p99_ms", mode="embedded", **o1k)
    add("100 viewers @ 1,000 chunks/s: p99", v, "< 50 ms", lt(v, 50), " ms")
    add("… server CPU per delivered chunk", c1k, "≤ 3 µs", None if c1k is None else c1k <= 3, " µs")
    # The issue counts the model's events (its coalesced reference: "0.6-2 µs per
    # delivered event" could not be per frame), so the frame row has no verdict.
    add(
        "… server CPU per frame sent (a frame carries the chunks merged into it)",
        c1k_ev,
        "no target: the unit above is the model's event",
        None,
        " µs",
    )
    v = div(p1k, c1k)
    add("… server CPU/chunk, peer ÷ ours", v, "≥ 10×", ge(v, 10), "×")
    v = g(fan, "p99_ms", impl="ours", mode="embedded", viewers=1000, rate=100.0)
    add("1,000 viewers @ 100 chunks/s: p99", v, "< 100 ms", lt(v, 100), " ms")
    add(
        "sockets refused or dropped by the server (all fan-out and many-sessions runs)",
        dropped,
        "0",
        dropped == 0,
    )
    missing = sum(r.get("missing_chunks") or 0 for r in fan + many if r["impl"] == "ours")
    add(
        "chunks never delivered (all fan-out and many-sessions runs, within the deadline)",
        missing,
        "0",
        missing == 0,
    )
    v = g(turn, "echo_p50_ms", mode="distributed", gap_s=0.06)
    add(
        "turn overhead, PostgreSQL + Redis: message → echo p50 (a turn every 60 ms)",
        v,
        "< 2 ms",
        lt(v, 2),
        " ms",
    )
    v = g(turn, "floor_p50_ms", mode="distributed", gap_s=0.06)
    add(
        "… its floor: the same hops with no server code, same run and pace",
        v,
        "no target (physical: what the echo cannot go under)",
        None,
        " ms",
    )
    v = g(turn, "echo_p50_ms", mode="distributed", gap_s=0.0)
    add(
        "… the echo p50 with turns back to back (the disk never idles)",
        v,
        "no target (the verdict above is the idle case)",
        None,
        " ms",
    )
    v = g(turn, "first_delta_p50_ms", mode="distributed", gap_s=0.06)
    add(
        "turn overhead, PostgreSQL + Redis: message → first delta p50",
        v,
        "no target (the issue's turn target is the echo)",
        None,
        " ms",
    )
    for mode in ("embedded", "distributed"):
        v = g(seed, "p50_ms", mode=mode, what="create")
        add(f"session create p50 ({mode})", v, "< 5 ms", lt(v, 5), " ms")
        v = g(seed, "p50_ms", mode=mode, what="load")
        add(f"session load p50 ({mode})", v, "< 1 ms", lt(v, 1), " ms")
    v = None if sock10k is None else sock10k["kb_per_socket"]
    add(
        "memory per idle socket (10,000 sockets)",
        v,
        "≤ 30 KB",
        None if v is None else v <= 30,
        " KB",
    )
    ok10k = (
        None
        if sock10k is None
        else (sock10k.get("open_after_hold") == 10000 and not sock10k.get("connect_failed"))
    )
    add(
        "10,000 idle sockets on one process (open after the hold)",
        None if sock10k is None else int(sock10k.get("open_after_hold") or 0),
        "10,000",
        ok10k,
    )
    body = [
        [name, shown, want, "–" if ok is None else ("**met**" if ok else "**missed**")]
        for name, shown, _, want, ok in checks
    ]
    return table(["target", "measured", "wanted", ""], body)


def _ms(v: float | None) -> str:
    return "–" if v is None else f(v) + " ms"


def _floor_parts(r: dict[str, Any]) -> str:
    names = [
        ("floor_ws_ping_p50_ms", "websocket ping"),
        ("floor_redis_p50_ms", "two Redis round trips"),
        ("floor_pg_insert_p50_ms", "a durable PostgreSQL insert"),
    ]
    shown = [f"{label} {_ms(r[key])}" for key, label in names if r.get(key) is not None]
    gap = "" if r.get("gap_s") is None else f" ({r['gap_s'] * 1000:g} ms pause)"
    return f"{r['mode']}{gap}: " + (", ".join(shown) if shown else "not measured")


def profiles() -> str:
    out = []
    for path in sorted(RESULTS_DIR.glob("profile-*.txt")):
        lines = path.read_text().splitlines()
        cmd = lines[0]
        selfs = []
        in_self = False
        for line in lines:
            if line.startswith("self time"):
                in_self = True
                continue
            if in_self:
                if not line.strip():
                    break
                selfs.append(line.strip())
        svg = path.with_suffix(".svg").name
        out.append(
            f"**{path.stem}** (`{cmd}`; flame graph [`results/{svg}`](results/{svg}), "
            f"full summary [`results/{path.name}`](results/{path.name})), top self time:\n"
        )
        out.append("```text\n" + "\n".join(selfs[:12]) + "\n```\n")
    return "\n".join(out)


def build() -> str:
    fan_doc, many_doc = load("fanout"), load("many_sessions")
    turn_doc, seed_doc = load("turn"), load("seed")
    sock_doc, tr_doc, sdk_doc = load("sockets"), load("transcript"), load("sdk")
    docs = [d for d in (fan_doc, many_doc, turn_doc, seed_doc, sock_doc, tr_doc, sdk_doc) if d]
    if not docs:
        return "No results yet: run the scenarios.\n"
    fan = fan_doc["rows"] if fan_doc else []
    many = many_doc["rows"] if many_doc else []
    turn = turn_doc["rows"] if turn_doc else []
    turn.sort(key=lambda r: (r["mode"] != "embedded", -(r.get("gap_s") or 0)))
    seed = seed_doc["rows"] if seed_doc else []
    sock = sock_doc["rows"] if sock_doc else []
    tr = tr_doc["rows"] if tr_doc else []
    sdk = sdk_doc["rows"] if sdk_doc else []
    parts = ["### Machine and versions\n"]
    mrows = []
    for d in docs:
        m, v = d["machine"], d["versions"]
        hashes = sorted({str(r.get("code_hash")) for r in d["rows"]})
        changed = any(r.get("code_changed_during_run") for r in d["rows"])
        mrows.append(
            [
                d["scenario"],
                str(m["nproc"]),
                m["python"],
                m["date"],
                f"`{m['commit']}`",
                ", ".join(f"`{h}`" for h in hashes) + (" (changed mid-run)" if changed else ""),
                v.get("python-socketio", "-"),
                v.get("uvicorn", "-"),
                v.get("websockets", "-"),
            ]
        )
    parts.append(
        table(
            [
                "scenario",
                "nproc",
                "python",
                "date (last write)",
                "git HEAD",
                "server code hash",
                "python-socketio",
                "uvicorn",
                "websockets",
            ],
            mrows,
        )
    )
    parts.append(
        "\n`git HEAD` is the checkout's commit; other engineers edit `realtime_agent/` "
        "at the same time, so the hash of the server code actually measured "
        "(`bench.common.code_hash`, over `realtime_agent/**/*.py|lua|sql`) is kept "
        "with every row."
    )
    parts.append("\n### Targets\n")
    parts.append(targets(fan, many, turn, seed, sock))
    if fan:
        parts.append("\n### Fan-out (one session, N viewers)\n")
        parts.append(
            "Latency: the stand-in writing a chunk → a socket receiving it. CPU µs/chunk: "
            "server processes' on-CPU time ÷ chunks received by all sockets (a chunk "
            "delivered to one socket); CPU µs/event: the same ÷ frames received "
            "(realtime-agent merges chunks that come within 5 ms into one delta, "
            "`RA_DELTA_COALESCE_MS`, so it sends fewer, larger events; the peer and the "
            "baseline send one event per chunk, so for them both figures are equal). "
            '"peer" = '
            'python-socketio + AsyncRedisManager, "base" = bare Starlette loop '
            "(one process, so no distributed row). Ratios > 1× mean realtime-agent is "
            'better. "floor" = the bare loop writing each chunk\'s frame straight to the '
            "transports (`bare_server --direct`, one process): the model's stream read "
            "through the SDK's models, one encoding per chunk and the kernel's work per "
            "write, nothing else; both modes are shown against its one-process figure "
            '("CPU floor/ours": 1× would be no cost of our own beyond it; ours reads the '
            "model's wire form, so with few viewers it can be above 1×). "
            '"other load" = CPU the rest of the machine used during the run '
            "(stand-in, Redis, PostgreSQL, other users), in cores of the 2. "
            '"done s": from the start to the last frame any socket received (the '
            'stand-in streams for 2 s); "stand-in late": how late it wrote its chunks '
            "after their scheduled time (p99), its own wake-ups plus any wait for a "
            "server that reads slowly.\n"
        )
        parts.append(streaming_table(fan, ["rate", "viewers"], "websockets"))
        if any(r.get("client") == "raw" for r in fan):
            parts.append(
                "\nThe same with the lean client (`--client raw`, bench/rawws.py), "
                "which leaves more of the 2 cores to the servers:\n"
            )
            parts.append(streaming_table(fan, ["rate", "viewers"], "raw"))
        parts.append("\n![fan-out plot](results/fanout.png)\n")
    if many:
        parts.append("\n### Many sessions (1 owner + 4 viewers each, all streaming at once)\n")
        parts.append(
            '"done s": from the moment every owner sent its message to the last frame '
            "any socket received, so it also counts starting 200 turns at once; each "
            'stream lasts chunks ÷ rate (2 s) at the stand-in. "stand-in late": how '
            "late the stand-in wrote its chunks after their scheduled time (p99): when "
            "it is small, no chunk waited at the source before its stamp, and p50/p99 "
            "hold the whole delay from the model to the socket.\n"
        )
        parts.append(streaming_table(many, ["sessions", "rate"], "websockets"))
        if any(r.get("client") == "raw" for r in many):
            parts.append("\nWith `--client raw`:\n")
            parts.append(streaming_table(many, ["sessions", "rate"], "raw"))
    if turn:
        parts.append("\n### Turn overhead (zero-latency model)\n")
        parts.append(
            table(
                [
                    "mode",
                    "pause",
                    "store",
                    "turns",
                    "message → echo p50",
                    "p99",
                    "message → first delta p50",
                    "p99",
                    "whole turn p50",
                    "p99",
                    "floor p50",
                    "echo − floor p50",
                ],
                [
                    [
                        r["mode"],
                        "–" if r.get("gap_s") is None else f"{r['gap_s'] * 1000:g} ms",
                        r["store"],
                        f(r["turns"]),
                        f(r["echo_p50_ms"]) + " ms",
                        f(r["echo_p99_ms"]) + " ms",
                        f(r["first_delta_p50_ms"]) + " ms",
                        f(r["first_delta_p99_ms"]) + " ms",
                        f(r["turn_p50_ms"]) + " ms",
                        f(r["turn_p99_ms"]) + " ms",
                        _ms(r.get("floor_p50_ms")),
                        _ms(r.get("echo_over_floor_p50_ms")),
                    ]
                    for r in turn
                ],
            )
        )
        parts.append(
            "\nThe floor is the echo's hops made back to back by the bench client, with no"
            " server code between them, after the same pause as each turn (see"
            " `bench/turn.py`): " + "; ".join(_floor_parts(r) for r in turn) + ".\n"
        )
    if seed:
        parts.append("\n### Seed baselines (REST, connect)\n")
        parts.append(
            table(
                ["mode", "what", "n", "p50", "p99"],
                [
                    [
                        r["mode"],
                        r["what"],
                        f(r["n"]),
                        f(r["p50_ms"]) + " ms",
                        f(r["p99_ms"]) + " ms",
                    ]
                    for r in seed
                ],
            )
        )
    if sock:
        parts.append("\n### Idle sockets (one server process)\n")
        body = []
        shape = ("messages", "chars", "per_session", "sockets")
        for kept, chars, each, level in sorted(
            {tuple(r.get(k, DEFAULTS.get(k)) for k in shape) for r in sock}
        ):
            o = pick(sock, impl="ours", sockets=level, per_session=each, messages=kept, chars=chars)
            # the peer and the baseline have no transcript: theirs is the row without one
            p = pick(sock, impl="peer", sockets=level, per_session=each, messages=0)
            b = pick(sock, impl="baseline", sockets=level, per_session=each, messages=0)
            if o is None:
                continue
            body.append(
                [
                    f(level),
                    f(each),
                    f"{f(kept)} ({f(chars)} chars)" if kept else "none",
                    f(o["kb_per_socket"]),
                    f(p and p["kb_per_socket"]),
                    f(b and b["kb_per_socket"]),
                    x(div(p and p["kb_per_socket"], o["kb_per_socket"])),
                    f(o["rss_mb"]) + " MB",
                    f(o["connect_per_s"]),
                    f(p and p["connect_per_s"]),
                    f(b and b["connect_per_s"]),
                    f(o.get("server_cpu_us_per_connect")),
                    f(p and p.get("server_cpu_us_per_connect")),
                    f(b and b.get("server_cpu_us_per_connect")),
                    f"{o.get('open_after_hold')} open, {o.get('connect_failed')} failed, "
                    f"{o.get('dropped')} dropped",
                ]
            )
        parts.append(
            table(
                [
                    "sockets",
                    "per session",
                    "transcript (messages)",
                    "**KB/socket**",
                    "peer KB",
                    "base KB",
                    "KB peer/ours",
                    "server RSS",
                    "connects/s",
                    "peer",
                    "base",
                    "server µs/connect",
                    "peer",
                    "base",
                    "ours after the hold",
                ],
                body,
            )
        )
    if tr:
        parts.append("\n### Transcript (messages/s while sessions stream)\n")
        parts.append(
            table(
                [
                    "mode",
                    "store",
                    "sessions",
                    "stream chunks/s each",
                    "on_busy",
                    "**messages/s**",
                    "echo p50",
                    "echo p99",
                    "server cores",
                    "errors",
                    "dropped",
                ],
                [
                    [
                        r["mode"],
                        r["store"],
                        f(r["sessions"]),
                        f(r["stream_rate"]),
                        r["on_busy"],
                        f(r["messages_per_s"]),
                        f(r["echo_p50_ms"]) + " ms",
                        f(r["echo_p99_ms"]) + " ms",
                        f(r["server_cpu_cores"]),
                        json.dumps(r["errors"]) if r["errors"] else "none",
                        f(r["dropped"]),
                    ]
                    for r in tr
                ],
            )
        )
    if sdk:
        parts.append("\n### The SDK's HTTP transport (reading the model's stream)\n")
        parts.append(
            table(
                [
                    "transport",
                    "events read as",
                    "chunks/s (0: at once)",
                    "events",
                    "**CPU µs/event**",
                    "short call p50",
                    "p99",
                ],
                [
                    [
                        r["transport"],
                        {"models": "SDK models"}.get(r.get("reader", ""), "wire form (ours)"),
                        f(r.get("rate", 0.0)),
                        f(r["events"]),
                        f(r["cpu_us_per_event"]),
                        f(r["call_p50_ms"]) + " ms",
                        f(r["call_p99_ms"]) + " ms",
                    ]
                    for r in sdk
                ],
            )
        )
    prof = profiles()
    if prof:
        parts.append("\n### Profiles (py-spy)\n")
        parts.append(prof)
    return "\n".join(parts) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--print", action="store_true")
    args = parser.parse_args()
    text = build()
    if args.print:
        print(text)
        return
    readme = BENCH_DIR / "README.md"
    doc = readme.read_text()
    if START not in doc or END not in doc:
        raise SystemExit(f"{readme} has no {START} ... {END} markers")
    head, _, rest = doc.partition(START)
    _, _, tail = rest.partition(END)
    readme.write_text(head + START + "\n" + text + END + tail)
    print(f"wrote {readme}")


if __name__ == "__main__":
    main()
