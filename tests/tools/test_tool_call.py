"""``Tool.call``: validation, sync and async tools, errors, and result text."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from realtime_agent.tools.registry import ToolContext, ToolInputError, stringify
from tests.tools.sample_tools import (
    describe_point,
    echo,
    explode,
    explode_async,
    forecast,
    remember,
    reserved,
)


def ctx() -> ToolContext:
    return ToolContext(session_id="sess-test", context={})


async def test_reserved_parameter_names_call() -> None:
    """Arguments reach parameters named like pydantic internals."""
    assert await reserved.call({"json": "a", "title": "b"}, ctx()) == "a/b"


async def test_nested_types_call() -> None:
    """A structured argument reaches the tool as its own type, not as a dict."""
    assert await describe_point.call({"point": {"x": 1}}, ctx()) == "Point(x=1, y=0)"


async def test_sync_tool_call() -> None:
    """A sync tool gets validated arguments (defaults filled) and the injected context."""
    out = await forecast.call({"city": "Paris", "tags": ["x"]}, ctx())
    assert out == (
        '{\n  "city": "Paris",\n  "days": 3,\n  "units": "c",\n'
        '  "tags": [\n    "x"\n  ],\n  "session": "sess-test"\n}'
    )


async def test_async_tool_mutates_context() -> None:
    """An async tool is awaited and may change the session's context."""
    context = ctx()
    assert await remember.call({"key": "answer", "value": 42}, context) == "stored answer"
    assert context.context == {"answer": 42}


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ({}, "tool 'forecast': city: Field required"),
        ({"city": "Paris", "days": "soon"}, "days: Input should be a valid integer"),
        ({"city": "Paris", "cty": "Lyon"}, "cty: Extra inputs are not permitted"),
        ({"city": "Paris", "context": {}}, "context: Extra inputs are not permitted"),
    ],
)
async def test_bad_arguments(arguments: dict[str, Any], problem: str) -> None:
    """Missing, mistyped or unknown arguments (the context too) raise ToolInputError."""
    with pytest.raises(ToolInputError, match=problem):
        await forecast.call(arguments, ctx())


def test_tool_input_error_is_value_error() -> None:
    """ToolInputError is a ValueError."""
    assert issubclass(ToolInputError, ValueError)


async def test_sync_exception_propagates() -> None:
    """An exception raised by a sync tool reaches the caller unchanged."""
    with pytest.raises(RuntimeError, match=r"^disk full$"):
        await explode.call({"reason": "disk full"}, ctx())


async def test_async_exception_propagates() -> None:
    """An exception raised by an async tool reaches the caller unchanged."""
    with pytest.raises(LookupError, match="async boom"):
        await explode_async.call({}, ctx())


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("plain text", "plain text"),
        (None, ""),
        (42, "42"),
        (True, "true"),
        ({"a": [1, 2]}, '{\n  "a": [\n    1,\n    2\n  ]\n}'),
        ({1: "x"}, '{\n  "1": "x"\n}'),
        (date(2026, 1, 2), '"2026-01-02"'),
    ],
)
async def test_stringify_results(value: Any, text: str) -> None:
    """Return values become text: str as is, None as "", the rest as indented JSON."""
    assert await echo.call({"value": value}, ctx()) == text


def test_stringify_falls_back_to_str() -> None:
    """A value JSON cannot encode is turned into text with str()."""

    class Opaque:
        def __str__(self) -> str:
            return "opaque!"

    assert stringify(Opaque()) == "opaque!"
