"""``watch``: follow a session read-only until Ctrl-C."""

from __future__ import annotations

import asyncio


class WatchDriver:
    """Nothing to do but wait: the connection prints the stream. Ctrl-C exits 0."""

    handles_sigint = False

    def __init__(self) -> None:
        self._done = asyncio.Event()

    async def run(self) -> int:
        """Wait for Ctrl-C."""
        await self._done.wait()
        return 0

    def on_sigint(self) -> int | None:
        """Quit with exit code 0."""
        return 0
