"""Tools a user would load with RA_TOOLS, for the tests."""

from __future__ import annotations

import asyncio

from realtime_agent.tools.registry import tool


@tool
async def slow_lookup(key: str) -> str:
    """Look a key up in a slow backend (takes a minute)."""
    await asyncio.sleep(60)
    return key


@tool(changes=True)
def add_item(item: str) -> str:
    """Add an item to the shopping list."""
    return f"added {item}"


TOOLS = [slow_lookup, add_item]
