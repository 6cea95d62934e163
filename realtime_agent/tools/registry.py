"""Typed Python functions as tools: the ``@tool`` decorator, ``Tool`` and ``ToolRegistry``.

One pydantic model, derived from the signature, gives both the schema the
model sees and the validation the tool gets, so the two cannot drift apart.
Pydantic stays inside this module: tool authors write annotated functions.
The registry takes any object with :class:`Tool`'s surface (:class:`AnyTool`),
such as the tools of MCP servers, and can consult sources whose tools change.
"""

from __future__ import annotations

import importlib
import inspect
import operator
import re
import typing
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, overload

import orjson
import pydantic

from ..llm.base import ToolSpec

# The Anthropic API's rule for tool names.
_NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_SPEC_RE = re.compile(r"(?:[^\W\d]\w*\.)*[^\W\d]\w*:(?:[^\W\d]\w*\.)*[^\W\d]\w*")  # module:attr
# JSON-schema keywords whose values are data, not schemas, and ones that map names to schemas.
_DATA_KEYWORDS = frozenset({"default", "const", "enum", "examples"})
_NAME_MAPS = frozenset({"properties", "patternProperties", "$defs"})


class ToolInputError(ValueError):
    """The arguments the model sent do not match the tool's input schema."""


@dataclass(slots=True)
class ToolContext:
    """What a tool knows of its run.

    A tool that changes the session's ``context`` mutates this dict; the
    caller persists it after the call.
    """

    session_id: str
    context: dict[str, Any]


class AnyTool(Protocol):
    """What the registry and the agent need of a tool; :class:`Tool` is one."""

    @property
    def name(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def changes(self) -> bool:
        """False when the tool only reads, True when it also changes something."""

    @property
    def input_schema(self) -> dict[str, Any]: ...
    @property
    def source(self) -> str:
        """Where the tool comes from: "python", "mcp:<server>"."""

    async def call(self, arguments: dict[str, Any], ctx: ToolContext) -> str:
        """Run the tool; raise for a failure (the caller makes it an error result)."""


ToolSource = Callable[[], Iterable[AnyTool]]
"""A source of tools that may change over time: called for the current list."""


@dataclass(frozen=True)
class Tool:
    """A tool: what the model sees (name, description, schema) and how to run it.

    Build one with :func:`tool`. ``changes`` is False when the tool only reads,
    True when it also changes something (PROTOCOL.md, "Autonomy levels").
    """

    name: str
    description: str
    changes: bool
    input_schema: dict[str, Any]
    source: str = "python"
    fn: Callable[..., Any] = field(kw_only=True, repr=False, compare=False)
    arguments_model: type[pydantic.BaseModel] = field(kw_only=True, repr=False, compare=False)
    context_param: str | None = field(kw_only=True, default=None, repr=False, compare=False)

    async def call(self, arguments: dict[str, Any], ctx: ToolContext) -> str:
        """Validate ``arguments``, run the tool and return its result as text.

        Raises :class:`ToolInputError` for arguments that do not fit the
        schema. The tool's own exceptions propagate unchanged: the caller
        turns them into error results, and owns the timeout.
        """
        try:
            parsed = self.arguments_model.model_validate(arguments)
        except pydantic.ValidationError as exc:
            raise ToolInputError(_describe(self.name, exc)) from None
        # Iterating, unlike model_dump(), hands nested models over as models.
        kwargs = {key.removeprefix("arg_"): value for key, value in parsed}
        if self.context_param is not None:
            kwargs[self.context_param] = ctx
        # A sync function runs right here on the loop, so it must be quick. Not
        # asyncio.to_thread: a thread can't be cancelled, so past the caller's
        # timeout it would run on and could mutate ctx.context after the caller
        # persisted it. Tools that do I/O are async, so a timeout stops them.
        result = self.fn(**kwargs)
        if inspect.isawaitable(result):
            result = await result
        return stringify(result)


@overload
def tool(fn: Callable[..., Any], /) -> Tool: ...
@overload
def tool(
    *, changes: bool = False, name: str | None = None, description: str | None = None
) -> Callable[[Callable[..., Any]], Tool]: ...
def tool(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    changes: bool = False,
    name: str | None = None,
    description: str | None = None,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Turn a typed function (sync or async) into a :class:`Tool`.

    Bare ``@tool`` is read-only, named after the function and described by
    its docstring's first paragraph; ``@tool(changes=True, name=...,
    description=...)`` overrides these. Parameters need runtime annotations
    (``Annotated[T, "text"]`` or ``Annotated[T, Field(description=...)]``
    describe one); a :class:`ToolContext` one is injected, not in the schema.
    """

    def build(f: Callable[..., Any]) -> Tool:
        tool_name = name if name is not None else f.__name__
        if not _NAME_RE.fullmatch(tool_name):
            raise ValueError(f"tool name {tool_name!r} must match {_NAME_RE.pattern}")
        text = description or " ".join((inspect.getdoc(f) or "").split("\n\n", 1)[0].split())
        if not text:
            raise TypeError(f"tool {tool_name!r} needs a docstring or description=")
        model, ctx = _arguments(tool_name, f)
        schema = _strip_titles(model.model_json_schema())
        schema.setdefault("required", [])  # pydantic leaves it out when empty
        return Tool(
            tool_name, text, changes, schema, fn=f, arguments_model=model, context_param=ctx
        )

    return build if fn is None else build(fn)


def _arguments(name: str, fn: Callable[..., Any]) -> tuple[type[pydantic.BaseModel], str | None]:
    """The pydantic model of ``fn``'s arguments, and its ToolContext parameter."""
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except NameError as exc:  # the usual cause: a type imported under TYPE_CHECKING
        raise TypeError(f"tool {name!r}: cannot resolve its annotations at runtime: {exc}") from exc
    fields: dict[str, Any] = {}
    ctx: str | None = None
    for param in inspect.signature(fn).parameters.values():
        if param.kind not in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
            raise TypeError(f"tool {name!r}: {param.name!r} is {param.kind.description}")
        if param.name not in hints:
            raise TypeError(f"tool {name!r}: parameter {param.name!r} needs a type annotation")
        hint = hints[param.name]
        if hint is ToolContext:
            ctx = param.name
            continue
        default = ... if param.default is param.empty else param.default
        # Annotated[T, "text"] describes a parameter without importing pydantic;
        # description=None would hide the one of an Annotated[T, Field(...)].
        note = next((m for m in getattr(hint, "__metadata__", ()) if isinstance(m, str)), None)
        described: dict[str, Any] = {"description": note} if note else {}
        # Neutral field names with the parameter name as alias let any name
        # work, also ones pydantic reserves ("json", "_x").
        fields[f"arg_{param.name}"] = (hint, pydantic.Field(default, alias=param.name, **described))
    config = pydantic.ConfigDict(extra="forbid")  # unknown arguments are typos to report
    return pydantic.create_model(f"{name}_arguments", __config__=config, **fields), ctx


def stringify(value: Any) -> str:
    """A tool's return value as text: str as is, None as "", the rest as JSON or ``str()``."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    try:
        return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return str(value)


class ToolRegistry:
    """The tools one server offers, by name.

    ``tools`` are fixed; each of ``dynamic`` is called whenever the registry is
    read, for the tools it has now (an MCP server's come and go). Names are
    unique among the fixed tools; a dynamic tool whose name is already taken
    (by a fixed tool or an earlier one) is left out.
    """

    def __init__(self, tools: Iterable[AnyTool] = (), dynamic: Iterable[ToolSource] = ()) -> None:
        self._tools: dict[str, AnyTool] = {}
        for t in tools:
            if self._tools.setdefault(t.name, t) is not t:
                raise ValueError(f"two tools are named {t.name!r}; tool names must be unique")
        self._dynamic = tuple(dynamic)

    def _current(self) -> dict[str, AnyTool]:
        if not self._dynamic:
            return self._tools
        tools = dict(self._tools)
        for source in self._dynamic:
            for t in source():
                tools.setdefault(t.name, t)
        return tools

    def get(self, name: str) -> AnyTool | None:
        """The tool called ``name``, or None."""
        return self._current().get(name)

    def specs(self) -> list[ToolSpec]:
        """Every tool as the model sees it: fixed ones in registration order, then dynamic."""
        return [ToolSpec(t.name, t.description, t.input_schema) for t in self._current().values()]

    def __iter__(self) -> Iterator[AnyTool]:
        return iter(list(self._current().values()))

    def __len__(self) -> int:
        return len(self._current())


def load_tools(spec: str) -> list[Tool]:
    """Import tools named by ``"package.module:attr"`` (comma-separated for several).

    Each attribute is a :class:`Tool` or a list or tuple of them. Raises
    ValueError for a malformed spec, ImportError or AttributeError when a
    name does not resolve, TypeError when it is not a tool.
    """
    entries = [part.strip() for part in spec.split(",")]
    # Check every entry before importing any: a typo fails fast, with no side effects.
    if bad := [e for e in entries if not _SPEC_RE.fullmatch(e)]:
        raise ValueError(f"malformed tool spec {bad[0]!r}: expected 'package.module:attr'")
    tools: list[Tool] = []
    for entry in entries:
        module_name, _, attr = entry.partition(":")
        try:
            obj: Any = importlib.import_module(module_name)
        except ImportError as exc:
            msg = f"cannot import {module_name!r} for tool spec {entry!r}: {exc}"
            raise ImportError(msg, name=exc.name) from exc
        try:
            obj = operator.attrgetter(attr)(obj)
        except AttributeError as exc:
            msg = f"tool spec {entry!r}: {module_name!r} has no {attr!r}; name a @tool or a list"
            raise AttributeError(msg) from exc
        items = list(obj) if isinstance(obj, list | tuple) else [obj]
        if wrong := [type(i).__name__ for i in items if not isinstance(i, Tool)]:
            raise TypeError(f"tool spec {entry!r} names a {wrong[0]}: decorate it with @tool")
        tools.extend(items)
    return tools


def _describe(name: str, exc: pydantic.ValidationError) -> str:
    problems = (f"{'.'.join(map(str, e['loc'])) or 'input'}: {e['msg']}" for e in exc.errors())
    return f"invalid input for tool {name!r}: " + "; ".join(problems)


def _strip_titles(schema: Any, names: bool = False) -> Any:
    # Pydantic titles every model and field; the titles only repeat the names
    # and cost the model tokens. In name maps ("properties") the keys are
    # names, not keywords: a property called "title" stays.
    if isinstance(schema, list):
        return [_strip_titles(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    kw = not names
    return {
        k: v if kw and k in _DATA_KEYWORDS else _strip_titles(v, kw and k in _NAME_MAPS)
        for k, v in schema.items()
        if not (kw and k == "title" and isinstance(v, str))
    }
