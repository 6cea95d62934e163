"""wait_unless: a wait that a shutdown's second signal (``hurry``) cuts short."""

from __future__ import annotations

import asyncio

from realtime_agent.aio import wait_unless


async def test_what_ends_first_says_how_the_wait_ended() -> None:
    """``done`` when the awaitable finishes, ``hurried`` at once when ``hurry`` is set
    (however long ``within``), ``timeout`` when neither comes in time."""
    hurry = asyncio.Event()
    finished = asyncio.get_running_loop().create_future()
    finished.set_result(None)
    assert await wait_unless(finished, hurry, 3600) == "done"

    never = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_soon(hurry.set)
    async with asyncio.timeout(10):  # a wait that ignored hurry would take an hour
        assert await wait_unless(never, hurry, 3600) == "hurried"
    assert never.cancelled()  # an unfinished awaitable is cancelled

    assert await wait_unless(asyncio.Event().wait(), asyncio.Event(), 0.01) == "timeout"


async def test_a_hurry_set_before_the_wait_ends_it_at_once_unless_the_awaitable_is_done() -> None:
    hurry = asyncio.Event()
    hurry.set()
    async with asyncio.timeout(10):
        assert await wait_unless(asyncio.Event().wait(), hurry, 3600) == "hurried"
    finished = asyncio.get_running_loop().create_future()
    finished.set_result(None)
    assert await wait_unless(finished, hurry, 3600) == "done"


async def test_the_tasks_an_asyncio_wait_watches_go_on_after_a_hurried_wait() -> None:
    """As the shutdown uses it: cutting the wait short leaves the runs running."""
    hurry = asyncio.Event()
    hurry.set()
    release = asyncio.Event()
    run = asyncio.create_task(release.wait())
    assert await wait_unless(asyncio.wait([run]), hurry, 3600) == "hurried"
    assert not run.done()
    release.set()
    await run
