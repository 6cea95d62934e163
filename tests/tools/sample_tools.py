"""Tools for the tests of ``realtime_agent.tools.registry``.

Importable as ``tests.tools.sample_tools`` for the ``load_tools`` tests.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Literal

from pydantic import Field

from realtime_agent.tools.registry import ToolContext, tool


@tool
def greet(name: str) -> str:
    """Greet someone."""
    return f"Hello, {name}!"


@tool(changes=True)
def shout(text: str) -> str:
    """Shout some text."""
    return text.upper()


TOOLS = [greet, shout]
NOT_A_TOOL = 42


def plain_function() -> str:
    """A function that was never decorated with @tool."""
    return "plain"


@tool
def forecast(
    city: Annotated[str, Field(description="the city to look up")],
    days: int = 3,
    *,
    context: ToolContext,
    units: Annotated[Literal["c", "f"], "temperature units"] = "c",
    tags: list[str] | None = None,
) -> dict[str, Any]:
    """Get the weather forecast.

    This second paragraph is not part of the description.
    """
    return {"city": city, "days": days, "units": units, "tags": tags, "session": context.session_id}


@tool
async def remember(key: str, value: int, ctx: ToolContext) -> str:
    """Store a value in the session context."""
    ctx.context[key] = value
    return f"stored {key}"


@tool(changes=True, name="renamed", description="An explicit description.")
def with_options() -> None:
    """Ignored docstring."""


@tool
def explode(reason: str) -> str:
    """Always fails."""
    raise RuntimeError(reason)


@tool
async def explode_async() -> str:
    """Always fails, asynchronously."""
    raise LookupError("async boom")


@tool
def echo(value: Any) -> Any:
    """Return the value unchanged."""
    return value


@dataclasses.dataclass
class Point:
    x: int
    y: int = 0


@tool
def describe_point(point: Point) -> str:
    """Describe a point."""
    return repr(point)


@tool(name="json")
def reserved(json: str, title: str = "t") -> str:
    """Take parameters whose names pydantic models reserve or use."""
    return f"{json}/{title}"
