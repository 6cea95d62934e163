"""Helpers for the CLI client tests: the client as a subprocess, a TCP proxy to cut it off,
and a pseudo-terminal to drive its prompt."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import shutil
import signal
import struct
import sys
import termios
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

TIMEOUT = 30.0
Frame = dict[str, Any]


def command() -> str:
    """The installed console script, beside this interpreter (else on PATH)."""
    beside = Path(sys.executable).with_name("realtime-agent")
    found = str(beside) if beside.is_file() else shutil.which("realtime-agent")
    assert found is not None, "the realtime-agent command is not installed"
    return found


def client_env(**extra: str) -> dict[str, str]:
    """This environment without any realtime-agent setting (no stray RA_API_KEY), plus extra."""
    drop = {"DATABASE_URL", "REDIS_URL", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "NO_COLOR"}
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("RA_")}
    env.update(extra)
    return env


@dataclass
class Result:
    """A finished client process."""

    code: int
    stdout: str
    stderr: str

    def frames(self) -> list[Frame]:
        """Every stdout line parsed as JSON (``--json`` output)."""
        return [json.loads(line) for line in self.stdout.splitlines()]


async def run_client(*args: str, stdin: bytes | None = None, **env: str) -> Result:
    """Run ``realtime-agent ARGS`` to its end (awaiting, never blocking the loop)."""
    proc = await asyncio.create_subprocess_exec(
        command(),
        *args,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=client_env(**env),
    )
    try:
        async with asyncio.timeout(TIMEOUT):
            out, err = await proc.communicate(stdin)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())


class ClientProcess:
    """A long-running ``realtime-agent`` (``watch``, or ``chat`` that waits on a run)
    whose stdout is read line by line; stderr is collected in the background."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self.err: list[str] = []
        assert proc.stderr is not None
        self._drain = asyncio.create_task(self._collect(proc.stderr))

    @classmethod
    async def start(cls, *args: str) -> Self:
        proc = await asyncio.create_subprocess_exec(
            command(),
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=client_env(),
        )
        return cls(proc)

    async def _collect(self, stream: asyncio.StreamReader) -> None:
        async for raw in stream:
            self.err.append(raw.decode(errors="replace"))

    @property
    def stderr(self) -> str:
        return "".join(self.err)

    async def line(self) -> str:
        """The next stdout line (fails at end of output)."""
        assert self.proc.stdout is not None
        async with asyncio.timeout(TIMEOUT):
            raw = await self.proc.stdout.readline()
        assert raw, f"the client ended early: exit {self.proc.returncode}\n{self.stderr}"
        text = raw.decode()
        self.lines.append(text)
        return text

    async def frame_until(self, pred: Callable[[Frame], bool]) -> Frame:
        """Read ``--json`` lines until one matches ``pred``; that frame."""
        while True:
            frame: Frame = json.loads(await self.line())
            if pred(frame):
                return frame

    def frames(self) -> list[Frame]:
        """Every ``--json`` line read so far."""
        return [json.loads(line) for line in self.lines]

    async def interrupt(self) -> int:
        """SIGINT, then the exit code once the process and its stderr ended."""
        self.proc.send_signal(signal.SIGINT)
        return await self.wait()

    async def wait(self) -> int:
        """The exit code, once the process ended (stdout is read to its end)."""
        assert self.proc.stdout is not None
        async with asyncio.timeout(TIMEOUT):
            rest = await self.proc.stdout.read()
            code = await self.proc.wait()
            await self._drain
        self.lines.extend(rest.decode().splitlines(keepends=True))
        return code

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        await asyncio.gather(self._drain, return_exceptions=True)


class TcpProxy:
    """A TCP proxy on a free loopback port in this event loop, to drop connections at will.

    ``cut()`` aborts every open connection; while ``paused`` new connections are
    closed at once; ``requests`` keeps the first line of each connection (the
    websocket handshake's request line).
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.paused = False
        self.requests: list[str] = []
        self._server: asyncio.Server | None = None
        self._transports: list[asyncio.WriteTransport] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Event()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.cut()
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def cut(self) -> None:
        """Abort every open connection (both sides see a reset, no close frame)."""
        for transport in self._transports:
            transport.abort()
        self._transports.clear()

    async def until_requests(self, n: int) -> list[str]:
        """Wait until ``n`` requests were forwarded; their request lines."""
        async with asyncio.timeout(TIMEOUT):
            while len(self.requests) < n:
                changed = self._changed
                await changed.wait()
        return self.requests

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.paused:
            writer.transport.abort()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._transports += [writer.transport, up_writer.transport]
        first = await reader.readline()
        self.requests.append(first.decode(errors="replace").strip())
        self._changed.set()
        self._changed = asyncio.Event()
        up_writer.write(first)
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(source, sink))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        sink.transport.abort()


async def spawn_in_pty(
    *args: str, rows: int = 40, cols: int = 120, **env: str
) -> tuple[asyncio.subprocess.Process, int]:
    """Start ``realtime-agent ARGS`` on a new pseudo-terminal; the process and the pty's
    master side (for pexpect's ``fdspawn``). The loop manages the process: no fork here."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    try:
        proc = await asyncio.create_subprocess_exec(
            command(),
            *args,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=client_env(**env),
            start_new_session=True,
        )
    finally:
        os.close(slave)
    return proc, master
