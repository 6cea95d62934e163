"""``chat --send TEXT``: send texts one run at a time, exit by how the last run ended."""

from __future__ import annotations

import asyncio

from .connection import SessionClient
from .errors import ClientError
from .items import Line
from .sinks import Sink
from .state import SUCCESS, SessionState

#: Exit code when the last run ended ``error`` or ``interrupted``.
RUN_FAILED_EXIT = 1
#: Exit code of a second Ctrl-C.
SIGINT_EXIT = 130


class ScriptDriver:
    """Send each text after the previous run ended; no prompt.

    Exit code 0 when the last run ended ``completed`` or
    ``completed_with_errors``, 1 when it ended ``error`` or ``interrupted``.
    The first Ctrl-C interrupts the run in progress and sends nothing more;
    the second quits.
    """

    handles_sigint = False

    def __init__(
        self, client: SessionClient, state: SessionState, sink: Sink, texts: list[str]
    ) -> None:
        self.client = client
        self.state = state
        self.sink = sink
        self.texts = texts
        self._stopping = False
        self._tasks: set[asyncio.Task[bool]] = set()

    async def run(self) -> int:
        """Send the texts in turn; the exit code."""
        state = self.state
        await self.client.wait_for(lambda: state.connected)
        if not state.is_owner:
            raise ClientError("this token is a viewer's: it cannot send messages")
        outcome: str | None = None
        for text in self.texts:
            if self._stopping:
                break
            outcome = await self._send(text)
        return 0 if outcome in SUCCESS else RUN_FAILED_EXIT

    async def _send(self, text: str) -> str | None:
        """Send ``text`` once no run is in progress; the final status of its run."""
        state = self.state
        await self.client.wait_for(lambda: not state.running)
        sent = state.sent(await self.client.send_message(text))
        await self.client.wait_for(lambda: sent.done)
        if sent.refused is not None:
            raise ClientError(f"the server refused the message: {sent.refused}")
        return sent.outcome

    def on_sigint(self) -> int | None:
        """Interrupt the run the first time (then exit 1 when it ends), quit the second."""
        if self._stopping or not self.state.running or not self.state.is_owner:
            return SIGINT_EXIT
        self._stopping = True
        self.sink.show([Line("· interrupting; Ctrl-C again to quit", dim=True)])
        task = asyncio.create_task(self.client.send(self.state.interrupt_frame()))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return None
