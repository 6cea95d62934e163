"""Websocket clients of the benchmarks, spread over several client processes.

The main process of a scenario drives ``Clients``: it starts ``n`` client
processes (``multiprocessing``, spawn), gives each a list of socket specs to
connect, then says "go" to all at once and collects what each measured.
Every client is a ``websockets`` asyncio client on uvloop, one task per
socket. Three dialects: ``ra`` (realtime-agent's protocol), ``sio``
(Engine.IO 4 / Socket.IO 5 frames of the python-socketio peer) and ``bare``
(the baseline's JSON frames).

A socket spec is a dict: ``kind``, ``url``, ``room``, ``owner`` (bool),
``start`` (the owner's message that starts the stream, or None), ``chat``
(the owner keeps sending messages, one at a time, for the transcript
scenario).

Measured per process, after "go": every frame received (``presence`` frames
excepted), the latency of every model chunk (parsed from the ``<t_ns>|``
texts the stand-in put in the chunks, several per delta if the server merged
them), sockets closed by the server and their close codes, echo latencies of
the owner's messages, and the process's own CPU time.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import os
import secrets
import time
from array import array
from collections import Counter
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any

import orjson

FINAL_STATUSES = {"completed", "completed_with_errors", "error", "interrupted"}
CONNECT_TIMEOUT = 60.0


class Worker:
    """The state of one client process."""

    def __init__(self) -> None:
        self.socks: list[Sock] = []
        self.live = False
        self.lat_us = array("q")
        self.echo_us = array("q")
        self.frames = 0
        self.deltas = 0
        self.errors: Counter[str] = Counter()
        self.close_codes: Counter[str] = Counter()
        self.dropped = 0
        self.first_ns = 0
        self.last_ns = 0
        self.pending_done = 0
        self.all_done = asyncio.Event()
        self.chat_until = 0.0  # monotonic; owners with chat send while before it
        self.chat_from = 0.0
        self.on_busy = "steer"
        self.chat_sent = 0
        self.chat_echoed = 0
        self.chat_in_window = 0
        self.tasks: set[asyncio.Future[Any]] = set()

    def spawn(self, coro: Any) -> None:
        """Run a send in the background, keeping a reference until it is done."""
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def done_one(self) -> None:
        self.pending_done -= 1
        if self.pending_done <= 0:
            self.all_done.set()


class Sock:
    __slots__ = (
        "carry",
        "chat_id",
        "chat_sent_at",
        "chat_started",
        "closing",
        "done",
        "reader",
        "spec",
        "w",
        "ws",
    )

    def __init__(self, w: Worker, spec: dict[str, Any]) -> None:
        self.w = w
        self.spec = spec
        self.ws: Any = None
        self.carry = ""
        self.done = False
        self.closing = False
        self.chat_id = ""
        self.chat_sent_at = 0
        self.chat_started = False
        self.reader: asyncio.Task[None] | None = None

    # -- connect ---------------------------------------------------------------

    async def connect(self) -> None:
        if self.spec.get("client") == "raw":
            from .rawws import connect as raw_connect

            self.ws = ws = await raw_connect(self.spec["url"], CONNECT_TIMEOUT)
        else:
            from websockets.asyncio.client import connect

            self.ws = ws = await connect(
                self.spec["url"],
                compression=None,
                max_size=None,
                max_queue=4096,
                ping_interval=None,  # the server pings; the library answers by itself
                open_timeout=CONNECT_TIMEOUT,
                close_timeout=2,
            )
        kind = self.spec["kind"]
        if kind == "ra":
            hello = orjson.loads(await ws.recv())
            if hello.get("type") != "hello":
                raise RuntimeError(f"expected hello, got {hello}")
        elif kind == "sio":
            opened = await ws.recv()
            if not str(opened).startswith("0"):
                raise RuntimeError(f"expected an Engine.IO open packet, got {opened!r}")
            await ws.send("40")
            while not str(msg := await ws.recv()).startswith("40"):
                if msg == "2":
                    await ws.send("3")
            await ws.send("420" + orjson.dumps(["join", {"room": self.spec["room"]}]).decode())
            while not str(msg := await ws.recv()).startswith("430"):
                if msg == "2":
                    await ws.send("3")
        else:
            hello = orjson.loads(await ws.recv())
            if hello.get("type") != "hello":
                raise RuntimeError(f"expected hello, got {hello}")
        self.reader = asyncio.create_task(self.read())

    # -- receive ---------------------------------------------------------------

    async def read(self) -> None:
        from websockets.exceptions import ConnectionClosed

        ws = self.ws
        try:
            if self.spec.get("client") == "raw":
                ws.deliver_to(self.safe_frame)
                await ws.closed
            else:
                async for msg in ws:
                    self.on_frame(msg)
        except ConnectionClosed:
            pass
        except Exception as exc:  # a bug here must not hide: count it
            self.w.errors[f"client:{type(exc).__name__}:{exc}"[:120]] += 1
        if not self.closing:
            # closed by the server (or the network) before we closed it
            code = ws.close_code if ws.close_code is not None else "none"
            self.w.close_codes[str(code)] += 1
            self.w.dropped += 1
            if not self.done:
                self.done = True
                self.w.done_one()

    def safe_frame(self, msg: str) -> None:
        try:
            self.on_frame(msg)
        except Exception as exc:  # a bug here must not hide: count it
            self.w.errors[f"client:{type(exc).__name__}:{exc}"[:120]] += 1

    def on_frame(self, msg: str | bytes) -> None:
        w = self.w
        kind = self.spec["kind"]
        if kind == "sio":
            if not isinstance(msg, str):
                return
            if msg == "2":
                self.w.spawn(self.ws.send("3"))
                return
            if not msg.startswith("42") or not w.live:
                return
            now = time.time_ns()
            name, data = orjson.loads(msg[2:])[:2]
            ftype = data.get("type", name) if isinstance(data, dict) else name
        else:
            if not w.live:
                return
            now = time.time_ns()
            data = orjson.loads(msg)
            ftype = data.get("type")
            if ftype == "presence":
                return
        w.frames += 1
        if not w.first_ns:
            w.first_ns = now
        w.last_ns = now
        if ftype == "delta":
            w.deltas += 1
            self.chunk_latencies(data["text"], now)
            if self.spec.get("chat") and not self.chat_started:
                self.chat_started = True
                self.send_chat()
        elif ftype == "status":
            if data.get("status") in FINAL_STATUSES and not self.spec.get("chat"):
                self.finish()
        elif ftype == "done":
            self.finish()
        elif ftype == "message":
            message = data.get("message") or {}
            if self.chat_id and message.get("client_id") == self.chat_id:
                self.chat_id = ""
                w.chat_echoed += 1
                w.echo_us.append((time.perf_counter_ns() - self.chat_sent_at) // 1000)
                if w.chat_from <= time.monotonic() < w.chat_until:
                    w.chat_in_window += 1
                self.send_chat()
        elif ftype == "error":
            w.errors[str(data.get("code"))] += 1
            if (
                self.spec.get("chat")
                and self.chat_id
                and data.get("code") in ("busy", "rate_limited", "unavailable")
            ):
                self.chat_id = ""
                self.send_chat()

    def chunk_latencies(self, text: str, now: int) -> None:
        s = self.carry + text if self.carry else text
        cut = s.rfind("|")
        if cut < 0:
            self.carry = s
            return
        self.carry = s[cut + 1 :]
        append = self.w.lat_us.append
        for piece in s[:cut].split("|"):
            append((now - int(piece.rstrip("."))) // 1000)

    def finish(self) -> None:
        if not self.done:
            self.done = True
            self.w.done_one()

    # -- send ------------------------------------------------------------------

    async def start(self) -> None:
        content = self.spec.get("start")
        if not content:
            return
        kind = self.spec["kind"]
        if kind == "ra":
            frame = {
                "type": "message",
                "content": content,
                "client_id": "start-" + secrets.token_hex(6),
            }
            await self.ws.send(orjson.dumps(frame).decode())
        elif kind == "sio":
            payload = ["start", {"room": self.spec["room"], "content": content}]
            await self.ws.send("42" + orjson.dumps(payload).decode())
        else:
            await self.ws.send(orjson.dumps({"type": "start", "content": content}).decode())

    def send_chat(self) -> None:
        w = self.w
        if time.monotonic() >= w.chat_until:
            # the window is over: stop the run; this socket is done
            self.w.spawn(self.ws.send('{"type":"interrupt"}'))
            self.finish()
            return
        w.chat_sent += 1
        self.chat_id = f"chat-{w.chat_sent}-{secrets.token_hex(4)}"
        self.chat_sent_at = time.perf_counter_ns()
        frame = {
            "type": "message",
            "content": f"chat {w.chat_sent}",
            "client_id": self.chat_id,
            "on_busy": w.on_busy,
        }
        self.w.spawn(self.ws.send(orjson.dumps(frame).decode()))

    async def close(self, abort: bool = False) -> None:
        self.closing = True
        if abort and self.ws is not None:
            self.ws.transport.abort()
        elif self.ws is not None:
            with contextlib.suppress(Exception):
                await self.ws.close()
        if self.reader is not None:
            with contextlib.suppress(BaseException):
                await self.reader


async def _connect_all(w: Worker, specs: list[dict[str, Any]], concurrency: int) -> dict[str, Any]:
    sem = asyncio.Semaphore(concurrency)
    failures: Counter[str] = Counter()
    started = time.perf_counter()
    connect_ms = array("d")

    async def one(spec: dict[str, Any]) -> None:
        sock = Sock(w, spec)
        async with sem:
            t0 = time.perf_counter()
            try:
                await sock.connect()
            except Exception as exc:
                failures[f"{type(exc).__name__}: {exc}"[:160]] += 1
                return
            connect_ms.append((time.perf_counter() - t0) * 1000)
        w.socks.append(sock)

    await asyncio.gather(*(one(s) for s in specs))
    return {
        "connected": len(connect_ms),
        "failed": sum(failures.values()),
        "failures": dict(failures.most_common(5)),
        "connect_s": time.perf_counter() - started,
        "connect_ms": connect_ms.tobytes(),
    }


async def _go(w: Worker, params: dict[str, Any]) -> dict[str, Any]:
    w.live = True
    w.pending_done = sum(1 for s in w.socks if not s.done and s.spec.get("wait", True))
    if w.pending_done <= 0:
        w.all_done.set()
    w.on_busy = params.get("on_busy", "steer")
    now = time.monotonic()
    w.chat_from = now + params.get("chat_warmup", 0.0)
    w.chat_until = w.chat_from + params.get("chat_seconds", 0.0)
    cpu0 = os.times()
    t_go = time.time_ns()
    await asyncio.gather(*(s.start() for s in w.socks if s.spec.get("start")))
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(w.all_done.wait(), params["deadline"])
    cpu1 = os.times()
    incomplete = sum(1 for s in w.socks if not s.done and s.spec.get("wait", True))
    w.live = False
    return {
        "t_go": t_go,
        "first_ns": w.first_ns,
        "last_ns": w.last_ns,
        "frames": w.frames,
        "deltas": w.deltas,
        "lat_us": w.lat_us.tobytes(),
        "echo_us": w.echo_us.tobytes(),
        "dropped": w.dropped,
        "close_codes": dict(w.close_codes),
        "errors": dict(w.errors),
        "incomplete": incomplete,
        "sockets": len(w.socks),
        "cpu_s": (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system),
        "chat_sent": w.chat_sent,
        "chat_echoed": w.chat_echoed,
        "chat_in_window": w.chat_in_window,
    }


async def _serve(conn: Connection) -> None:
    loop = asyncio.get_running_loop()
    w = Worker()
    while True:
        cmd, arg = await loop.run_in_executor(None, conn.recv)
        if cmd == "connect":
            stats = await _connect_all(w, arg["sockets"], arg.get("concurrency", 64))
            stats["rss"] = _rss()
            conn.send(("ready", stats))
        elif cmd == "go":
            conn.send(("result", await _go(w, arg)))
        elif cmd == "status":
            open_now = sum(1 for s in w.socks if s.ws is not None and s.ws.close_code is None)
            conn.send(
                (
                    "status",
                    {"open": open_now, "dropped": w.dropped, "close_codes": dict(w.close_codes)},
                )
            )
        elif cmd == "close":
            socks = list(w.socks)
            abort = bool(arg)
            for i in range(0, len(socks), 500):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        asyncio.gather(*(s.close(abort) for s in socks[i : i + 500])), 15
                    )
            conn.send(("closed", None))
            return


def _rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def worker_main(conn: Connection) -> None:
    from bench.common import raise_nofile

    raise_nofile()
    try:
        import uvloop

        uvloop.run(_serve(conn))
    except ImportError:
        asyncio.run(_serve(conn))


class Clients:
    """``n`` client processes, driven from the scenario's event loop."""

    def __init__(self, n: int) -> None:
        ctx = mp.get_context("spawn")
        self.conns: list[Connection] = []
        self.procs: list[Any] = []
        for _ in range(n):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=worker_main, args=(child,), daemon=True)
            proc.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(proc)

    @property
    def n(self) -> int:
        return len(self.conns)

    async def _ask(self, i: int, cmd: str, arg: Any, timeout: float) -> Any:
        loop = asyncio.get_running_loop()
        conn = self.conns[i]
        conn.send((cmd, arg))
        ready = await loop.run_in_executor(None, conn.poll, timeout)
        if not ready:
            raise TimeoutError(f"client process {i} did not answer {cmd!r} in {timeout}s")
        _kind, value = conn.recv()
        return value

    async def connect(
        self, per_proc: Sequence[list[dict[str, Any]]], concurrency: int = 64, timeout: float = 300
    ) -> dict[str, Any]:
        t0 = time.perf_counter()
        stats = await asyncio.gather(
            *(
                self._ask(i, "connect", {"sockets": specs, "concurrency": concurrency}, timeout)
                for i, specs in enumerate(per_proc)
            )
        )
        wall = time.perf_counter() - t0
        connect_ms = array("d")
        for s in stats:
            connect_ms.frombytes(s.pop("connect_ms"))
        failures: Counter[str] = Counter()
        for s in stats:
            failures.update(s["failures"])
        return {
            "connected": sum(s["connected"] for s in stats),
            "failed": sum(s["failed"] for s in stats),
            "failures": dict(failures.most_common(5)),
            "wall_s": wall,
            "connect_ms": connect_ms,
            "client_rss": sum(s["rss"] for s in stats),
        }

    async def go(self, params: dict[str, Any]) -> dict[str, Any]:
        timeout = params["deadline"] + 60
        results = await asyncio.gather(
            *(self._ask(i, "go", params, timeout) for i in range(self.n))
        )
        lat = array("q")
        echo = array("q")
        for r in results:
            lat.frombytes(r.pop("lat_us"))
            echo.frombytes(r.pop("echo_us"))
        merged: dict[str, Any] = {"lat_us": lat, "echo_us": echo}
        for key in (
            "frames",
            "deltas",
            "dropped",
            "incomplete",
            "sockets",
            "cpu_s",
            "chat_sent",
            "chat_echoed",
            "chat_in_window",
        ):
            merged[key] = sum(r[key] for r in results)
        codes: Counter[str] = Counter()
        errors: Counter[str] = Counter()
        for r in results:
            codes.update(r["close_codes"])
            errors.update(r["errors"])
        merged["close_codes"] = dict(codes)
        merged["errors"] = dict(errors)
        merged["t_go"] = min(r["t_go"] for r in results)
        firsts = [r["first_ns"] for r in results if r["first_ns"]]
        merged["first_ns"] = min(firsts) if firsts else 0
        merged["last_ns"] = max(r["last_ns"] for r in results)
        return merged

    async def status(self) -> dict[str, Any]:
        stats = await asyncio.gather(*(self._ask(i, "status", None, 60) for i in range(self.n)))
        codes: Counter[str] = Counter()
        for s in stats:
            codes.update(s["close_codes"])
        return {
            "open": sum(s["open"] for s in stats),
            "dropped": sum(s["dropped"] for s in stats),
            "close_codes": dict(codes),
        }

    async def close(self, abort: bool = False) -> None:
        """Close every socket (with the closing handshake, or ``abort`` the TCP connections)."""
        with contextlib.suppress(Exception):
            await asyncio.gather(*(self._ask(i, "close", abort, 60) for i in range(self.n)))
        for proc in self.procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)

    def client_pids(self) -> list[int]:
        return [p.pid for p in self.procs]


def split_round_robin(items: Sequence[Any], n: int) -> list[list[Any]]:
    out: list[list[Any]] = [[] for _ in range(n)]
    for i, item in enumerate(items):
        out[i % n].append(item)
    return out
