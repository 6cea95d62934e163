"""Small asyncio helpers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable


async def wait_unless(aw: Awaitable[object], hurry: asyncio.Event, within: float) -> bool:
    """Wait for ``aw`` up to ``within`` seconds, or until ``hurry`` is set; whether
    ``aw`` finished. An unfinished ``aw`` is cancelled (wrap what must go on, e.g. in
    ``asyncio.wait``, whose cancellation leaves the tasks it waits for running)."""
    done = asyncio.ensure_future(aw)
    hurried = asyncio.ensure_future(hurry.wait())
    try:
        await asyncio.wait([done, hurried], timeout=within, return_when=asyncio.FIRST_COMPLETED)
        return done.done() and not done.cancelled()
    finally:
        for waiter in (done, hurried):
            waiter.cancel()
        await asyncio.gather(done, hurried, return_exceptions=True)
