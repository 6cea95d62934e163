"""Tools for the ``load_tools`` tests, importable as ``tests.tools.sample_tools``."""

from __future__ import annotations

from realtime_agent.tools.registry import tool


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
