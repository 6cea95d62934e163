"""Lua scripts run on connections kept for them: the calls made per event and per message.

A command through redis-py's pool pays, besides its round trip, for taking a
connection from the pool (its lock, and a read with a zero timeout that checks
the connection: a turn of the event loop), the retry wrapper, the response
callbacks and, with redis-py's default socket timeout, an ``asyncio.wait_for``
task per write. For the scripts on the fan-out's and the echo's path
(``emit.lua``, ``lock.lua``, ``unlock.lua``) that is about as much CPU as the
round trip itself (``bench/README.md``, findings of 2026-11-25, fifth session).
A lane is a connection of redis-py's own class and settings that one call at a
time uses directly: the command is packed, written and its reply read, under
one timer for the pool's socket timeout. When every lane is busy a call goes
through the pool as before: a burst waits for nothing.

A call that fails, times out or is cancelled before its reply is read whole
disconnects its lane (no stale reply can answer the next call); a lane Redis
closed while it was idle connects again before its command is sent. Either
way the lane connects again on its next use. No command is sent twice: a
script Redis does not know (it restarted; NOSCRIPT means it did not run) is
run through the pool's :class:`~redis.commands.core.AsyncScript`, which loads
it first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, ResponseError


class Lanes:
    """At most ``size`` connections of ``redis``'s settings, each used by one call at a time."""

    def __init__(self, redis: Redis, size: int) -> None:
        if size < 1:
            raise ValueError(f"size must be at least 1, not {size}")
        pool = redis.connection_pool
        # The timeouts the pool's connections get (redis-py's defaults where the
        # URL sets none). A lane's call has one timer, around its write and its
        # read: a connection with a socket timeout starts a task (asyncio.wait_for)
        # for each write.
        like = pool.connection_class(**pool.connection_kwargs)
        self._timeout: float | None = like.socket_timeout
        self._settings = {
            **pool.connection_kwargs,
            "socket_timeout": None,
            "socket_connect_timeout": like.socket_connect_timeout,
        }
        self._connection_class = pool.connection_class
        self._size = size
        self._idle: list[AbstractConnection] = []
        self._made = 0
        self._closed = False

    async def run(self, script: AsyncScript, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """``script``'s reply, as ``script(keys=keys, args=args)`` would give it."""
        if (lane := self._take()) is not None:
            try:
                return await self._call(lane, script, keys, args)
            except NoScriptError:
                pass  # not run: the pool's call loads it and runs it once
        return await script(keys=keys, args=args)

    def _take(self) -> AbstractConnection | None:
        """An idle lane, or a new one while there are fewer than ``size``; ``None``
        when every lane is busy or the lanes are closed (the call uses the pool)."""
        if self._closed:
            return None
        if self._idle:
            return self._idle.pop()
        if self._made < self._size:
            self._made += 1
            return self._connection_class(**self._settings)
        return None

    async def _call(
        self,
        lane: AbstractConnection,
        script: AsyncScript,
        keys: Sequence[Any],
        args: Sequence[Any],
    ) -> Any:
        read = False  # the reply was read whole (an error reply too): the lane is clean
        try:
            if _closed_by_redis(lane):  # nothing sent yet: connecting again is safe
                await lane.disconnect()
            command = lane.pack_command("EVALSHA", script.sha, len(keys), *keys, *args)
            async with asyncio.timeout(self._timeout):
                await lane.send_packed_command(command, check_health=False)
                try:
                    reply = await lane.read_response()
                except ResponseError:
                    read = True
                    raise
            read = True
            return reply
        finally:
            # A call that failed or was cancelled before its reply was read whole
            # may have left a reply, or half a handshake, on the connection.
            if not read or self._closed:
                await lane.disconnect(nowait=True)
            if not self._closed:  # closed during the call: the lane goes with it
                self._idle.append(lane)

    async def aclose(self) -> None:
        """Disconnect the idle lanes; a lane in use disconnects once its call ends."""
        self._closed = True
        idle, self._idle = self._idle, []
        for lane in idle:
            await lane.disconnect()


def _closed_by_redis(lane: AbstractConnection) -> bool:
    """Whether Redis closed the idle lane's connection (a restart, its ``timeout``
    setting, a proxy). The pool finds out with a read that waits a loop turn; the
    end of the stream the loop has already read says it without one.
    (``_reader`` is the connection's ``asyncio.StreamReader`` in redis-py 5 to 8.)"""
    reader = getattr(lane, "_reader", None)
    return reader is not None and reader.at_eof()
