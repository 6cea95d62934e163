"""Lua scripts run on connections kept for them: the calls made per event and per message.

A command through redis-py's pool pays, besides its round trip, for taking a
connection from the pool (its lock, and a non-blocking read that checks the
connection: one more system call), the retry wrapper and the response
callbacks. For the scripts on the fan-out's and the echo's path (``emit.lua``,
``lock.lua``, ``unlock.lua``) that is about as much CPU as the round trip itself
(``bench/README.md``, findings of 2026-11-25, fifth session). A lane is a
connection of redis-py's own class and settings that one call at a time uses
directly: the command is packed, written and its reply read, nothing else.
When every lane is busy a call goes through the pool as before: a burst waits
for nothing.

A lane that fails (the connection dropped, the call was cancelled) was
disconnected by redis-py; it connects again on its next use. No command is sent
twice: a script Redis does not know (it restarted) is run through the pool's
:class:`~redis.commands.core.AsyncScript`, which loads it first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError


class Lanes:
    """At most ``size`` connections of ``redis``'s settings, each used by one call at a time."""

    def __init__(self, redis: Redis, size: int) -> None:
        if size < 1:
            raise ValueError(f"size must be at least 1, not {size}")
        pool = redis.connection_pool
        # One timer per call, around its write and its read: a connection with a
        # socket timeout starts a task (asyncio.wait_for) for each write.
        self._settings = {**pool.connection_kwargs, "socket_timeout": None}
        self._connection_class = pool.connection_class
        self._timeout: float | None = pool.connection_kwargs.get("socket_timeout")
        self._size = size
        self._idle: list[AbstractConnection] = []
        self._made = 0
        self._closed = False

    async def run(self, script: AsyncScript, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """``script``'s reply, as ``script(keys=keys, args=args)`` would give it."""
        if self._closed:  # what runs after: the pool's (closed with its owner)
            return await script(keys=keys, args=args)
        if self._idle:
            lane = self._idle.pop()
        elif self._made < self._size:
            lane = self._connection_class(**self._settings)
            self._made += 1
        else:
            return await script(keys=keys, args=args)
        try:
            command = lane.pack_command("EVALSHA", script.sha, len(keys), *keys, *args)
            async with asyncio.timeout(self._timeout):
                await lane.send_packed_command(command, check_health=False)
                return await lane.read_response()
        except NoScriptError:
            pass  # not run: the pool's call loads it and runs it once
        finally:
            if self._closed:  # closed during the call: the lane goes with it
                await lane.disconnect()
            else:
                self._idle.append(lane)
        return await script(keys=keys, args=args)

    async def aclose(self) -> None:
        """Disconnect the idle lanes; a lane in use disconnects once its call ends."""
        self._closed = True
        idle, self._idle = self._idle, []
        for lane in idle:
            await lane.disconnect()
