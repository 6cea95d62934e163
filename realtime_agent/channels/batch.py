"""Calls of one Lua script that come while every lane is busy, sent together.

redis-py spends about 100 µs of CPU on a command sent alone (a connection taken
from the pool, a write, a read, the connection given back) and 25 to 40 µs on each
command of a pipeline of 10 to 50 (``bench/README.md``, findings of 2026-11-25).
When many sessions stream at once, the emits that come while every lane (a
call or a pipeline in flight) is busy share one pipeline and that cost; under
light load every emit is sent at once, as without the batch. A pipeline takes
everything queued: its size is not bounded.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Generic, TypeVar

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from ..errors import Unavailable
from .lanes import Lanes

T = TypeVar("T")
log = logging.getLogger(__name__)

_CLOSED = "the server is shutting down"


@dataclass(slots=True)
class _Call:
    keys: Sequence[Any]
    args: Sequence[Any]
    settle: Callable[[Any], Any]
    answer: asyncio.Future[Any]


class ScriptBatch(Generic[T]):
    """Run ``script`` for each caller; calls that come while every lane is busy queue,
    and go as one pipeline as soon as a lane is free (group commit).

    While fewer than ``lanes`` calls are in flight a call is sent at once by its
    caller, as without the batch: light load waits for nothing. Under load the
    calls that queue behind the busy lanes share one pipeline; its task puts each
    reply through the call's ``settle`` as soon as the pipeline is read, whether
    or not its caller still waits, so what must happen once Redis has run the
    script (an emit's delivery to this process's sockets) does not wait for the
    caller's turn. No command is sent twice: a pipeline that fails fails each of
    its calls, as a lone command would. A queued call whose caller was cancelled
    before its pipeline left is not sent.
    """

    def __init__(
        self,
        redis: Redis,
        script: AsyncScript,
        spawn: Callable[[Coroutine[Any, Any, None]], asyncio.Task[None]],
        lanes: int = 4,
        via: Lanes | None = None,
    ) -> None:
        """``spawn`` starts the task that sends a pipeline; its owner cancels it on exit.
        A call sent at once goes on one of ``via``'s connections when it has one free."""
        if lanes < 1:
            raise ValueError(f"lanes must be at least 1, not {lanes}")
        self._redis = redis
        self._script = script
        self._spawn = spawn
        self._lanes = lanes
        self._via = via
        self._busy = 0  # calls or pipelines in flight
        self._due: list[_Call] = []
        self._closed = False

    async def __call__(
        self, keys: Sequence[Any], args: Sequence[Any], settle: Callable[[Any], T]
    ) -> T:
        """What ``settle`` makes of the script's reply."""
        if self._closed:
            raise Unavailable(_CLOSED)
        if self._busy < self._lanes:
            self._busy += 1
            try:
                if self._via is None:
                    return settle(await self._script(keys=keys, args=args))
                return settle(await self._via.run(self._script, keys, args))
            finally:
                self._free()
        answer: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._due.append(_Call(keys, args, settle, answer))
        return await answer

    def close(self) -> None:
        """Fail the queued calls and every later one at once (the owner has exited;
        nobody would send them, and a lane may stay busy as long as Redis stalls)."""
        self._closed = True
        calls, self._due = self._due, []
        _fail(calls, Unavailable(_CLOSED))

    def _free(self) -> None:
        """A lane is free: what queued meanwhile leaves as one pipeline."""
        self._busy -= 1
        calls = [call for call in self._due if not call.answer.cancelled()]
        self._due = []
        if self._closed:
            _fail(calls, Unavailable(_CLOSED))
        elif calls:
            run = self._run(calls)
            try:
                sender = self._spawn(run)
            except Exception as exc:  # never raise from here: a caller's result stands
                run.close()
                log.exception("could not start a pipeline of script %s", self._script.sha)
                _fail(calls, exc)
                return
            self._busy += 1
            sender.add_done_callback(partial(self._ended, calls))

    def _ended(self, calls: list[_Call], sender: asyncio.Task[None]) -> None:
        """A pipeline's task is done: calls it did not answer fail (cancelled before
        its first step as the owner closes, or a bug), and its lane is free."""
        if sender.cancelled():
            _fail(calls, Unavailable(_CLOSED))
        elif (exc := sender.exception()) is not None:
            log.error("a pipeline of script %s failed", self._script.sha, exc_info=exc)
            _fail(calls, exc)
        self._free()

    async def _run(self, calls: list[_Call]) -> None:
        try:
            replies = await self._pipeline(calls)
        except Exception as exc:  # the connection failed: so did every call of it
            _fail(calls, exc)
            return
        for call, reply in zip(calls, replies, strict=True):
            if isinstance(reply, Exception):  # Redis refused this call alone
                outcome: Any = reply
            else:
                try:
                    outcome = call.settle(reply)
                except Exception as exc:  # a bug in settle: this call's, not the batch's
                    log.exception("settling a reply of script %s failed", self._script.sha)
                    outcome = exc
            if call.answer.done():
                continue
            if isinstance(outcome, Exception):
                call.answer.set_exception(outcome)
            else:
                call.answer.set_result(outcome)

    async def _pipeline(self, calls: list[_Call]) -> list[Any]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for call in calls:
                pipe.evalsha(self._script.sha, len(call.keys), *call.keys, *call.args)
            replies: list[Any] = await pipe.execute(raise_on_error=False)
        for i, reply in enumerate(replies):
            if isinstance(reply, NoScriptError):  # Redis restarted: the script loads again
                try:
                    replies[i] = await self._script(keys=calls[i].keys, args=calls[i].args)
                except Exception as exc:  # this call's outcome, not the batch's
                    replies[i] = exc
        return replies


def _fail(calls: list[_Call], exc: BaseException) -> None:
    for call in calls:
        if not call.answer.done():
            call.answer.set_exception(exc)
