"""The package's own exceptions, as one small tree::

    RealtimeAgentError
    └── Unavailable        a backing service (the store, Redis) cannot be reached now

Protocol-level refusals are :class:`~realtime_agent.protocol.FrameError` (an
answer to a client's frame), and model failures
:class:`~realtime_agent.llm.base.LLMError`; neither is an error of the server.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class RealtimeAgentError(Exception):
    """The root of realtime-agent's own errors."""


class Unavailable(RealtimeAgentError):
    """A backing service cannot be reached; nothing was changed by the failed call."""


def describe(exc: BaseException) -> str:
    """``exc`` for a log line or an error message: its class and its text.

    Not ``repr``: redis-py's exceptions leave their text out of it
    (``network:ConnectionError``), which is the part that says what failed.
    """
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def translate(
    *causes: type[BaseException],
    service: str,
    when: Callable[[BaseException], bool] = lambda exc: True,
) -> Callable[[type[T]], type[T]]:
    """Class decorator: every public coroutine method raises :class:`Unavailable`
    (chained to the cause) when it fails with one of ``causes`` for which ``when`` holds."""

    def wrap(method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return await method(*args, **kwargs)
            except causes as exc:
                if not when(exc):
                    raise
                raise Unavailable(f"{service} is unavailable: {describe(exc)}") from exc

        return wrapper

    def decorate(cls: type[T]) -> type[T]:
        for name, member in list(vars(cls).items()):
            if not name.startswith("_") and inspect.iscoroutinefunction(member):
                setattr(cls, name, wrap(member))
        return cls

    return decorate
