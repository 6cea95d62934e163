"""Profile realtime-agent during a fan-out or many-sessions run with py-spy.

    python -m bench.profile [--scenario fanout|many_sessions] [--viewers 100] [--rate 1000]
                            [--mode embedded|distributed] [--seconds 8] [--proc 0]

Runs the scenario (or ``--scenario turn``: turns back to back on one owner
socket, with the rate limit lifted) twice on one deployment while ``py-spy record`` samples
server process ``--proc`` (in distributed mode 0 runs the turn, 1 only fans
out what comes from Redis): once for the flame graph
(bench/results/profile-<scenario>-<mode>-<size>.svg), once for the raw
collapsed stacks, from which the functions taking the time are summed
(self time and inclusive time, % of the samples in which the server was
busy) into bench/results/profile-<scenario>-<mode>-<size>.txt and printed.
Needs ``pip install py-spy`` (a bench-only tool).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from .common import NO_RATE_LIMIT, RESULTS_DIR, create_rooms, deploy, log, run, standin_model
from .streaming import measure_stream, warm_up

FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def _short(frame: str) -> str:
    """``func (path/to/module.py:12)`` -> ``func (module.py)``: one name per function."""
    m = FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    path = m.group("file")
    parts = path.split("/")
    for anchor in ("realtime_agent", "site-packages", "python3.11"):
        if anchor in parts:
            path = "/".join(parts[parts.index(anchor) + 1 :])
            break
    else:
        path = parts[-1]
    return f"{m.group('func')} ({path})"


def summarize(raw: Path, top: int = 25) -> str:
    self_t: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [
            _short(f)
            for f in stack.split(";")
            if f and not f.startswith("process ") and not f.startswith("thread ")
        ]
        if not frames:
            continue
        total += n
        self_t[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
    out = [
        f"{total} samples of the busy server (py-spy, idle time excluded)",
        "",
        "self time (the function's own code):",
    ]
    for f, n in self_t.most_common(top):
        out.append(f"  {100 * n / total:5.1f}%  {f}")
    out += ["", "inclusive time (the function and what it calls):"]
    for f, n in incl.most_common(top + 15):
        out.append(f"  {100 * n / total:5.1f}%  {f}")
    return "\n".join(out) + "\n"


async def record(pid: int, seconds: float, out: Path, fmt: str) -> asyncio.subprocess.Process:
    pyspy = shutil.which("py-spy")
    if pyspy is None:
        raise SystemExit("py-spy is not installed: pip install py-spy")
    return await asyncio.create_subprocess_exec(
        pyspy,
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(int(seconds)),
        "--rate",
        "250",
        "--nonblocking",
        "--format",
        fmt,
        "-o",
        str(out),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )


async def main(args: argparse.Namespace) -> None:
    logdir = Path(tempfile.mkdtemp(prefix="ra-bench-"))
    size = {
        "fanout": f"{args.viewers}x{args.rate:g}",
        "many_sessions": f"{args.sessions}s{args.viewers}x{args.rate:g}",
        "turn": f"{args.turns}turns",
    }[args.scenario]
    stem = f"profile-{args.scenario}-{args.mode}-{size}" + (f"-p{args.proc}" if args.proc else "")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    svg, raw = RESULTS_DIR / f"{stem}.svg", logdir / f"{stem}.txt"
    chunks = int(args.rate * args.seconds)
    async with (
        standin_model(logdir) as url,
        deploy("ours", args.mode, url, logdir, extra_env=NO_RATE_LIMIT) as dep,
    ):
        await warm_up(dep)
        pid = dep.pids[args.proc]
        for fmt, out in (("flamegraph", svg), ("raw", raw)):
            if args.scenario == "turn":
                from .turn import measure_turns

                spy = await record(pid, args.seconds, out, fmt)
                t = await measure_turns(dep, args.turns, 0.0)
                _, err = await spy.communicate()
                log(
                    f"{fmt}: echo p50 {t['echo_p50_ms']:.2f} ms, first delta p50 "
                    f"{t['first_delta_p50_ms']:.2f} ms (under the profiler)"
                )
                continue
            n_rooms = 1 if args.scenario == "fanout" else args.sessions
            rooms = await create_rooms(dep, n_rooms)
            spies: list[asyncio.subprocess.Process] = []

            async def start_spy(fmt: str = fmt, out: Path = out, spies: list[Any] = spies) -> None:
                spies.append(await record(pid, args.seconds, out, fmt))

            row: dict[str, Any] = await measure_stream(
                dep,
                [(r, args.viewers) for r in rooms],
                chunks=chunks,
                rate=args.rate,
                client_procs=2,
                timeout=args.seconds + 60,
                client=args.client,
                on_go=start_spy,  # sample the streaming, not the connecting
            )
            (spy,) = spies
            _, err = await spy.communicate()
            if spy.returncode != 0:
                log(f"py-spy failed: {err.decode(errors='replace')[-500:]}")
            log(
                f"{fmt}: p99 {row['p99_ms']:.1f} ms, {row['cpu_us_per_chunk']:.2f} us/chunk, "
                f"{row['cpu_us_per_event']:.2f} us/event (under the profiler)"
            )
    text = summarize(raw)
    (RESULTS_DIR / f"{stem}.txt").write_text(
        f"python -m bench.profile {' '.join(args.argv)}\n\n" + text
    )
    print(text)
    log(f"flame graph: {svg}")


def cli() -> None:
    import sys

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="fanout", choices=["fanout", "many_sessions", "turn"])
    parser.add_argument(
        "--turns",
        type=int,
        default=300,
        help="turn scenario: turns back to back (no gap) while profiled",
    )
    parser.add_argument("--viewers", type=int, default=100)
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--mode", default="embedded", choices=["embedded", "distributed"])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--proc", type=int, default=0)
    parser.add_argument("--client", default="websockets", choices=["websockets", "raw"])
    args = parser.parse_args()
    args.argv = sys.argv[1:]
    run(main(args))


if __name__ == "__main__":
    cli()
