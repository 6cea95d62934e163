"""Typed commands and the line-by-line front end (stdin not a terminal, or ``--json``)."""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import AsyncIterator
from typing import TextIO

from .connection import SessionClient
from .items import Line, Notice
from .sinks import Sink
from .state import SessionState
from .typed import (
    HELP,
    Approve,
    Command,
    Interrupt,
    Quit,
    Reject,
    Say,
    ShowHelp,
    ShowStatus,
    Unknown,
    parse_line,
)

READ_ONLY = "this token is a viewer's: it can watch but not send"


async def execute(command: Command, client: SessionClient, state: SessionState, sink: Sink) -> bool:
    """Carry out a typed command; whether it asks to quit."""
    match command:
        case Quit():
            return True
        case ShowStatus():
            sink.show([Line(state.status_line())])
        case ShowHelp():
            sink.show([Line(HELP)])
        case Unknown(name):
            sink.show([Line(f"unknown command {name}: /help lists them")])
        case _ if not state.is_owner:
            sink.show([Line(READ_ONLY)])
        case Say(text):
            await client.send_message(text)
            if not client.connected:
                sink.show([Notice("not connected: the message will be sent on reconnect")])
        case Interrupt():
            if not state.running:
                sink.show([Line("nothing to interrupt: no run is in progress")])
            elif not await client.send(state.interrupt_frame()):
                sink.show([Notice("not connected: try again once reconnected")])
        case Approve() | Reject():
            reason = command.reason if isinstance(command, Reject) else None
            frame = state.approval_frame(isinstance(command, Approve), reason)
            if frame is None:
                sink.show([Line("nothing to answer: no approval is pending")])
            elif not await client.send(frame):
                sink.show([Notice("not connected: try again once reconnected")])
    return False


async def stdin_lines(stream: TextIO = sys.stdin) -> AsyncIterator[str]:
    """Lines of ``stream`` as they arrive, read in a daemon thread (never blocks the loop)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    def pump() -> None:
        for line in stream:
            loop.call_soon_threadsafe(queue.put_nowait, line)
        loop.call_soon_threadsafe(queue.put_nowait, None)

    threading.Thread(target=pump, name="realtime-agent stdin", daemon=True).start()
    while (line := await queue.get()) is not None:
        yield line


class LineDriver:
    """Commands from stdin one line each, output as it comes; at the end of input, wait
    for this client's runs to end and exit 0. Ctrl-C interrupts a run, then quits."""

    handles_sigint = False

    def __init__(self, client: SessionClient, state: SessionState, sink: Sink) -> None:
        self.client = client
        self.state = state
        self.sink = sink
        self._tasks: set[asyncio.Task[bool]] = set()

    async def run(self) -> int:
        """Read and carry out lines until ``/quit`` or the end of input."""
        await self.client.wait_for(lambda: self.state.connected)
        async for line in stdin_lines():
            command = parse_line(line)
            if command is not None and await execute(command, self.client, self.state, self.sink):
                return 0
        await self.client.wait_for(self.state.all_done)
        return 0

    def on_sigint(self) -> int | None:
        """Interrupt the run in progress the first time; quit (exit 0) otherwise."""
        if self.state.on_ctrl_c() == "quit":
            return 0
        self.sink.show([Line("· interrupting; Ctrl-C again to quit", dim=True)])
        task = asyncio.create_task(self.client.send(self.state.interrupt_frame()))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return None
