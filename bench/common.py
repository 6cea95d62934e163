"""Shared parts of the benchmarks: processes, deployments, measurements, output.

Everything runs on 127.0.0.1. Every process started here is ours, tracked by
its pid and stopped by it (SIGTERM, then SIGKILL after a timeout).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
REPO_DIR = BENCH_DIR.parent
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
PG_ADMIN_URL = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
CLK_TCK = os.sysconf("SC_CLK_TCK")
START_TIMEOUT = 30.0

# Settings the bench gives every realtime-agent server, whatever the scenario.
# They lift the per-address socket cap (every client of the bench comes from
# 127.0.0.1) and the cap on runs at once (200 sessions stream at once); the
# per-socket frame rate limit is lifted only where a scenario needs it.
#: Lifts the per-socket frame rate limit, for scenarios that measure the store or
#: the turn rather than the abuse limits.
NO_RATE_LIMIT = {"RA_RATE_LIMIT_PER_SECOND": "1000000", "RA_RATE_LIMIT_BURST": "1000000"}
RA_BENCH_ENV = {
    "RA_MAX_SOCKETS_PER_ADDRESS": "1000000",
    "RA_MAX_SOCKETS_PER_SESSION": "100000",
    "RA_MAX_CONCURRENT_RUNS": "10000",
    "RA_LLM_MAX_RETRIES": "0",
}


# --------------------------------------------------------------------------- basics


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def raise_nofile() -> int:
    """Raise this process's open-file limit to its hard limit; return the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def proc_cpu_split(pid: int) -> tuple[float, float]:
    """(utime, stime) of a process in seconds, from /proc/<pid>/stat (clock-tick resolution)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        raw = f.read()
    fields = raw[raw.rindex(b")") + 2 :].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def proc_cpu_seconds(pid: int) -> float:
    """Time a process's threads have run on a CPU, user and kernel, to the nanosecond:
    the sum of ``/proc/<pid>/task/*/schedstat``. (``/proc/<pid>/stat`` counts whole
    clock ticks, 10 ms: ±5 % of a 0.2 s total, which a 100-viewer stream at
    100 chunks/s for 2 s is.)"""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat", "rb") as f:
                total += int(f.read().split()[0])
        except FileNotFoundError:
            pass  # the thread ended meanwhile
    return total / 1e9


def proc_rss_bytes(pid: int) -> int:
    """VmRSS of a process, from /proc/<pid>/status."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def machine_busy_seconds() -> float:
    """CPU time all cores spent busy (not idle or iowait) since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


async def wait_quiet(threshold: float, max_wait: float, step: float = 0.5) -> tuple[float, float]:
    """Wait (at most ``max_wait`` s) until the machine is busy less than ``threshold`` cores
    over ``step`` s: other users of a shared machine disturb latencies. Returns the last
    load seen and the seconds waited."""
    t0 = time.perf_counter()
    load = float("nan")
    while True:
        b0, w0 = machine_busy_seconds(), time.perf_counter()
        await asyncio.sleep(step)
        load = (machine_busy_seconds() - b0) / (time.perf_counter() - w0)
        waited = time.perf_counter() - t0
        if load < threshold or waited >= max_wait:
            return load, waited


def self_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cpu_of(pids: Iterable[int]) -> float:
    return sum(proc_cpu_seconds(pid) for pid in pids)


def percentiles(samples: Sequence[float] | Any, qs: Sequence[float] = (50, 99)) -> list[float]:
    import numpy as np

    arr = np.asarray(samples, dtype=np.float64)
    if arr.size == 0:
        return [float("nan")] * len(qs)
    return [float(v) for v in np.percentile(arr, qs)]


def machine() -> dict[str, Any]:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO_DIR,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain", "--", "realtime_agent"],
                cwd=REPO_DIR,
                capture_output=True,
                text=True,
                check=False,
            ).stdout.strip()
        )
    except OSError:
        commit, dirty = "unknown", False
    return {
        "nproc": os.cpu_count(),
        "python": sys.version.split()[0],
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "commit": commit + ("+dirty" if dirty else ""),
        "server_code": str(REPO_DIR / "realtime_agent"),
        "code_hash": code_hash(),
    }


def code_hash() -> str:
    """A fingerprint of the server's code in this checkout (it may change between runs)."""
    import hashlib

    digest = hashlib.sha1()
    root = REPO_DIR / "realtime_agent"
    for path in sorted(root.rglob("*")):
        if path.suffix in (".py", ".lua", ".sql") and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:10]


START_CODE_HASH = code_hash()


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in (
        "realtime-agent",
        "python-socketio",
        "python-engineio",
        "uvicorn",
        "websockets",
        "starlette",
        "anthropic",
        "redis",
    ):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "-"
    return out


# --------------------------------------------------------------------------- output


def emit_json(row: Mapping[str, Any]) -> None:
    """One result as one JSON line on stdout."""
    sys.stdout.write(json.dumps(row, default=str) + "\n")
    sys.stdout.flush()


def save_results(name: str, rows: list[dict[str, Any]], meta: Mapping[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    doc = {"scenario": name, "machine": machine(), "versions": versions(), **meta, "rows": rows}
    path.write_text(json.dumps(doc, indent=1, default=str) + "\n")
    return path


def fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value != value:  # nan
            return "-"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) >= 100:
            return f"{value:.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def print_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, str]]) -> None:
    """A plain-text table on stderr (stdout carries the JSON lines)."""
    head = [title for _, title in columns]
    body = [[fmt(row.get(key)) for key, _ in columns] for row in rows]
    widths = [
        max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(head)
    ]
    out = sys.stderr
    out.write("  ".join(h.rjust(w) for h, w in zip(head, widths, strict=True)) + "\n")
    for r in body:
        out.write("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) + "\n")
    out.flush()


def ratio(peer: float | None, ours: float | None) -> float | None:
    if peer is None or ours is None or ours != ours or peer != peer or ours <= 0:
        return None
    return peer / ours


def log(msg: str) -> None:
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {msg}\n")
    sys.stderr.flush()


# --------------------------------------------------------------------------- tiny HTTP client


class Http:
    """A minimal HTTP/1.1 keep-alive client on one connection (little client-side overhead,
    so REST latencies are the server's). JSON bodies, Content-Length responses only."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._writer is None or self._writer.is_closing():
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        assert self._reader is not None
        return self._reader, self._writer

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, Any]:
        reader, writer = await self._connect()
        payload = b"" if body is None else orjson.dumps(body)
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        if body is not None:
            head.append("Content-Type: application/json")
        head.append(f"Content-Length: {len(payload)}")
        for k, v in (headers or {}).items():
            head.append(f"{k}: {v}")
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + payload)
        status_line = await reader.readline()
        if not status_line:
            self._writer = None
            raise ConnectionError("server closed the connection")
        status = int(status_line.split()[1])
        length = 0
        close = False
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            lname = name.strip().lower()
            if lname == "content-length":
                length = int(value.strip())
            elif lname == "connection" and value.strip().lower() == "close":
                close = True
        data = await reader.readexactly(length) if length else b""
        if close:
            writer.close()
            self._writer = None
        try:
            parsed = orjson.loads(data) if data else None
        except orjson.JSONDecodeError:
            parsed = data.decode(errors="replace")
        return status, parsed

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()
            self._writer = None


async def get_once(host: str, port: int, path: str) -> tuple[int, Any]:
    """One ``GET`` on a connection of its own, closed afterwards: (status, JSON body)."""
    http = Http(host, port)
    try:
        return await http.request("GET", path)
    finally:
        await http.close()


async def standin_stats(url: str) -> dict[str, Any]:
    """How late the stand-in at ``url`` wrote its paced chunks since the last call."""
    parts = urllib.parse.urlsplit(url)
    _, stats = await get_once(parts.hostname or "127.0.0.1", parts.port or 80, "/stats")
    return stats if isinstance(stats, dict) else {}


async def server_gc(dep: Deployment) -> list[dict[str, Any]]:
    """Each of our server processes' full garbage collections so far (``/healthz``
    ``gc``); empty for the peer and the baseline, which do not report them."""
    if dep.impl != "ours":
        return []
    found = []
    for port in dep.ports:
        status, body = await get_once("127.0.0.1", port, "/healthz")
        gc = body.get("gc") if status == 200 and isinstance(body, dict) else None
        found.append(gc if isinstance(gc, dict) else {})
    return found


def gc_during(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> dict[str, Any]:
    """The full collections between two :func:`server_gc` readings, all processes."""
    if not before:
        return {"gc_full_collections": None, "gc_full_ms": None}
    return {
        "gc_full_collections": sum(
            a.get("full_collections", 0) - b.get("full_collections", 0)
            for b, a in zip(before, after, strict=True)
        ),
        "gc_full_ms": sum(
            a.get("full_ms_total", 0.0) - b.get("full_ms_total", 0.0)
            for b, a in zip(before, after, strict=True)
        ),
    }


async def wait_http_ok(port: int, path: str, proc: subprocess.Popen[bytes], logfile: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited ({proc.returncode}):\n{tail(logfile)}")
        try:
            if (await get_once("127.0.0.1", port, path))[0] == 200:
                return
        except (OSError, ConnectionError, asyncio.IncompleteReadError, ValueError, IndexError):
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError(f"not ready after {START_TIMEOUT}s:\n{tail(logfile)}")


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --------------------------------------------------------------------------- processes


def _raise_nofile_in_child() -> None:
    raise_nofile()


@dataclass
class Proc:
    """A server subprocess of ours: command, environment, log file, pid."""

    name: str
    argv: list[str]
    env: dict[str, str]
    port: int
    health: str
    logdir: Path
    cwd: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def logfile(self) -> Path:
        return self.logdir / f"{self.name}.log"

    async def start(self) -> None:
        # Started before anything is measured, so blocking the loop here costs nothing.
        out = open(self.logfile, "ab")  # noqa: ASYNC230
        try:
            self.proc = subprocess.Popen(  # noqa: ASYNC220
                self.argv,
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=_raise_nofile_in_child,
            )
        finally:
            out.close()
        await wait_http_ok(self.port, self.health, self.proc, self.logfile)

    async def stop(self, timeout: float = 15.0) -> int | None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return None if proc is None else proc.returncode
        proc.send_signal(signal.SIGTERM)
        try:
            return await asyncio.to_thread(proc.wait, timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            return await asyncio.to_thread(proc.wait)


def ra_command() -> str:
    return shutil.which("realtime-agent") or str(Path(sys.executable).parent / "realtime-agent")


def clean_env(**extra: str) -> dict[str, str]:
    drop = {"DATABASE_URL", "REDIS_URL", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"}
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("RA_")}
    env["PYTHONUNBUFFERED"] = "1"
    # Benchmark this checkout's code, whatever checkout the editable install points at.
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO_DIR), os.environ.get("PYTHONPATH", "")) if p
    )
    env.update(extra)
    return env


def check_server_code(env: Mapping[str, str]) -> str:
    """The realtime_agent package the server will import with ``env``: must be this checkout's."""
    out = subprocess.run(
        [sys.executable, "-c", "import realtime_agent; print(realtime_agent.__file__)"],
        env=dict(env),
        capture_output=True,
        text=True,
        check=True,
        cwd="/",
    ).stdout.strip()
    if not out.startswith(str(REPO_DIR)):
        raise RuntimeError(f"the server would run {out}, not {REPO_DIR}")
    return out


@contextlib.asynccontextmanager
async def standin_model(logdir: Path) -> AsyncIterator[str]:
    """The bench's stand-in Messages API in its own process; yields its base URL."""
    port = free_port()
    proc = Proc(
        "standin",
        [sys.executable, "-m", "bench.standin", "--port", str(port)],
        clean_env(),
        port,
        "/healthz",
        logdir,
        REPO_DIR,
    )
    await proc.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await proc.stop()


async def create_database() -> str:
    import asyncpg

    name = "ra_bench_" + secrets.token_hex(6)
    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return name


async def drop_database(name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def clear_redis_prefix(prefix: str) -> int:
    from redis.asyncio import Redis

    redis = Redis.from_url(REDIS_URL)
    removed = 0
    try:
        batch: list[bytes] = []
        async for key in redis.scan_iter(match=f"{prefix}*", count=1000):
            batch.append(key)
            if len(batch) >= 500:
                removed += await redis.delete(*batch)
                batch.clear()
        if batch:
            removed += await redis.delete(*batch)
    finally:
        await redis.aclose()
    return removed


#: The implementations that run as one process only (no distributed mode).
ONE_PROCESS = ("baseline", "floor")


@dataclass
class Deployment:
    """Server processes of one implementation, ready to take clients."""

    impl: str  # "ours" | "peer" | "baseline" | "floor"
    mode: str  # "embedded" | "distributed"
    procs: list[Proc]
    secret: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    model_url: str = ""  # the stand-in model it reads

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    @property
    def ports(self) -> list[int]:
        return [p.port for p in self.procs]


@contextlib.asynccontextmanager
async def deploy(
    impl: str,
    mode: str,
    standin_url: str,
    logdir: Path,
    *,
    processes: int | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> AsyncIterator[Deployment]:
    """Start ``impl`` in ``mode``; stop it and remove its data afterwards.

    - ours, embedded: one ``realtime-agent serve``, SQLite in a temporary directory.
    - ours, distributed: two ``realtime-agent serve`` on Redis (fresh prefix) and a
      fresh PostgreSQL database, dropped afterwards.
    - peer: python-socketio with AsyncRedisManager (one process embedded, two
      distributed), on a fresh Redis channel.
    - baseline: the bare Starlette loop, one process (it cannot span processes).
    - floor: the same loop writing each chunk's frame straight to the transports
      (``bare_server --direct``), one process: a reference, mostly the kernel's
      work per write.
    """
    n = processes or (2 if mode == "distributed" else 1)
    tmp = Path(tempfile.mkdtemp(prefix=f"ra-bench-{impl}-", dir=logdir))
    procs: list[Proc] = []
    dbname: str | None = None
    prefix = f"rabench:{secrets.token_hex(4)}:"
    secret = secrets.token_urlsafe(32)
    try:
        if impl == "ours":
            env = clean_env(
                ANTHROPIC_API_KEY="bench-key",
                ANTHROPIC_BASE_URL=standin_url,
                RA_SECRET=secret,
                **RA_BENCH_ENV,
            )
            if mode == "distributed":
                dbname = await create_database()
                env["DATABASE_URL"] = f"postgresql://postgres@127.0.0.1:5432/{dbname}"
                env["REDIS_URL"] = REDIS_URL
                env["RA_REDIS_PREFIX"] = prefix
            else:
                env["DATABASE_URL"] = f"sqlite:///{tmp / 'ra.db'}"
            env.update(extra_env or {})
            check_server_code(env)
            for i in range(n):
                port = free_port()
                argv = [ra_command(), "serve", "--port", str(port), "--log-level", "warning"]
                procs.append(Proc(f"ours-{mode}-{i}", argv, env, port, "/healthz", logdir, tmp))
        elif impl == "peer":
            env = clean_env(ANTHROPIC_API_KEY="bench-key", ANTHROPIC_BASE_URL=standin_url)
            for i in range(n):
                port = free_port()
                argv = [
                    sys.executable,
                    "-m",
                    "bench.peers.socketio_server",
                    "--port",
                    str(port),
                    "--redis-url",
                    REDIS_URL,
                    "--channel",
                    prefix + "socketio",
                ]
                procs.append(
                    Proc(f"peer-{mode}-{i}", argv, env, port, "/healthz", logdir, REPO_DIR)
                )
        elif impl in ONE_PROCESS:
            env = clean_env(ANTHROPIC_API_KEY="bench-key", ANTHROPIC_BASE_URL=standin_url)
            port = free_port()
            argv = [sys.executable, "-m", "bench.peers.bare_server", "--port", str(port)]
            argv += ["--direct"] if impl == "floor" else []
            procs.append(Proc(f"{impl}-0", argv, env, port, "/healthz", logdir, REPO_DIR))
        else:
            raise ValueError(impl)
        for p in procs:  # one at a time: each migrates (PostgreSQL) before the next starts
            await p.start()
        yield Deployment(impl, mode, procs, secret, {"prefix": prefix, "db": dbname}, standin_url)
    finally:
        for p in procs:
            code = await p.stop()
            if code not in (None, 0, -signal.SIGTERM):
                log(f"{p.name} exited {code}:\n{tail(p.logfile, 15)}")
        if dbname is not None:
            with contextlib.suppress(Exception):
                await drop_database(dbname)
        if impl in ("ours", "peer") and (mode == "distributed" or impl == "peer"):
            with contextlib.suppress(Exception):
                await clear_redis_prefix(prefix)
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------- rooms


@dataclass
class Room:
    """One session (ours) or room (peer, baseline, floor): how its sockets connect."""

    key: str
    owner_urls: list[str]  # one per server process
    viewer_urls: list[str]
    extra: dict[str, Any] = field(default_factory=dict)


async def fill_transcript(owner_url: str, messages: int, chars: int = 0) -> None:
    """Give a session about ``messages`` transcript entries: ``messages // 2`` user
    messages of ``chars`` extra characters each, sent over its owner socket one turn
    at a time (the model's answers are the other half)."""
    from websockets.asyncio.client import connect

    async with connect(owner_url, compression=None, max_size=None) as ws:
        await ws.recv()  # hello
        await ws.recv()  # snapshot
        for j in range(messages // 2):
            content = f"m{j}" + (" " + "x" * chars if chars else "")
            frame = {"type": "message", "content": content, "client_id": f"c{j}"}
            await ws.send(orjson.dumps(frame).decode())
            while True:
                data = orjson.loads(await ws.recv())
                if data.get("type") == "status" and data["status"] == "completed":
                    break


async def create_rooms(dep: Deployment, count: int, concurrency: int = 20) -> list[Room]:
    if dep.impl != "ours":
        rooms = []
        for _ in range(count):
            key = "room-" + secrets.token_hex(6)
            if dep.impl == "peer":
                urls = [
                    f"ws://127.0.0.1:{p}/socket.io/?EIO=4&transport=websocket" for p in dep.ports
                ]
            else:
                urls = [f"ws://127.0.0.1:{p}/ws/{key}" for p in dep.ports]
            rooms.append(Room(key, urls, urls))
        return rooms
    clients = [Http("127.0.0.1", dep.ports[0]) for _ in range(concurrency)]
    pool: asyncio.Queue[Http] = asyncio.Queue()
    for c in clients:
        pool.put_nowait(c)

    async def one(i: int) -> Room:
        http = await pool.get()
        try:
            status, body = await http.request("POST", "/agent/sessions", {"character_id": 1})
        finally:
            pool.put_nowait(http)
        if status != 201:
            raise RuntimeError(f"create session: {status} {body}")
        sid = body["session_id"]
        owner = [
            f"ws://127.0.0.1:{p}/agent/ws/{sid}?token={body['owner_token']}" for p in dep.ports
        ]
        viewer = [
            f"ws://127.0.0.1:{p}/agent/ws/{sid}?token={body['viewer_token']}" for p in dep.ports
        ]
        return Room(sid, owner, viewer, {"owner_token": body["owner_token"]})

    # sequential per client connection, `concurrency` connections at once
    try:
        return list(await asyncio.gather(*(one(i) for i in range(count))))
    finally:
        for c in clients:
            await c.close()


def start_content(chunks: int, rate: float, pad: int = 0) -> str:
    """The user message that makes the stand-in stream ``chunks`` chunks at ``rate``/s."""
    return f"bench chunks={chunks} rate={rate:g} pad={pad}"


def parse_list(text: str, cast: type = int) -> list[Any]:
    return [cast(x) for x in text.split(",") if x.strip()]


Rows = list[dict[str, Any]]


async def over_deployments(
    scenario: str,
    pairs: Iterable[tuple[str, str]],
    measure: Callable[[str, str, Deployment], Awaitable[Rows]],
    *,
    extra_env: Mapping[str, str] | None = None,
) -> Rows:
    """Start the stand-in model, then deploy each ``(impl, mode)`` in turn (each
    stopped before the next) and ``measure`` it; every row it returns is tagged
    with the scenario, impl and mode and printed as a JSON line. The baseline
    and the floor have one process only, so they are skipped in distributed mode."""
    rows: Rows = []
    logdir = Path(tempfile.mkdtemp(prefix="ra-bench-"))
    async with standin_model(logdir) as model_url:
        for impl, mode in pairs:
            if impl in ONE_PROCESS and mode == "distributed":
                continue
            async with deploy(impl, mode, model_url, logdir, extra_env=extra_env) as dep:
                for row in await measure(impl, mode, dep):
                    row.update(scenario=scenario, impl=impl, mode=mode)
                    emit_json(row)
                    rows.append(row)
    log(f"server logs: {logdir}")
    return rows


def collect(
    main: Callable[[argparse.Namespace], Awaitable[Rows]], args: argparse.Namespace
) -> Rows:
    """Run a scenario's ``main(args)`` on the event loop; its rows."""
    rows: Rows = []

    async def go() -> None:
        rows.extend(await main(args))

    run(go())
    return rows


def add_list_arg(parser: argparse.ArgumentParser, name: str, default: list[str]) -> None:
    """A comma-separated option (``--mode embedded,distributed``)."""
    parser.add_argument(name, type=lambda s: parse_list(s, str), default=default)


def add_stream_args(
    parser: argparse.ArgumentParser,
    *,
    timeout: float,
    timeout_help: str,
    impls: tuple[str, ...] = ("ours", "peer", "baseline"),
) -> None:
    """The options of the streaming scenarios (fan-out, many sessions)."""
    add_list_arg(parser, "--impl", list(impls))
    parser.add_argument("--client-procs", type=int, default=2)
    parser.add_argument(
        "--quiet",
        type=float,
        nargs=2,
        default=[0.4, 10.0],
        metavar=("CORES", "SECONDS"),
        help="before each run wait until the machine is busy less than CORES "
        "(at most SECONDS): other users of a shared machine disturb latencies",
    )
    parser.add_argument(
        "--client",
        default="websockets",
        choices=["websockets", "raw"],
        help="websocket client of the viewers (raw: bench/rawws.py, cheaper)",
    )
    parser.add_argument("--timeout", type=float, default=timeout, help=timeout_help)


def stream_options(args: argparse.Namespace) -> dict[str, Any]:
    """:func:`bench.streaming.measure_stream`'s keyword arguments from :func:`add_stream_args`'s
    options (the deadline counts from the end of the stream, ``--seconds`` long)."""
    return {
        "client_procs": args.client_procs,
        "client": args.client,
        "quiet": tuple(args.quiet),
        "timeout": args.seconds + args.timeout,
    }


def run(main_coro: Any) -> None:
    try:
        import uvloop

        uvloop.run(main_coro)
    except ImportError:
        asyncio.run(main_coro)
