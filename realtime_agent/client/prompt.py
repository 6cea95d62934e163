"""The interactive prompt (prompt_toolkit): history, line editing, live streamed text.

Output is printed above the prompt through ``patch_stdout``. A streamed line
that is not finished yet is not printed (it would be overwritten by the
prompt's next redraw): it is shown as the first line of the prompt itself and
updated on every delta, and printed above once it is complete.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

from prompt_toolkit import PromptSession
from prompt_toolkit.application import Application
from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.history import InMemoryHistory
from prompt_toolkit.patch_stdout import patch_stdout

from .connection import SessionClient
from .interactive import execute
from .items import EndText, Item, Line, Notice, Text
from .state import SessionState
from .style import dim, printable
from .typed import parse_line

PROMPT = "> "


class PromptSink:
    """Prints whole lines above the prompt and keeps the unfinished streamed line in it."""

    def __init__(self, *, color: bool) -> None:
        self.color = color
        self.partial = ""
        self.app: Application[str] | None = None

    def frame(self, frame: object) -> None:
        """Text output shows items, not frames."""

    def show(self, items: Iterable[Item]) -> None:
        """Print ``items``; streamed text waits in the prompt until its line is complete."""
        for item in items:
            match item:
                case Text(text):
                    self.partial += printable(text)
                    if "\n" in self.partial:
                        done, _, self.partial = self.partial.rpartition("\n")
                        print(done, flush=True)
                case EndText():
                    self._end_line()
                case Line(text, is_dim):
                    safe = printable(text)
                    print(dim(safe, self.color) if is_dim else safe, flush=True)
                case Notice(text):
                    print(printable(text), file=sys.stderr, flush=True)
        if self.app is not None:
            self.app.invalidate()

    def _end_line(self) -> None:
        if self.partial:
            print(self.partial, flush=True)
            self.partial = ""

    def message(self) -> FormattedText:
        """The prompt: the unfinished streamed line (if any) above ``> ``."""
        if self.partial:
            return FormattedText([("", self.partial + "\n"), ("bold", PROMPT)])
        return FormattedText([("bold", PROMPT)])


class PromptDriver:
    """Read commands at a prompt until ``/quit``, Ctrl-D, or Ctrl-C with nothing to interrupt.

    Ctrl-C during a run sends ``interrupt``; a second Ctrl-C before the run ends quits.
    """

    handles_sigint = True  # the prompt reads Ctrl-C as a key

    def __init__(self, client: SessionClient, state: SessionState, sink: PromptSink) -> None:
        self.client = client
        self.state = state
        self.sink = sink

    async def run(self) -> int:
        """The prompt loop; exit code 0."""
        await self.client.wait_for(lambda: self.state.connected)
        session: PromptSession[str] = PromptSession(self.sink.message, history=InMemoryHistory())
        self.sink.app = session.app
        with patch_stdout(raw=True):
            try:
                return await self._loop(session)
            finally:
                self.sink.app = None
                self.sink.show([EndText()])

    async def _loop(self, session: PromptSession[str]) -> int:
        while True:
            try:
                line = await session.prompt_async()
            except KeyboardInterrupt:
                if self.state.on_ctrl_c() == "quit":
                    return 0
                self.sink.show([Line("· interrupting; Ctrl-C again to quit", dim=True)])
                await self.client.send(self.state.interrupt_frame())
                continue
            except EOFError:
                return 0
            command = parse_line(line)
            if command is not None and await execute(command, self.client, self.state, self.sink):
                return 0

    def on_sigint(self) -> int | None:
        """Not used: the prompt turns Ctrl-C into ``KeyboardInterrupt``."""
        return 0
