"""Calls of one Lua script made in the same turn of the event loop, sent together.

redis-py spends about 100 µs of CPU on a command sent alone (a connection taken
from the pool, a write, a read, the connection given back) and 25 to 40 µs on each
command of a pipeline of 10 to 50 (``bench/README.md``, findings of 2026-11-25).
When many sessions stream at once, their emits are due in the same turn of the
loop: sent as one pipeline they share that cost. A call alone in its turn is
sent as it would be without the batch, one turn of the loop later.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from ..errors import Unavailable

T = TypeVar("T")
log = logging.getLogger(__name__)

_CLOSED = "the server is shutting down"


@dataclass(slots=True)
class _Call(Generic[T]):
    keys: Sequence[Any]
    args: Sequence[Any]
    settle: Callable[[Any], T]
    answer: asyncio.Future[Any]  # _ALONE, or what settle made of the reply


class _Alone:
    """The answer that tells a caller its call is alone in its turn: send it yourself."""


_ALONE = _Alone()


class ScriptBatch(Generic[T]):
    """Run ``script`` for each caller; the calls of one loop turn share a pipeline.

    A call alone in its turn is sent by its caller, as without the batch (a task
    would cost more than it saves). When several are due, a task sends them as
    one pipeline and puts each reply through its ``settle`` as soon as the
    pipeline is read, whether or not its caller still waits: what must happen once
    Redis has run the script (an emit's delivery to this process's sockets) does
    not wait for the caller's turn. No command is sent twice: a pipeline that
    fails fails each of its calls, as a lone command would. A call whose caller
    was cancelled before its turn ended is not sent.
    """

    def __init__(
        self,
        redis: Redis,
        script: AsyncScript,
        spawn: Callable[[Coroutine[Any, Any, None]], asyncio.Task[None]],
    ) -> None:
        """``spawn`` starts the task that sends a batch; its owner cancels it on exit."""
        self._redis = redis
        self._script = script
        self._spawn = spawn
        self._due: list[_Call[Any]] = []
        self._closed = False

    async def __call__(
        self, keys: Sequence[Any], args: Sequence[Any], settle: Callable[[Any], T]
    ) -> T:
        """What ``settle`` makes of the script's reply."""
        if self._closed:
            raise Unavailable(_CLOSED)
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Any] = loop.create_future()
        if not self._due:  # the first call of this turn: the others join it
            loop.call_soon(self._send)
        self._due.append(_Call(keys, args, settle, answer))
        outcome = await answer
        if outcome is _ALONE:
            return settle(await self._script(keys=keys, args=args))
        result: T = outcome
        return result

    def close(self) -> None:
        """Fail every later call at once (the owner has exited; nobody would send it)."""
        self._closed = True

    def _send(self) -> None:
        calls = [call for call in self._due if not call.answer.cancelled()]
        self._due = []
        if self._closed:
            _fail(calls, Unavailable(_CLOSED))
        elif len(calls) == 1:
            calls[0].answer.set_result(_ALONE)
        elif calls:
            # Cancelled before its first step (the owner closing), the task would
            # leave its calls waiting: they fail once it is done, whatever its end.
            sender = self._spawn(self._run(calls))
            sender.add_done_callback(lambda _: _fail(calls, Unavailable(_CLOSED)))

    async def _run(self, calls: list[_Call[Any]]) -> None:
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

    async def _pipeline(self, calls: list[_Call[Any]]) -> list[Any]:
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


def _fail(calls: list[_Call[Any]], exc: BaseException) -> None:
    for call in calls:
        if not call.answer.done():
            call.answer.set_exception(exc)
