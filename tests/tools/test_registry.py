"""The ``@tool`` decorator (schema derivation) and ``ToolRegistry``."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from realtime_agent.llm.base import ToolSpec
from realtime_agent.tools.registry import ToolRegistry, tool
from tests.tools import sample_tools
from tests.tools.sample_tools import (
    describe_point,
    forecast,
    greet,
    reserved,
    shout,
    with_options,
)


def test_schema_from_signature() -> None:
    """The input schema lists types, defaults, required names and descriptions, not ctx."""
    assert forecast.input_schema == {
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "the city to look up"},
            "days": {"type": "integer", "default": 3},
            "units": {
                "type": "string",
                "enum": ["c", "f"],
                "default": "c",
                "description": "temperature units",
            },
            "tags": {
                "anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}],
                "default": None,
            },
        },
        "required": ["city"],
        "additionalProperties": False,
    }


def test_schema_without_parameters() -> None:
    """A tool without parameters still has an object schema with empty properties."""
    assert with_options.input_schema == {
        "type": "object",
        "properties": {},
        "required": [],
        "additionalProperties": False,
    }


def test_reserved_parameter_names() -> None:
    """Parameters named like pydantic internals (json, title) work and keep their names."""
    assert set(reserved.input_schema["properties"]) == {"json", "title"}
    assert reserved.input_schema["properties"]["title"] == {"type": "string", "default": "t"}


def test_nested_types() -> None:
    """A structured parameter is described under $defs."""
    assert describe_point.input_schema["properties"] == {"point": {"$ref": "#/$defs/Point"}}
    point = dict(describe_point.input_schema["$defs"]["Point"])
    point.pop("additionalProperties", None)  # newer pydantic versions add it to nested models
    assert point == {
        "type": "object",
        "properties": {"x": {"type": "integer"}, "y": {"type": "integer", "default": 0}},
        "required": ["x"],
    }


def test_bare_decorator_defaults() -> None:
    """Bare @tool takes the function name, the docstring's first paragraph and reads only."""
    assert forecast.name == "forecast"
    assert forecast.description == "Get the weather forecast."
    assert forecast.changes is False
    assert forecast.source == "python"


def test_decorator_options() -> None:
    """@tool(...) sets changes, name and description."""
    assert (with_options.name, with_options.description, with_options.changes) == (
        "renamed",
        "An explicit description.",
        True,
    )


def test_tool_is_frozen() -> None:
    """Tools are immutable."""
    with pytest.raises(dataclasses.FrozenInstanceError):
        forecast.name = "other"  # type: ignore[misc]


def _undocumented() -> None:
    pass


def _untyped(x) -> None:  # type: ignore[no-untyped-def]
    """Untyped."""


def _variadic(*items: str) -> None:
    """Variadic."""


def _unresolvable(x: NoSuchType) -> None:  # type: ignore[name-defined]  # noqa: F821
    """Annotated with a name that does not exist at runtime."""


@pytest.mark.parametrize(
    ("fn", "problem"),
    [
        (_undocumented, "needs a docstring or description="),
        (_untyped, "'x' needs a type annotation"),
        (_variadic, "'items' is variadic positional"),
        (_unresolvable, "cannot resolve its annotations at runtime: name 'NoSuchType'"),
    ],
)
def test_unfit_functions_are_rejected(fn: Callable[..., Any], problem: str) -> None:
    """A tool needs a description, resolvable annotations and no *args or **kwargs."""
    with pytest.raises(TypeError, match=problem):
        tool(fn)


def test_bad_name_is_rejected() -> None:
    """Tool names follow the API's pattern."""
    for bad in ("has space", "trailing_newline\n", "x" * 65):
        with pytest.raises(ValueError, match="must match"):
            tool(name=bad)(sample_tools.plain_function)


def test_registry_lookup() -> None:
    """The registry finds tools by name, iterates and counts them, and lists specs in order."""
    registry = ToolRegistry([greet, shout])
    assert registry.get("shout") is shout
    assert registry.get("nope") is None
    assert list(registry) == [greet, shout]
    assert len(registry) == 2
    assert registry.specs() == [
        ToolSpec("greet", greet.description, greet.input_schema),
        ToolSpec("shout", shout.description, shout.input_schema),
    ]


def test_registry_empty() -> None:
    """An empty registry has no tools and no specs."""
    assert len(ToolRegistry()) == 0
    assert ToolRegistry().specs() == []


def test_registry_duplicate_names() -> None:
    """Two tools with the same name are refused."""
    twin = dataclasses.replace(shout, description="Another tool, same name.")
    with pytest.raises(ValueError, match="'shout'"):
        ToolRegistry([shout, twin])
