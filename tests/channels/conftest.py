"""Channel layers for the contract suite: the same tests on every backend, on real services."""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, TypeVar

import orjson
import pytest
from redis.asyncio import BlockingConnectionPool, Redis

from realtime_agent.channels.base import ChannelLayer, Event
from realtime_agent.channels.memory import MemoryChannels
from realtime_agent.channels.redis import RedisChannels
from tests.redis_util import REDIS_URL, delete_prefix, redis_client, unique_prefix

L = TypeVar("L", bound=MemoryChannels | RedisChannels)
#: Bounds every wait of the suite; waits end on a condition, never on time.
WAIT = 5.0
#: A history far larger than any test needs, unless a test asks for a small one.
HISTORY: dict[str, Any] = {
    "min_events": 100,
    "min_seconds": 60.0,
    "max_events": 1000,
    "max_bytes": 1 << 24,
}


class SeqBook:
    """The store's ``reserve_seq`` over a dict: returns the previous value and adds ``count``.

    An unknown session raises ``KeyError``, like a session the store does not have;
    :meth:`session` creates one.
    """

    def __init__(self) -> None:
        self.reserved: dict[str, int] = {}

    def session(self) -> str:
        """A new session id known to the book (nothing reserved yet)."""
        session_id = f"sess-{secrets.token_hex(8)}"
        self.reserved[session_id] = 0
        return session_id

    async def reserve(self, session_id: str, count: int) -> int:
        before = self.reserved[session_id]
        self.reserved[session_id] = before + count
        return before


class Recorder:
    """A :class:`Subscriber` that keeps what it was given and lets a test await it."""

    def __init__(self) -> None:
        self.delivered: list[Event] = []
        self.closes: list[tuple[int, str]] = []
        self._wake = asyncio.Event()

    def deliver(self, event: Event) -> None:
        self.delivered.append(event)
        self._wake.set()

    def close(self, code: int, reason: str) -> None:
        self.closes.append((code, reason))
        self._wake.set()

    def events(self) -> list[Event]:
        """Delivered session events (``seq > 0``), in delivery order."""
        return [e for e in self.delivered if e.seq]

    def frames(self) -> list[dict[str, Any]]:
        """The parsed text of :meth:`events`."""
        return [orjson.loads(e.text) for e in self.events()]

    def viewers(self) -> list[int]:
        """The viewer counts of the delivered presence frames, in order."""
        return [orjson.loads(e.text)["viewers"] for e in self.delivered if not e.seq]

    async def until(self, done: Callable[[], bool]) -> None:
        """Return once ``done()`` holds (checked after each delivery or close)."""
        async with asyncio.timeout(WAIT):
            while not done():
                self._wake.clear()
                await self._wake.wait()

    async def until_events(self, count: int) -> list[dict[str, Any]]:
        """Wait for ``count`` session events; return all parsed frames."""
        await self.until(lambda: len(self.events()) >= count)
        return self.frames()

    async def until_seq(self, seq: int) -> None:
        """Wait until the event numbered ``seq`` (or a later one) was delivered."""
        await self.until(lambda: any(e.seq >= seq for e in self.delivered))

    async def until_closed(self) -> tuple[int, str]:
        await self.until(lambda: bool(self.closes))
        return self.closes[0]


class Signals:
    """A :data:`ControlHandler` that records the kinds it was called with."""

    def __init__(self) -> None:
        self.kinds: list[str] = []
        self._wake = asyncio.Event()

    def __call__(self, kind: str) -> None:
        self.kinds.append(kind)
        self._wake.set()

    async def until(self, count: int) -> list[str]:
        async with asyncio.timeout(WAIT):
            while len(self.kinds) < count:
                self._wake.clear()
                await self._wake.wait()
        return self.kinds


async def exit_layer(layer: MemoryChannels | RedisChannels) -> None:
    """Exit ``layer``; fail (never hang) when it has not stopped within :data:`WAIT`.

    A layer that does not stop leaves tasks behind; they are cancelled until
    they are gone, so that the failure stays in this test.
    """
    exiting = asyncio.ensure_future(layer.__aexit__(None, None, None))
    done, _ = await asyncio.wait([exiting], timeout=WAIT)
    if done:
        return exiting.result()
    stuck = Counter(
        task.get_coro().__qualname__  # type: ignore[union-attr]
        for task in _tasks_of(layer) - {exiting}
    )
    names = ", ".join(f"{name} x{count}" for name, count in sorted(stuck.items()))
    while left := _tasks_of(layer):
        for task in left:
            task.cancel()
        await asyncio.wait(left, timeout=0.1)  # cleanup after a failure, not synchronisation
    pytest.fail(
        f"{type(layer).__name__} did not stop within {WAIT}s of its exit; still running: {names}"
    )


def _tasks_of(layer: object) -> set[asyncio.Task[Any]]:
    """The running tasks executing a method of ``layer`` (its coroutine's ``self``)."""
    return {
        task
        for task in asyncio.all_tasks()
        if not task.done()
        and getattr(getattr(task.get_coro(), "cr_frame", None), "f_locals", {}).get("self") is layer
    }


@asynccontextmanager
async def running(layer: L) -> AsyncIterator[L]:
    """Enter ``layer`` for the block; its exit is bounded by :func:`exit_layer`."""
    await layer.__aenter__()
    try:
        yield layer
    finally:
        await exit_layer(layer)


class Layers:
    """Builds layers of one backend sharing one :class:`SeqBook`.

    Two layers built here are two server processes of one deployment (on Redis,
    on one key prefix). Calling the factory returns an entered layer that is
    exited at teardown; :meth:`build` returns one the test enters and exits.
    """

    def __init__(self, seqs: SeqBook, stack: AsyncExitStack) -> None:
        self.seqs = seqs
        self._stack = stack

    def build(self, **overrides: Any) -> MemoryChannels | RedisChannels:
        return MemoryChannels(self.seqs.reserve, **{**HISTORY, **overrides})

    async def __call__(self, **overrides: Any) -> ChannelLayer:
        layer = self.build(**overrides)
        await self._enter(layer)
        return layer

    async def _enter(self, layer: MemoryChannels | RedisChannels) -> None:
        await self._stack.enter_async_context(running(layer))


class RedisLayers(Layers):
    """:class:`Layers` of the Redis backend, with a raw client to reach behind them."""

    def __init__(self, seqs: SeqBook, stack: AsyncExitStack, raw: Redis) -> None:
        super().__init__(seqs, stack)
        self.raw = raw
        self.prefix = unique_prefix()
        self.names: dict[RedisChannels, str] = {}

    def build(
        self, *, named: bool = False, pool_size: int | None = None, **overrides: Any
    ) -> RedisChannels:
        """A layer with its own client (and pool), like a separate process.

        A ``named`` layer's connections carry a client name, so that
        :meth:`kill_subscriber` can find them (naming adds a round trip per
        connection, so other layers connect as the app does). With ``pool_size``
        its client's pool is a blocking one of that size, as the app's is.
        """
        name = f"{self.prefix}{secrets.token_hex(3)}" if named else None
        if pool_size is None:
            client = Redis.from_url(REDIS_URL, client_name=name)
        else:
            client = Redis.from_pool(
                BlockingConnectionPool.from_url(
                    REDIS_URL, client_name=name, max_connections=pool_size
                )
            )
        self._stack.push_async_callback(client.aclose)
        options: dict[str, Any] = {
            **{k: v for k, v in HISTORY.items() if k != "max_bytes"},  # in-process only
            "history_ttl": 600,
            "lease_seconds": 1.0,
            "probe_seconds": 0.2,
            **overrides,
        }
        layer = RedisChannels(client, self.seqs.reserve, prefix=self.prefix, **options)
        if name is not None:
            self.names[layer] = name
        return layer

    async def __call__(
        self, *, named: bool = False, pool_size: int | None = None, **overrides: Any
    ) -> RedisChannels:
        layer = self.build(named=named, pool_size=pool_size, **overrides)
        await self._enter(layer)
        return layer

    async def kill_subscriber(self, layer: RedisChannels) -> int:
        """Kill the pub/sub connection(s) of a ``named`` layer; how many were killed.

        Narrower than ``CLIENT KILL TYPE pubsub``, which would also cut other
        tests' subscribers on a shared Redis.
        """
        name = self.names[layer]
        clients = await self.raw.client_list(_type="pubsub")
        ids = [c["id"] for c in clients if c.get("name") == name]
        for client_id in ids:
            await self.raw.client_kill_filter(_id=client_id)
        return len(ids)

    def key(self, kind: str, session_id: str) -> str:
        """The Redis key (or channel) ``kind`` of a session under this test's prefix."""
        return f"{self.prefix}{kind}:{session_id}"


@asynccontextmanager
async def _redis_layers(seqs: SeqBook) -> AsyncIterator[RedisLayers]:
    """Redis layers on a fresh prefix; at the end, exit them and delete the prefix's keys."""
    raw = await redis_client()
    async with AsyncExitStack() as stack:
        # Callbacks run last-in first-out: layers exit, then keys go, then the client.
        stack.push_async_callback(raw.aclose)
        layers = RedisLayers(seqs, stack, raw)
        stack.push_async_callback(delete_prefix, raw, layers.prefix)
        yield layers


@pytest.fixture
def seqs() -> SeqBook:
    """The store's seq reservations, shared by every layer of a test (and its restarts)."""
    return SeqBook()


@pytest.fixture(params=["memory", "redis"])
async def make_layer(request: pytest.FixtureRequest, seqs: SeqBook) -> AsyncIterator[Layers]:
    """A factory of layers of each backend; on Redis, a fresh prefix deleted at teardown."""
    if request.param == "memory":
        async with AsyncExitStack() as stack:
            yield Layers(seqs, stack)
    else:
        async with _redis_layers(seqs) as layers:
            yield layers


@pytest.fixture
async def layer(make_layer: Layers) -> ChannelLayer:
    """An entered layer of each backend with a large history."""
    return await make_layer()


@pytest.fixture
async def redis_layers(seqs: SeqBook) -> AsyncIterator[RedisLayers]:
    """A factory of Redis layers only (several processes of one deployment)."""
    async with _redis_layers(seqs) as layers:
        yield layers
