"""Small asyncio helpers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Literal

Ended = Literal["done", "hurried", "timeout"]


async def wait_unless(aw: Awaitable[object], hurry: asyncio.Event, within: float) -> Ended:
    """Wait for ``aw`` up to ``within`` seconds, or until ``hurry`` is set; how the wait
    ended (``done`` when ``aw`` finished, also if ``hurry`` was set meanwhile). An
    unfinished ``aw`` is cancelled (wrap what must go on, e.g. in ``asyncio.wait``,
    whose cancellation leaves the tasks it waits for running)."""
    done = asyncio.ensure_future(aw)
    hurried = asyncio.ensure_future(hurry.wait())
    try:
        await asyncio.wait([done, hurried], timeout=within, return_when=asyncio.FIRST_COMPLETED)
        if done.done() and not done.cancelled():
            return "done"
        return "hurried" if hurry.is_set() else "timeout"
    finally:
        for waiter in (done, hurried):
            waiter.cancel()
        await asyncio.gather(done, hurried, return_exceptions=True)
