"""``watch``: follow a session read-only until Ctrl-C."""

from __future__ import annotations

import asyncio


class WatchDriver:
    """Nothing to do but wait: the connection prints the stream. Ctrl-C exits 0."""

    handles_sigint = False

    async def run(self) -> int:
        """Wait until cancelled (Ctrl-C, or the connection failing, ends the session)."""
        await asyncio.get_running_loop().create_future()
        return 0

    def on_sigint(self) -> int | None:
        """Quit with exit code 0."""
        return 0
