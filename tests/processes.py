"""Real server processes for multi-process tests: ``realtime-agent serve`` and a private Redis."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import sys
from collections.abc import Mapping
from pathlib import Path

#: uvicorn logs this once its socket listens, after the lifespan started the app
#: ("Application startup complete" comes before the bind: a connect could be refused).
READY_LINE = "Uvicorn running on"
TIMEOUT = 20.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _command() -> str:
    found = shutil.which("realtime-agent") or str(Path(sys.executable).parent / "realtime-agent")
    return found


def clean_env(**extra: str) -> dict[str, str]:
    """The test process's environment without any realtime-agent setting, plus ``extra``."""
    drop = {"DATABASE_URL", "REDIS_URL", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"}
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("RA_")}
    env.update(extra)
    return env


async def _drain(stream: asyncio.StreamReader, lines: list[str]) -> None:
    while raw := await stream.readline():
        lines.append(raw.decode(errors="replace"))


class ServerProcess:
    """``realtime-agent serve`` in a subprocess, with its log collected."""

    def __init__(self, env: Mapping[str, str], cwd: Path, port: int | None = None) -> None:
        self.env = dict(env)
        self.cwd = cwd
        self.port = port or free_port()
        self.lines: list[str] = []
        self.proc: asyncio.subprocess.Process | None = None
        self._drain: asyncio.Task[None] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> str:
        return "".join(self.lines)

    async def start(self) -> None:
        self.lines.clear()
        self.proc = proc = await asyncio.create_subprocess_exec(
            _command(),
            "serve",
            "--port",
            str(self.port),
            "--log-level",
            "info",
            cwd=self.cwd,
            env=self.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        assert proc.stdout is not None
        async with asyncio.timeout(TIMEOUT):
            while not any(READY_LINE in line for line in self.lines):
                raw = await proc.stdout.readline()
                assert raw, "the server exited before it was ready:\n" + self.log
                self.lines.append(raw.decode(errors="replace"))
        self._drain = asyncio.create_task(_drain(proc.stdout, self.lines))

    async def stop(self, sig: int = signal.SIGTERM) -> int:
        """Send ``sig`` (SIGKILL for a crash) and wait for the exit code."""
        if self.proc is None:
            return 0
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
        return await self.exited()

    async def exited(self) -> int:
        """Wait, without a signal, for the exit code and the end of the log."""
        assert self.proc is not None
        async with asyncio.timeout(TIMEOUT):
            code = await self.proc.wait()
            if self._drain is not None:
                await self._drain
        return code


class RedisProcess:
    """A private ``redis-server`` on a free port, so a test may restart or break it."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--loglevel",
            "warning",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        async with asyncio.timeout(TIMEOUT):
            while True:
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                except OSError:
                    await asyncio.sleep(0.05)  # waiting for a process to bind its port
                    continue
                writer.close()
                await writer.wait_closed()
                return

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
