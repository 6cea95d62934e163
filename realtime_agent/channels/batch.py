"""Calls of one Lua script made in the same turn of the event loop, sent together.

redis-py spends about 100 µs of CPU on a command sent alone (a connection taken
from the pool, a write, a read, the connection given back) and about 25 µs on
each command of a pipeline of 50 (``bench/README.md``). When many sessions
stream at once, their emits are due in the same turn of the loop: sent as one
pipeline they share that cost. A call alone in its turn is sent as it would
be without the batch, one turn of the loop later.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from ..errors import Unavailable

_Call = tuple[Sequence[Any], Sequence[Any], "asyncio.Future[Any]"]


class ScriptBatch:
    """Run ``script`` for each caller; the calls of one loop turn share a pipeline.

    No command is sent twice: a pipeline that fails fails each of its calls, as a
    lone command would. A caller that is cancelled before its turn ends is not sent.
    """

    def __init__(
        self,
        redis: Redis,
        script: AsyncScript,
        spawn: Callable[[Coroutine[Any, Any, None]], object],
    ) -> None:
        """``spawn`` starts the task that sends a batch; its owner cancels it on exit."""
        self._redis = redis
        self._script = script
        self._spawn = spawn
        self._due: list[_Call] = []

    def __call__(self, keys: Sequence[Any], args: Sequence[Any]) -> asyncio.Future[Any]:
        """The script's answer, once the batch of this turn has been sent and read."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Any] = loop.create_future()
        self._due.append((keys, args, answer))
        if len(self._due) == 1:
            loop.call_soon(self._send)
        return answer

    def _send(self) -> None:
        calls = [call for call in self._due if not call[2].cancelled()]
        self._due = []
        if calls:
            self._spawn(self._run(calls))

    async def _run(self, calls: list[_Call]) -> None:
        try:
            if len(calls) == 1:
                keys, args, _ = calls[0]
                answers: list[Any] = [await self._script(keys=keys, args=args)]
            else:
                answers = await self._pipeline(calls)
        except asyncio.CancelledError:  # the layer is closing
            _fail(calls, Unavailable("the server is shutting down"))
            raise
        except Exception as exc:  # the connection failed: so did every call of it
            _fail(calls, exc)
            return
        for (_, _, answer), value in zip(calls, answers, strict=True):
            if answer.done():
                continue
            if isinstance(value, Exception):
                answer.set_exception(value)
            else:
                answer.set_result(value)

    async def _pipeline(self, calls: list[_Call]) -> list[Any]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for keys, args, _ in calls:
                pipe.evalsha(self._script.sha, len(keys), *keys, *args)
            answers: list[Any] = await pipe.execute(raise_on_error=False)
        for i, value in enumerate(answers):
            if isinstance(value, NoScriptError):  # Redis restarted: the script loads again
                keys, args, _ = calls[i]
                try:
                    answers[i] = await self._script(keys=keys, args=args)
                except Exception as exc:  # this call's outcome, not the batch's
                    answers[i] = exc
        return answers


def _fail(calls: list[_Call], exc: BaseException) -> None:
    for _, _, answer in calls:
        if not answer.done():
            answer.set_exception(exc)
