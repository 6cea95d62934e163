"""Adaptive delta coalescing: a lone chunk goes at once, a burst merges, order is kept."""

from __future__ import annotations

import asyncio

import pytest

from realtime_agent.coalesce import Coalescer


async def test_a_lone_chunk_goes_out_at_once() -> None:
    """After a quiet spell the first chunk is sent before add() returns."""
    sent: list[str] = []

    async def send(text: str) -> None:
        sent.append(text)

    async with Coalescer(send, window=60) as deltas:
        await deltas.add("hello")
        assert sent == ["hello"]


async def test_a_burst_merges_into_one_send_and_ends_flushed() -> None:
    """Chunks within the window merge; leaving the block sends the rest, in order."""
    sent: list[str] = []

    async def send(text: str) -> None:
        sent.append(text)

    async with Coalescer(send, window=60) as deltas:
        for chunk in ("a", "b", "c", "d"):
            await deltas.add(chunk)
    assert sent == ["a", "bcd"]
    assert "".join(sent) == "abcd"


async def test_window_zero_never_merges() -> None:
    """With no window every chunk is its own send."""
    sent: list[str] = []

    async def send(text: str) -> None:
        sent.append(text)

    async with Coalescer(send, window=0) as deltas:
        for chunk in ("a", "b", "c"):
            await deltas.add(chunk)
    assert sent == ["a", "b", "c"]


async def test_the_timer_sends_a_burst_without_more_chunks() -> None:
    """Merged chunks go out when the window ends even if nothing else arrives."""
    sent: list[str] = []
    second = asyncio.Event()

    async def send(text: str) -> None:
        sent.append(text)
        if len(sent) == 2:
            second.set()

    async with Coalescer(send, window=0.01) as deltas:
        await deltas.add("x")
        await deltas.add("y")
        await deltas.add("z")
        await second.wait()
        assert sent == ["x", "yz"]


async def test_an_interrupt_drops_what_was_not_sent() -> None:
    """Leaving by an exception sends nothing more: only sent text counts as said."""
    sent: list[str] = []

    async def send(text: str) -> None:
        sent.append(text)

    with pytest.raises(asyncio.CancelledError):
        async with Coalescer(send, window=60) as deltas:
            await deltas.add("kept")
            await deltas.add("dropped")
            raise asyncio.CancelledError
    assert sent == ["kept"]


async def test_a_failure_still_sends_what_was_merged() -> None:
    """Leaving by an error (a failed model call) sends the pending text first."""
    sent: list[str] = []

    async def send(text: str) -> None:
        sent.append(text)

    with pytest.raises(RuntimeError):
        async with Coalescer(send, window=60) as deltas:
            await deltas.add("one ")
            await deltas.add("two")
            raise RuntimeError("the stream dropped")
    assert sent == ["one ", "two"]


async def test_a_fast_stream_widens_the_window_and_a_slower_one_brings_it_back() -> None:
    """Sends that merge more than one chunk per base window double the window up to
    its maximum; a send that merged no more than that brings it back. Two chunks in
    a 0.2 s window are a stream slower than one per 0.05 s: the window must not stay
    wide because it is wide (it would hold every later chunk of a light stream)."""
    sends: asyncio.Queue[str] = asyncio.Queue()

    async def send(text: str) -> None:
        sends.put_nowait(text)

    windows = []
    async with Coalescer(send, window=0.05, max_window=0.2) as deltas:
        await deltas.add("a")  # a lone chunk: sent at once
        assert await sends.get() == "a"
        windows.append(deltas.window)
        for burst in ("bcd", "efg", "hijkl", "mn"):  # each merged into one timed send
            for chunk in burst:
                await deltas.add(chunk)
            assert await sends.get() == burst
            windows.append(deltas.window)
        await deltas.add("o")  # one chunk in the base window: sent alone by the timer
        assert await sends.get() == "o"
        windows.append(deltas.window)
    assert windows == [0.05, 0.1, 0.2, 0.2, 0.05, 0.05]


async def test_a_slow_send_widens_the_window() -> None:
    """The window is at least twice what the last send took, up to its maximum."""

    async def slow_send(text: str) -> None:
        await asyncio.sleep(0.05)  # a send that takes this long (an expensive fan-out)

    async with Coalescer(slow_send, window=0.001, max_window=10) as deltas:
        await deltas.add("a")
        assert deltas.window >= 0.1
    async with Coalescer(slow_send, window=0.001, max_window=0.02) as capped:
        await capped.add("a")
        assert capped.window == 0.02


async def test_chunks_that_piled_up_during_a_slow_send_merge() -> None:
    """The quiet spell counts from the end of the last send: chunks read right after
    a send that waited (an overloaded process) merge, they do not each go out alone."""
    sends: asyncio.Queue[str] = asyncio.Queue()

    async def slow_send(text: str) -> None:
        await asyncio.sleep(0.05)  # the send waits this long for a busy loop
        sends.put_nowait(text)

    async with Coalescer(slow_send, window=0.001, max_window=0.02) as deltas:
        await deltas.add("a")  # a lone chunk: sent at once, and it took 50 ms
        assert sends.get_nowait() == "a"
        assert deltas.window == 0.02  # less than the send took
        await deltas.add("b")  # these waited in the model's stream during the send
        await deltas.add("c")
        assert sends.empty()  # not sent alone: merged, sent within the window
        assert await sends.get() == "bc"


async def test_a_failed_timed_send_is_raised_by_the_next_chunk() -> None:
    """A send the timer made that failed (Redis down) is not lost in its task: the
    next chunk raises it, and chunks are not merged behind a dead timer."""
    failed = asyncio.Event()
    sent: list[str] = []

    async def send(text: str) -> None:
        if text == "b":
            failed.set()
            raise RuntimeError("the channel layer is down")
        sent.append(text)

    with pytest.raises(RuntimeError, match="down"):
        async with Coalescer(send, window=0.01) as deltas:
            await deltas.add("a")  # sent at once
            await deltas.add("b")  # merged: the timer sends it, and that fails
            await failed.wait()
            await deltas.add("c")
    assert sent == ["a"]


async def test_a_failed_timed_send_is_raised_on_leaving() -> None:
    """The failure also surfaces when the stream ends right after it."""
    failed = asyncio.Event()

    async def send(text: str) -> None:
        if text == "b":
            failed.set()
            raise RuntimeError("the channel layer is down")

    with pytest.raises(RuntimeError, match="down"):
        async with Coalescer(send, window=0.01) as deltas:
            await deltas.add("a")
            await deltas.add("b")
            await failed.wait()
