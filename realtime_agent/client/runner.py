"""Run a front end beside the connection: whichever ends first decides the exit code."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Any, Protocol

from .connection import SessionClient


class Driver(Protocol):
    """A front end: the prompt, the scripted sends, or the watcher."""

    #: Whether the driver reads Ctrl-C itself (a prompt_toolkit prompt does).
    handles_sigint: bool

    async def run(self) -> int:
        """Do the front end's work; the exit code."""
        ...

    def on_sigint(self) -> int | None:
        """Ctrl-C: an exit code to quit with now, or ``None`` when it was handled."""
        ...


async def run_session(client: SessionClient, driver: Driver) -> int:
    """Run ``client`` and ``driver`` together until the driver ends, Ctrl-C quits, or
    the connection fails (its :class:`~.errors.ClientError` propagates)."""
    loop = asyncio.get_running_loop()
    quit_now: asyncio.Future[int] = loop.create_future()

    def sigint() -> None:
        code = driver.on_sigint()
        if code is not None and not quit_now.done():
            quit_now.set_result(code)

    reader = asyncio.create_task(client.run(), name="realtime-agent reader")
    front = asyncio.create_task(driver.run(), name="realtime-agent front end")
    if not driver.handles_sigint:
        loop.add_signal_handler(signal.SIGINT, sigint)
    try:
        waiting: set[asyncio.Future[Any]] = {reader, front, quit_now}
        done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if front in done:
            return front.result()
        if quit_now in done:
            return quit_now.result()
        front.cancel()
        await asyncio.gather(front, return_exceptions=True)
        reader.result()  # raises the connection's error
        return 0
    finally:
        if not driver.handles_sigint:
            loop.remove_signal_handler(signal.SIGINT)
        front.cancel()
        await asyncio.gather(front, return_exceptions=True)
        with contextlib.suppress(Exception):
            await client.close()
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
