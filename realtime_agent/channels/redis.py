"""Redis channel layer: many server processes, one Redis.

Each process holds ONE pub/sub connection, subscribed to its own *inbox*
channel, and routes a session to that inbox (a field of the session's route
hash) while it has local sockets (or a run) on it. Emitting is one Lua script
(``emit.lua``: next seq, bounded history, PUBLISH to the other routed inboxes),
so seq order is publish order on every process; the emitting process hands
the event to its own sockets itself, without reading it back. A process that
sees a gap in the seqs fills it from the history. The connection is owned by
a supervised loop: when it drops, or a publish-to-receive probe shows it went
deaf, the local sockets are closed with 1001 (they resume with ``after``) and
the loop subscribes a fresh inbox and routes every local session to it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import time
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from importlib import resources
from typing import Any

import orjson
from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import RedisError

from ..errors import Unavailable, describe, translate
from ..models import rfc3339, utcnow
from ..protocol import CloseCode
from .base import ControlHandler, Event, Joined, SeqReserver, Subscriber
from .batch import ScriptBatch
from .lanes import Lanes
from .presence import PresenceFlow

log = logging.getLogger(__name__)
SEQ_BLOCK = 1000
_LOCK_MS = 10_000
_COUNTER_TTL = 30 * 86_400
_LANES = 8  # connections for the scripts run per event or message (lanes.py)
_REROUTING = 32  # sessions routed at once after a reconnect
_STALE = -2  # route.lua: a later inbox of the process is routed


def _script(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text()


def _cancels() -> int:
    task = asyncio.current_task()
    return task.cancelling() if task is not None else 0


def _reraise_cancel(exc: BaseException | None = None, *, before: int = 0) -> None:
    """Raise the cancellation a Redis call swallowed.

    redis-py (through ``asyncio.wait_for`` on Python 3.11, CPython gh-86296) may
    swallow a cancel that arrives as a command completes, or turn it into a
    connection error. ``before`` is the task's cancel count before the call: only a
    request made during the call is raised, so cleanup that runs while a task is
    being cancelled (and may take the lock) still works.
    """
    if _cancels() > before:
        raise asyncio.CancelledError from exc


def _glob(text: str) -> str:
    """``text`` as a literal in a Redis glob pattern."""
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)


def _tail(channel: bytes, prefix: str) -> str:
    """A channel's name after ``prefix``."""
    return channel.decode().removeprefix(prefix)


def _retrieved(task: asyncio.Task[None]) -> None:
    """Mark a task's exception as seen (its waiters may all have gone)."""
    if not task.cancelled():
        task.exception()


_INTERRUPTED = "event stream interrupted; resume with after"


def _close(local: _Local, code: int, reason: str) -> None:
    """Ask every socket of the session on this process to close."""
    for sub in tuple(local.subs):
        sub.close(code, reason)


class _Deaf(Exception):
    """The subscriber stopped receiving our own probes."""


@dataclass(eq=False, slots=True)
class _Local:
    """This process's interest in one session channel."""

    subs: set[Subscriber] = field(default_factory=set)
    watchers: list[ControlHandler] = field(default_factory=list)
    users: int = 0
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    inbox: str | None = None  # where the session is routed for this process
    routing: asyncio.Task[None] | None = None  # a route in flight, shared by its waiters
    recheck: bool = False  # an emit's outcome became unknown during a fill
    last_seq: int | None = None
    filling: list[tuple[int, str]] | None = None
    presence: PresenceFlow = field(init=False)

    def __post_init__(self) -> None:
        self.presence = PresenceFlow(self.subs)


@translate(RedisError, OSError, service="Redis")
class RedisChannels:
    """The :class:`~realtime_agent.channels.base.ChannelLayer` on Redis."""

    def __init__(
        self,
        redis: Redis,
        reserve: SeqReserver,
        *,
        prefix: str,
        min_events: int,
        min_seconds: float,
        max_events: int,
        history_ttl: int,
        lease_seconds: float,
        probe_seconds: float,
    ) -> None:
        self._redis = redis
        # The subscriber, the probe and the alive key have a pool of their own, with
        # the main pool's connection settings: a burst that takes every connection of the
        # main pool (reroutes, emits, locks) must not make this process look dead to
        # itself (no probe heard: reset, every socket closed) or to others.
        main = redis.connection_pool
        self._beat = Redis.from_pool(
            BlockingConnectionPool(
                connection_class=main.connection_class,
                max_connections=3,  # one each; a reconnect may overlap the probe
                **main.connection_kwargs,
            )
        )
        self._reserve = reserve
        self._p = prefix
        # Prefixes of the keys and channels named after a process or an inbox.
        self._alive, self._inboxes_at, self._probes_at = (
            f"{prefix}alive:",
            f"{prefix}inbox:",
            f"{prefix}probe:",
        )
        self._keep = (min_events, max(max_events, min_events), int(min_seconds * 1000))
        self._history_ttl = history_ttl
        self._lease_ms = int(lease_seconds * 1000)
        self._probe_every = probe_seconds
        self._id = secrets.token_hex(6)
        self._probe_channel = self._probes_at + self._id
        self._alive_key = self._alive + self._id
        self._marks: dict[str, int] = {}
        self._local: dict[str, _Local] = {}
        self._leases: dict[str, tuple[str, asyncio.Task[None]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._releases: set[asyncio.Task[None]] = set()  # locks on their way back
        self._closing = False
        self._lock_lines: weakref.WeakValueDictionary[str, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )
        self._inbox: str | None = None  # while the subscriber is live
        self._inboxes = 0
        self._backoff = 0.1  # before the next reconnect; back to 0.1 once a probe came back
        self._give_up: tuple[str, str] | None = None  # an inbox to drop, and why
        self._mixed: str | None = None  # processes of an earlier release serve too
        self._older: dict[str, float] = {}  # their ids, and when each was last seen
        self._probe_seen = 0.0
        self.probe_lag: float | None = None
        self.problem: str | None = "starting"
        self._connected = asyncio.Event()
        self._subscribed = asyncio.Event()  # while there is an inbox (``_inbox``)
        # Up to 4 emits go out at once, each on a lane of its own (lanes.py); those
        # that come while 4 are in flight (many sessions streaming) leave together as
        # one pipeline when one ends.
        self._lanes = Lanes(redis, _LANES)
        self._emit: ScriptBatch[tuple[int, Event | None]] = ScriptBatch(
            redis, redis.register_script(_script("emit.lua")), self._spawn, via=self._lanes
        )
        self._broadcast = redis.register_script(_script("broadcast.lua"))
        self._route_script = redis.register_script(_script("route.lua"))
        self._presence = redis.register_script(_script("presence.lua"))
        self._history = redis.register_script(_script("since.lua"))
        self._unlock = redis.register_script(_script("unlock.lua"))
        self._take_lock = redis.register_script(_script("lock.lua"))
        self._renew = redis.register_script(_script("renew.lua"))

    def _key(self, kind: str, session_id: str) -> str:
        return f"{self._p}{kind}:{session_id}"

    @staticmethod
    def _addressed(session_id: str) -> str:
        """The head of an inbox message naming its session: ``<bytes>:<id>``."""
        return f"{len(session_id.encode())}:{session_id}"

    # --- lifecycle -----------------------------------------------------------

    async def __aenter__(self) -> RedisChannels:
        await self._redis.ping()
        self._spawn(self._supervise())
        self._spawn(self._probe())
        try:
            async with asyncio.timeout(10):  # serve only once events can reach our sockets
                await self._connected.wait()
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        # Locks on their way back get there: another process may be waiting for one.
        # Not longer than a lock lives: by then it has expired anyway.
        self._closing = True
        if self._releases:
            await asyncio.wait(self._releases, timeout=_LOCK_MS / 1000)
        for _, renewal in self._leases.values():
            renewal.cancel()
        tasks = list(self._tasks) + [t for _, t in self._leases.values()]
        try:
            while tasks:  # a fill or a route may start while the others end
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                tasks = list(self._tasks)
        finally:
            self._emit.close()  # no task would send a later one
            for local in self._local.values():
                local.presence.close()
            await self._lanes.aclose()
            await self._beat.aclose()

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # --- the subscriber ------------------------------------------------------

    async def _supervise(self) -> None:
        """Keep ONE pub/sub connection on a live inbox; never die, never go deaf silently."""
        first = True
        while True:
            pubsub = self._beat.pubsub()
            self._inboxes += 1
            inbox = f"{self._id}.{self._inboxes}"  # a fresh inbox: no route to it is stale
            rerouting: asyncio.Task[None] | None = None
            try:
                channel = self._inboxes_at + inbox
                await pubsub.subscribe(self._probe_channel, channel)
                await self._confirmed(pubsub, channel.encode())
                await self._stay_alive()  # routes to a process without one are dropped
                self._inbox = inbox
                self._subscribed.set()
                # Sessions are routed to the inbox while it is read: however long that
                # takes, it neither looks deaf nor lets Redis's output buffer fill up.
                rerouting = self._spawn(self._reroute(inbox, first))
                self._probe_seen = time.monotonic()
                await self._listen(pubsub)
            except (RedisError, OSError, _Deaf) as exc:
                _reraise_cancel(exc)
                self.problem = f"redis subscriber: {describe(exc)}"
                log.warning(
                    "redis subscriber lost (%s); reconnecting in %.1fs",
                    describe(exc),
                    self._backoff,
                )
            except Exception as exc:  # a bug here must not leave the process deaf for good
                self.problem = f"redis subscriber: {describe(exc)}"
                log.exception("redis subscriber failed; reconnecting in %.1fs", self._backoff)
            finally:
                self._inbox = None
                self._subscribed.clear()
                if rerouting is not None:
                    rerouting.cancel()
                await asyncio.shield(self._drop(pubsub))
            first = False
            await asyncio.sleep(self._backoff)
            self._backoff = min(self._backoff * 2, 5.0)

    async def _reroute(self, inbox: str, first: bool) -> None:
        """Route every session that has local sockets or a run to the new ``inbox``."""
        sessions = [(sid, local) for sid, local in self._local.items() if local.users]
        slots = asyncio.Semaphore(_REROUTING)  # leave the pool's connections to emits and locks

        async def reroute(sid: str, local: _Local) -> None:
            async with slots:
                await self._ready(sid, local)

        results = await asyncio.gather(
            *(reroute(sid, local) for sid, local in sessions), return_exceptions=True
        )
        for (sid, local), result in zip(sessions, results, strict=True):
            if isinstance(result, (RedisError, OSError)):
                self._give_up = (inbox, f"routing {sid} failed: {describe(result)}")  # reconnect
                return
            if isinstance(result, Exception):  # e.g. the store, to seed a lost counter
                log.error("could not route session %s to this process: %s", sid, describe(result))
                _close(local, CloseCode.GOING_AWAY, _INTERRUPTED)
        if inbox == self._inbox:
            self.problem = self._mixed
            self._connected.set()
            if not first:
                log.warning("redis subscriber reconnected; rerouted %d sessions", len(sessions))

    async def _read(self, pubsub: Any) -> Any:
        """The next reply on the subscriber, however long it takes.

        Read from the connection itself: ``PubSub.get_message`` wraps every read in
        a retry, a health check and a dict, which costs more than the fan-out of
        a chunk to a few sockets (``bench/README.md``); reconnecting is ours anyway.
        No timer per read either: the listener's one deadline moves with each probe.
        """
        return await pubsub.connection.read_response(
            timeout=math.inf, disconnect_on_error=False, push_request=True
        )

    async def _confirmed(self, pubsub: Any, channel: bytes) -> None:
        """Wait until Redis confirms the subscription to ``channel``."""
        async with asyncio.timeout(10):
            while True:
                reply = await self._read(pubsub)
                if reply[0] == b"subscribe" and reply[1] == channel:
                    return

    async def _drop(self, pubsub: Any) -> None:
        """Sockets may have missed events: close them so they resume."""
        for local in self._local.values():
            local.ready.clear()
            local.last_seq = None
            local.filling = None
            local.recheck = False
            _close(local, CloseCode.GOING_AWAY, _INTERRUPTED)
        try:
            await pubsub.aclose()
        except (RedisError, OSError):
            pass

    async def _listen(self, pubsub: Any) -> None:
        """Hand out what the inbox receives until the subscriber goes deaf (no probe
        for 3 intervals; a probe goes out every ``_probe_every`` seconds) or the
        inbox is given up; a reason to give up is seen with the next message."""
        probe = self._probe_channel.encode()
        deaf_after = 3 * self._probe_every
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(deaf_after) as deadline:
                while True:
                    reply = await self._read(pubsub)
                    if reply is None:  # redis-py's answer to the socket timing out (ETIMEDOUT)
                        raise _Deaf("the subscriber's connection timed out")
                    if self._give_up is not None and self._give_up[0] == self._inbox:
                        raise _Deaf(self._give_up[1])
                    if reply[0] != b"message":
                        continue
                    if reply[1] == probe:
                        deadline.reschedule(loop.time() + deaf_after)
                        self._probe_seen = time.monotonic()
                        self._backoff = 0.1
                        self.probe_lag = self._probe_seen - float(reply[2])
                        self.problem = self._mixed
                        continue
                    try:
                        self._receive(reply[2])
                    except Exception:  # one bad message or handler must not cut off the rest
                        log.exception("could not hand out an inbox message: %r", reply[2][:200])
        except TimeoutError:
            if not deadline.expired():
                raise
            silent = time.monotonic() - self._probe_seen
            raise _Deaf(f"no probe received for {silent:.1f}s") from None

    def _receive(self, message: bytes) -> None:
        size, _, rest = message.partition(b":")
        head = int(size)
        sid = rest[:head].decode()
        if (local := self._local.get(sid)) is not None:
            self._dispatch(sid, local, rest[head:].decode())

    async def _probe(self) -> None:
        while True:
            try:
                await self._beat.publish(self._probe_channel, repr(time.monotonic()))
                # Only an inbox routed before this check: its key was set before it.
                inbox = self._inbox
                if not await self._stay_alive() and inbox is not None:
                    # Others may have dropped its routes: start again on a fresh inbox.
                    self._give_up = (inbox, "this process's alive key was gone")
                await self._census()
            except (RedisError, OSError) as exc:
                _reraise_cancel(exc)
                self.problem = f"redis: {describe(exc)}"
            _reraise_cancel()
            await asyncio.sleep(self._probe_every)

    async def _census(self) -> None:
        """Report processes of an earlier release serving on this Redis.

        Before inboxes, a process subscribed a channel per session: its events
        and this process's do not reach each other's sockets. Every process
        subscribes its probe channel; one without an inbox channel is older. While
        one serves, this process is not ready (``problem``): a rolling deployment
        stops instead of serving sessions split in two (``docs/operations.md``).
        """
        async with self._beat.pipeline(transaction=True) as both:  # one moment for both
            both.pubsub_channels(_glob(self._probes_at) + "*")
            both.pubsub_channels(_glob(self._inboxes_at) + "*")
            probes, inboxes = await both.execute()
        current = {_tail(ch, self._inboxes_at).partition(".")[0] for ch in inboxes}
        now = time.monotonic()
        for process in {_tail(ch, self._probes_at) for ch in probes} - current:
            self._older[process] = now
        # One that is reconnecting has no probe channel for a moment: it still counts
        # until its alive key would have expired.
        forget = now - 5 * self._probe_every
        self._older = {p: seen for p, seen in self._older.items() if seen > forget}
        older = sorted(self._older)
        mixed = (
            f"processes of an earlier release serve on this Redis ({', '.join(older)}): "
            "their sockets and ours would not see each other's events; replace them all"
            if older
            else None
        )
        if mixed != self._mixed:
            (log.error if mixed else log.warning)(mixed or "no process of an earlier release left")
            if self.problem == self._mixed:  # else a worse problem shows until it clears
                self.problem = mixed
            self._mixed = mixed

    async def _stay_alive(self) -> bool:
        """Refresh this process's alive key; whether it was still there.

        Presence counts, and routes go to, only processes whose alive key is there
        (a killed one's expires after 5 probe intervals, and joins then drop its
        routes). A process stalled that long was 3 intervals without its probe: it
        resets its subscriber when it wakes. One whose key vanished otherwise (an
        eviction) learns it here, and resets too.
        """
        async with self._beat.pipeline(transaction=False) as pipe:
            pipe.exists(self._alive_key)
            pipe.set(self._alive_key, 1, ex=max(1, int(self._probe_every * 5)))
            there, _ = await pipe.execute()
        return bool(there)

    def _dispatch(self, sid: str, local: _Local, text: str) -> None:
        head, _, body = text.partition("|")
        if head == "!":
            self._control(local, body)
            return
        seq = int(head)
        if seq == 0:
            local.presence.offer(Event(0, "presence", body))
            return
        self._arrive(sid, local, seq, body)

    def _catch_up(self, session_id: str) -> None:
        """Read what this process's sockets may lack from the history (an emit whose
        outcome is unknown)."""
        local = self._local.get(session_id)
        if local is None or local.last_seq is None:
            return
        if local.filling is not None:  # its history may have been read before the emit
            local.recheck = True
            return
        self._start_fill(session_id, local, local.last_seq, [])

    def _arrive(
        self, sid: str, local: _Local, seq: int, body: str, event: Event | None = None
    ) -> None:
        """Deliver the numbered event in order: after a gap, fill it from history first."""
        if local.filling is not None:
            local.filling.append((seq, body))
            return
        if local.last_seq is not None and seq > local.last_seq + 1:
            self._start_fill(sid, local, local.last_seq, [(seq, body)])
            return
        self._deliver(local, seq, body, event)

    def _deliver(self, local: _Local, seq: int, body: str, event: Event | None = None) -> None:
        if local.last_seq is not None and seq <= local.last_seq:
            return
        local.last_seq = seq
        if event is None:
            event = Event(seq, "", body)
        for sub in tuple(local.subs):
            sub.deliver(event)

    def _start_fill(
        self, sid: str, local: _Local, after: int, waiting: list[tuple[int, str]]
    ) -> None:
        """Read the history after ``after`` (the last delivered seq); ``waiting``, and
        what comes meanwhile, goes out after it."""
        local.filling = waiting
        self._spawn(self._fill(sid, local, after))

    async def _fill(self, sid: str, local: _Local, after: int) -> None:
        """A pub/sub message went missing: fill the gap from history, then go on."""
        pending = local.filling  # what comes meanwhile waits here
        try:
            _, replay = await self._since(sid, after)
        except (RedisError, OSError):
            replay = None
        if pending is None or local.filling is not pending:
            return  # the subscriber was reset meanwhile
        local.filling = None
        if replay is None:
            _close(local, CloseCode.GOING_AWAY, "events were lost; resume with after")
            local.last_seq = None
            return
        for event in replay:
            self._deliver(local, event.seq, event.text)
        # What came meanwhile: from others in order, this process's own emits in
        # between; history read before the latest of them may leave a gap again.
        for seq, body in sorted(pending):
            self._arrive(sid, local, seq, body)
        if local.recheck and local.filling is None:
            local.recheck = False
            self._catch_up(sid)

    def _control(self, local: _Local, body: str) -> None:
        kind, _, arg = body.partition("|")
        if kind == "close":
            code, _, reason = arg.partition("|")
            _close(local, int(code), reason)
            return
        for handler in tuple(local.watchers):
            handler(body)

    async def _attach(self, session_id: str) -> _Local:
        local = self._local.get(session_id)
        if local is None:
            local = self._local[session_id] = _Local()
        local.users += 1
        try:
            async with asyncio.timeout(10):
                await self._ready(session_id, local)
        except BaseException:
            await self._detach(session_id, local)
            raise
        return local

    async def _ready(self, session_id: str, local: _Local) -> None:
        """Return once the session is routed to this process's inbox, routing it if no
        one is. A route in flight is shared by all who wait for it, and is not
        cancelled with one of them; when it fails, each of them gets its error and
        the next one to come routes again."""
        while not local.ready.is_set():
            if self._closing:  # nothing would read the inbox, nor own the route
                raise Unavailable("the server is shutting down")
            if self._local.get(session_id) is not local:
                return  # everyone left: nothing to route
            if self._inbox is None:  # once there is an inbox, route it (or share the route)
                await self._subscribed.wait()
                continue
            if local.routing is None:
                local.routing = self._spawn(self._route(session_id, local))
                local.routing.add_done_callback(_retrieved)
            routing = local.routing
            await asyncio.wait([routing])
            if local.routing is routing:
                local.routing = None
            if not routing.cancelled() and (exc := routing.exception()) is not None:
                raise exc

    async def _route(self, session_id: str, local: _Local) -> None:
        """Route the session to this process's inbox; ready once every later event
        reaches it, with ``last_seq`` the last one that may not."""
        inbox = self._inbox
        if inbox is None:
            return  # no subscriber: the supervisor routes every session once there is one
        last = await self._routes(session_id, inbox, 1)
        if last == _STALE:
            return  # a later inbox of this process is routed: this one is dead already
        try:
            if last < 0:  # a new session, or Redis lost its data: seed the counter
                last = await self._seed_counter(session_id)
        except BaseException:
            await asyncio.shield(self._unroute(session_id, inbox))  # no route left behind
            raise
        if inbox != self._inbox:  # the subscriber was replaced meanwhile: a dead inbox
            await self._unroute(session_id, inbox)
            return
        local.inbox = inbox
        if self._local.get(session_id) is not local:  # everyone left meanwhile
            await self._unroute(session_id, inbox)
            return
        local.last_seq = last if local.last_seq is None else max(local.last_seq, last)
        local.ready.set()

    async def _routes(self, session_id: str, inbox: str, delta: int) -> int:
        """``route.lua``: count this process's interest in the session up or down."""
        keys = [self._key("route", session_id), self._key("seq", session_id)]
        return int(await self._route_script(keys=keys, args=[inbox, delta, self._id, self._alive]))

    async def _unroute(self, session_id: str, inbox: str) -> None:
        try:
            await self._routes(session_id, inbox, -1)
        except (RedisError, OSError):
            pass  # messages keep coming to an inbox that ignores them, until it is dropped

    async def _detach(self, session_id: str, local: _Local) -> None:
        local.users -= 1
        if local.users == 0 and self._local.get(session_id) is local:
            del self._local[session_id]
            local.presence.close()
            if (inbox := local.inbox) is not None:
                local.inbox = None
                await self._unroute(session_id, inbox)

    # --- events --------------------------------------------------------------

    async def _reserve_block(self, session_id: str) -> int:
        """Reserve the next block of seq numbers in the store; returns its floor.

        Every seq ever used by any process is at most the floor of a reservation
        made after it, so a lost counter may safely continue from a fresh floor.
        """
        floor = await self._reserve(session_id, SEQ_BLOCK)
        self._marks[session_id] = floor + SEQ_BLOCK
        return floor

    def held(self) -> tuple[int, int]:
        return 0, 0  # the history lives in Redis

    async def emit(self, session_id: str, frame: dict[str, Any]) -> Event:
        frame["session_id"] = session_id
        frame["ts"] = rfc3339(utcnow())
        body = orjson.dumps(frame)[:-1]
        keys = [
            self._key("seq", session_id),
            self._key("hist", session_id),
            self._key("route", session_id),
        ]
        # The counter may only start from the floor of a reservation made now.
        init: int | str = "" if session_id in self._marks else await self._reserve_block(session_id)
        while True:
            args = [
                body,
                self._marks[session_id],
                init,
                *self._keep,
                self._history_ttl,
                _COUNTER_TTL,
                self._inboxes_at,
                self._inbox or "",
                self._addressed(session_id),
            ]
            numbered = partial(self._numbered, session_id, body, frame["type"])
            before = _cancels()
            try:
                seq, event = await self._emit(keys, args, numbered)
            except BaseException:
                self._catch_up(session_id)  # it may be numbered, and sent to the others
                raise
            _reraise_cancel(before=before)  # an interrupt during the call must interrupt
            if event is not None:
                return event
            if seq == -2 and init != "":
                raise RuntimeError("emit.lua refused an initial seq; this is a bug")
            init = await self._reserve_block(session_id)
            if seq == -2:  # Redis lost the counter: continue past every number reserved
                log.warning("seq counter of %s was missing; continuing after %d", session_id, init)

    def _numbered(
        self, session_id: str, body: bytes, kind: str, reply: Any
    ) -> tuple[int, Event | None]:
        """emit.lua's reply: the seq, and the event unless the script refused it.

        No copy comes back to this process: its sockets get the event as soon as the
        reply is read, or once the earlier ones on their way from others are in; also
        when the emitting task was interrupted meanwhile, since the others got it.
        """
        seq = int(reply)
        if seq <= 0:
            return seq, None
        text = f'{body.decode()},"seq":{seq}}}'
        event = Event(seq, kind, text)
        if (local := self._local.get(session_id)) is not None:
            self._arrive(session_id, local, seq, text, event)
        return seq, event

    async def _since(self, session_id: str, after: int | None) -> tuple[int, list[Event] | None]:
        """The current last seq, and every event after ``after`` if all are still kept."""
        reply = await self._history(
            keys=[self._key("seq", session_id), self._key("hist", session_id)],
            args=["" if after is None else after],
        )
        last = int(reply[0])
        if after is None or last < 0:
            return last, None
        if after == last:
            return last, []
        if after > last or after < 0 or len(reply) - 1 != last - after:
            return last, None
        events = []
        for raw in reply[1:]:
            data = raw.decode().partition("|")[2]
            events.append(Event(int(data.rsplit(":", 1)[1][:-1]), "", data))
        if events[0].seq != after + 1 or events[-1].seq != last:
            return last, None
        return last, events

    async def join(self, session_id: str, sub: Subscriber, after: int | None) -> Joined:
        local = await self._attach(session_id)
        local.subs.add(sub)
        try:
            viewers = await self._count(session_id, 1)
            last, replay = await self._since(session_id, after)
            if last < 0:  # a new session, or Redis lost its data: seed the counter
                await self._seed_counter(session_id)
                last, replay = await self._since(session_id, after)
        except BaseException:
            await self.leave(session_id, sub)
            raise
        return Joined(last, replay, viewers)

    async def _count(self, session_id: str, delta: int) -> int:
        """``presence.lua``: count a socket joining (1) or leaving (-1) on this process
        and tell every routed process the total; returns it."""
        keys = [self._key("presence", session_id), self._key("route", session_id)]
        args: list[str | int] = [
            self._id,
            delta,
            self._history_ttl,
            self._alive,
            self._inboxes_at,
            self._addressed(session_id),
        ]
        return int(await self._presence(keys=keys, args=args))

    async def _seed_counter(self, session_id: str) -> int:
        """Create a missing counter at the durable mark without emitting an event;
        returns the counter (another process may have seeded it first)."""
        floor, key = await self._reserve_block(session_id), self._key("seq", session_id)
        async with self._redis.pipeline(transaction=True) as seed:
            seed.set(key, floor, nx=True, ex=_COUNTER_TTL)
            seed.get(key)
            _, counter = await seed.execute()
        return int(counter)

    async def leave(self, session_id: str, sub: Subscriber) -> None:
        local = self._local.get(session_id)
        if local is None or sub not in local.subs:
            return
        local.subs.discard(sub)
        try:
            await self._count(session_id, -1)
        finally:
            await self._detach(session_id, local)

    async def close_session(self, session_id: str, code: int, reason: str) -> None:
        body = f"close|{int(code)}|{reason}"
        await self._tell(session_id, body)
        self._control_here(session_id, body)
        await self._redis.delete(self._key("hist", session_id))

    async def _tell(self, session_id: str, control: str) -> None:
        """Send a control message to every process routed to the session, this one too."""
        message = f"{self._addressed(session_id)}!|{control}"
        await self._broadcast(
            keys=[self._key("route", session_id)], args=[self._inboxes_at, message]
        )

    def _control_here(self, session_id: str, body: str) -> None:
        """Apply a closing control to this process's sockets now, not when its pub/sub
        copy comes back: events emitted after it reach local sockets directly
        (:meth:`emit`), and must not overtake it. Closing twice is harmless."""
        if (local := self._local.get(session_id)) is not None:
            self._control(local, body)

    def close_local(self, code: int, reason: str) -> None:
        for local in self._local.values():
            _close(local, code, reason)

    # --- coordination --------------------------------------------------------

    @asynccontextmanager
    async def lock(self, session_id: str) -> AsyncIterator[bool]:
        # This process's callers for one session wait in line here, first come first
        # served, so only the first polls Redis: a crowd of sockets joining one session
        # neither floods Redis with retries nor leaves one of them starving until the
        # timeout while newcomers win. (The line lives while someone is in it.)
        # One deadline covers the line and Redis: when Redis hangs, everyone in the
        # line gives up after _LOCK_MS, not one after the other.
        line = self._lock_lines.setdefault(session_id, asyncio.Lock())
        key, token = self._key("lock", session_id), secrets.token_hex(8)
        before = _cancels()
        try:
            async with asyncio.timeout(_LOCK_MS / 1000):
                await line.acquire()
                try:
                    taken = await self._take(key, self._key("lease", session_id), token, before)
                except BaseException:
                    line.release()
                    raise
        except (RedisError, OSError) as exc:  # TimeoutError is an OSError
            raise Unavailable(f"Redis is unavailable: {describe(exc)}") from exc
        try:
            _reraise_cancel(before=before)  # taken while cancelled: give it back at once
            yield taken == 2
        finally:
            # The holder goes on at once (a turn it just queued need not wait a round
            # trip to start); the line moves on once Redis has the lock back. Once the
            # layer is closing, nobody would own that task: the holder gives it back.
            release = self._release(session_id, key, token, line)
            if self._closing:
                await asyncio.shield(release)
            else:
                task = asyncio.create_task(release)
                self._releases.add(task)
                task.add_done_callback(self._releases.discard)

    async def _release(self, session_id: str, key: str, token: str, line: asyncio.Lock) -> None:
        try:
            await self._lanes.run(self._unlock, [key], [token])
        except (RedisError, OSError) as exc:  # it expires by itself in _LOCK_MS
            log.warning("could not release the lock of %s: %s", session_id, describe(exc))
        finally:
            line.release()

    async def _take(self, key: str, lease: str, token: str, before: int) -> int:
        """Poll ``lock.lua`` until the lock is ours: 1 (no run), 2 (a run holds the lease)."""
        delay = 0.001
        lock = self._take_lock
        while not (taken := int(await self._lanes.run(lock, [key, lease], [token, _LOCK_MS]))):
            _reraise_cancel(before=before)
            await asyncio.sleep(delay)  # a holder keeps it for milliseconds
            delay = min(delay * 2, 0.05)
        return taken

    async def acquire_run(self, session_id: str) -> bool:
        key, token = self._key("lease", session_id), f"{self._id}.{secrets.token_hex(4)}"
        if not await self._redis.set(key, token, nx=True, px=self._lease_ms):
            return False
        renewal = asyncio.create_task(self._keep_lease(session_id, key, token))
        self._leases[session_id] = (token, renewal)
        return True

    async def _keep_lease(self, session_id: str, key: str, token: str) -> None:
        while True:
            await asyncio.sleep(self._lease_ms / 3000)
            try:
                kept = await self._renew(keys=[key], args=[token, self._lease_ms])
                _reraise_cancel()
            except (RedisError, OSError) as exc:
                _reraise_cancel(exc)
                log.warning("could not renew the run lease of %s: %s", session_id, describe(exc))
                continue
            if not kept:
                log.error("run lease of %s was lost; stopping its runs here", session_id)
                local = self._local.get(session_id)
                for handler in tuple(local.watchers if local else ()):
                    handler("lease-lost")
                return

    async def release_run(self, session_id: str) -> None:
        held = self._leases.pop(session_id, None)
        if held is None:
            return
        token, renewal = held
        renewal.cancel()
        await asyncio.gather(renewal, return_exceptions=True)
        await self._unlock(keys=[self._key("lease", session_id)], args=[token])

    async def run_active(self, session_id: str) -> bool:
        return bool(await self._redis.exists(self._key("lease", session_id)))

    async def signal(self, session_id: str, kind: str) -> None:
        await self._tell(session_id, kind)
        if kind.startswith("revoke-viewers|"):
            self._control_here(session_id, kind)

    @asynccontextmanager
    async def watch(self, session_id: str, handler: ControlHandler) -> AsyncIterator[None]:
        local = await self._attach(session_id)
        local.watchers.append(handler)
        try:
            yield
        finally:
            local.watchers.remove(handler)
            await asyncio.shield(self._detach(session_id, local))
