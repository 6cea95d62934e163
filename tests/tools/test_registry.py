"""The ``@tool`` decorator, ``Tool.call``, ``ToolRegistry`` and ``load_tools``."""

from __future__ import annotations

import dataclasses
from datetime import date
from typing import Annotated, Any, Literal

import pytest
from pydantic import Field

from realtime_agent.llm.base import ToolSpec
from realtime_agent.tools.registry import (
    Tool,
    ToolContext,
    ToolInputError,
    ToolRegistry,
    load_tools,
    stringify,
    tool,
)
from tests.tools import sample_tools


def ctx() -> ToolContext:
    return ToolContext(session_id="sess-test", context={})


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


@tool
def json(json: str, title: str = "t") -> str:
    """Take parameters whose names pydantic models reserve or use."""
    return f"{json}/{title}"


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
    assert set(json.input_schema["properties"]) == {"json", "title"}
    assert json.input_schema["properties"]["title"] == {"type": "string", "default": "t"}


async def test_reserved_parameter_names_call() -> None:
    """Arguments reach parameters named like pydantic internals."""
    assert await json.call({"json": "a", "title": "b"}, ctx()) == "a/b"


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


def test_spec() -> None:
    """A tool's spec is what the model sees."""
    assert forecast.spec == ToolSpec("forecast", forecast.description, forecast.input_schema)


def test_tool_is_frozen() -> None:
    """Tools are immutable."""
    with pytest.raises(dataclasses.FrozenInstanceError):
        forecast.name = "other"  # type: ignore[misc]


def test_missing_description_is_rejected() -> None:
    """A function with neither docstring nor description cannot become a tool."""

    def undocumented() -> None:
        pass

    with pytest.raises(TypeError, match="needs a description"):
        tool(undocumented)


def test_missing_annotation_is_rejected() -> None:
    """Every parameter needs a type annotation."""

    def untyped(x) -> None:  # type: ignore[no-untyped-def]
        """Untyped."""

    with pytest.raises(TypeError, match="'x' needs a type annotation"):
        tool(untyped)


def test_var_args_are_rejected() -> None:
    """*args cannot be described to a model."""

    def variadic(*items: str) -> None:
        """Variadic."""

    with pytest.raises(TypeError, match=r"\*args"):
        tool(variadic)


def test_bad_name_is_rejected() -> None:
    """Tool names follow the API's pattern."""
    with pytest.raises(ValueError, match="must match"):
        tool(name="has space")(sample_tools.plain_function)


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


async def test_missing_argument() -> None:
    """A missing required argument raises ToolInputError naming the tool and the field."""
    with pytest.raises(ToolInputError, match=r"tool 'forecast': city: Field required"):
        await forecast.call({}, ctx())


async def test_wrong_type() -> None:
    """An argument of the wrong type raises ToolInputError naming the field."""
    with pytest.raises(ToolInputError, match="days: Input should be a valid integer"):
        await forecast.call({"city": "Paris", "days": "soon"}, ctx())


async def test_unknown_argument() -> None:
    """An argument the schema does not know is refused, not ignored."""
    with pytest.raises(ToolInputError, match="cty: Extra inputs are not permitted"):
        await forecast.call({"city": "Paris", "cty": "Lyon"}, ctx())


async def test_context_is_not_an_argument() -> None:
    """The model cannot pass the injected context as an argument."""
    with pytest.raises(ToolInputError, match="context"):
        await forecast.call({"city": "Paris", "context": {}}, ctx())


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


def test_registry_lookup() -> None:
    """The registry finds tools by name, iterates and counts them, and lists specs in order."""
    registry = ToolRegistry([forecast, remember])
    assert registry.get("remember") is remember
    assert registry.get("nope") is None
    assert list(registry) == [forecast, remember]
    assert len(registry) == 2
    assert registry.specs() == [forecast.spec, remember.spec]


def test_registry_empty() -> None:
    """An empty registry has no tools and no specs."""
    assert len(ToolRegistry()) == 0
    assert ToolRegistry().specs() == []


def test_registry_duplicate_names() -> None:
    """Two tools with the same name are refused."""
    twin = dataclasses.replace(remember, description="Another tool, same name.")
    with pytest.raises(ValueError, match="'remember'"):
        ToolRegistry([remember, twin])


def test_load_single_tool() -> None:
    """A spec naming one tool loads it."""
    assert load_tools("tests.tools.sample_tools:greet") == [sample_tools.greet]


def test_load_list_and_several() -> None:
    """A spec may name a list of tools, and several specs are comma-separated."""
    loaded = load_tools(" tests.tools.sample_tools:TOOLS , tests.tools.test_registry:echo")
    assert loaded == [sample_tools.greet, sample_tools.shout, echo]
    assert all(isinstance(t, Tool) for t in loaded)


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "tests.tools.sample_tools",
        ":greet",
        "tests.tools.sample_tools:",
        "a:b:c",
        "a b:c",
        "a:b,",
    ],
)
def test_load_malformed_spec(spec: str) -> None:
    """A spec that is not 'package.module:attr' raises ValueError."""
    with pytest.raises(ValueError, match=r"expected 'package\.module:attr'"):
        load_tools(spec)


def test_load_missing_module() -> None:
    """A module that does not exist raises ImportError naming the spec."""
    with pytest.raises(ImportError, match=r"cannot import 'tests\.tools\.no_such_module'"):
        load_tools("tests.tools.no_such_module:x")


def test_load_missing_attribute() -> None:
    """An attribute that does not exist raises AttributeError naming the spec."""
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        load_tools("tests.tools.sample_tools:nope")


@pytest.mark.parametrize("attr", ["NOT_A_TOOL", "plain_function"])
def test_load_not_a_tool(attr: str) -> None:
    """An attribute that is not a Tool raises TypeError suggesting @tool."""
    with pytest.raises(TypeError, match="decorate the function with @tool"):
        load_tools(f"tests.tools.sample_tools:{attr}")
