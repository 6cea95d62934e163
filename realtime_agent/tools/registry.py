"""Typed Python functions as tools: the ``@tool`` decorator, ``Tool`` and ``ToolRegistry``.

A tool's input schema is derived from its signature with pydantic, and its
arguments are validated by the same model, so the schema the model sees and
the checks the tool gets cannot drift apart. Pydantic stays inside this
module: tool authors write plain annotated functions.
"""

from __future__ import annotations

import importlib
import inspect
import operator
import re
import typing
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any, overload

import orjson
import pydantic

from ..llm.base import ToolSpec

# The Anthropic API's rule for tool names.
_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# JSON-schema keywords whose values are data, not schemas, and ones that map names to schemas.
_DATA_KEYWORDS = frozenset({"default", "const", "enum", "examples"})
_NAME_MAPS = frozenset({"properties", "patternProperties", "$defs"})


class ToolInputError(ValueError):
    """The arguments the model sent do not match the tool's input schema."""


@dataclass(slots=True)
class ToolContext:
    """What a tool may know about the run that called it.

    ``context`` is the session's mutable context: a tool that changes it
    mutates this dict, and the caller persists it after the call.
    """

    session_id: str
    context: dict[str, Any]


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

    @property
    def spec(self) -> ToolSpec:
        """The tool as the model sees it."""
        return ToolSpec(self.name, self.description, self.input_schema)

    async def call(self, arguments: dict[str, Any], ctx: ToolContext) -> str:
        """Validate ``arguments``, run the function and return its result as text.

        Raises :class:`ToolInputError` when the arguments do not match the
        schema. Exceptions raised by the function propagate unchanged; the
        caller turns them into error results and owns the timeout.

        A sync function runs directly on the event loop, so it must be quick.
        We don't hand it to ``asyncio.to_thread``: a thread cannot be
        cancelled, so after the caller's timeout it would keep running and
        could still mutate ``ctx.context`` after the caller has persisted it.
        Tools that do I/O are written ``async`` so timeouts really stop them.
        """
        try:
            parsed = self.arguments_model.model_validate(arguments)
        except pydantic.ValidationError as exc:
            raise ToolInputError(_describe(self.name, exc)) from None
        # getattr, not model_dump(): nested models reach the tool as models.
        kwargs = {f.alias: getattr(parsed, key) for key, f in type(parsed).model_fields.items()}
        if self.context_param is not None:
            kwargs[self.context_param] = ctx
        result = self.fn(**kwargs)
        if inspect.isawaitable(result):
            result = await result
        return stringify(result)

    @classmethod
    def from_function(
        cls,
        fn: Callable[..., Any],
        *,
        changes: bool = False,
        name: str | None = None,
        description: str | None = None,
    ) -> Tool:
        """Make a tool of a typed function (what :func:`tool` does).

        Every parameter needs a type annotation, resolvable at runtime (import
        the types for real, not under ``TYPE_CHECKING``). A parameter
        annotated :class:`ToolContext` is injected and left out of the schema.
        ``Annotated[T, "text"]`` or ``Annotated[T, Field(description=...)]``
        describes a parameter.
        """
        name = name if name is not None else fn.__name__
        if not _NAME_RE.match(name):
            raise ValueError(f"tool name {name!r} must match {_NAME_RE.pattern}")
        if description is None:
            doc = inspect.getdoc(fn) or ""
            description = " ".join(doc.split("\n\n", 1)[0].split())
        if not description:
            raise TypeError(
                f"tool {name!r} needs a description: give it a docstring or description="
            )
        hints = typing.get_type_hints(fn, include_extras=True)
        fields: dict[str, Any] = {}
        context_param: str | None = None
        for param in inspect.signature(fn).parameters.values():
            if param.kind not in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
                raise TypeError(f"tool {name!r}: parameter {param.name!r} must be a named one")
            if param.name not in hints:
                raise TypeError(f"tool {name!r}: parameter {param.name!r} needs a type annotation")
            hint = hints[param.name]
            if hint is ToolContext:
                context_param = param.name
                continue
            default = ... if param.default is inspect.Parameter.empty else param.default
            extra: dict[str, Any] = {}
            if typing.get_origin(hint) is Annotated:
                notes = [m for m in hint.__metadata__ if isinstance(m, str)]
                if notes:
                    extra["description"] = notes[0]
            # Fields get neutral names and the parameter name as alias, so any
            # parameter name works, also ones pydantic reserves ("json", "_x").
            fields[f"arg_{param.name}"] = (hint, pydantic.Field(default, alias=param.name, **extra))
        model = pydantic.create_model(
            f"{name}_arguments",
            __config__=pydantic.ConfigDict(extra="forbid"),  # tell the model about typos
            **fields,
        )
        schema = _strip_titles(model.model_json_schema())
        schema.setdefault("properties", {})
        schema.setdefault("required", [])
        return cls(name, description, changes, schema, fn=fn, arguments_model=model,
                   context_param=context_param)  # fmt: skip


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

    Use bare (``@tool``: reads only, name and description from the function)
    or with options: ``@tool(changes=True, name="x", description="...")``.
    """
    if fn is not None:
        return Tool.from_function(fn)

    def decorate(f: Callable[..., Any]) -> Tool:
        return Tool.from_function(f, changes=changes, name=name, description=description)

    return decorate


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
    """The tools one server offers, by name."""

    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for t in tools:
            if t.name in self._tools:
                raise ValueError(f"two tools are named {t.name!r}; tool names must be unique")
            self._tools[t.name] = t

    def get(self, name: str) -> Tool | None:
        """The tool called ``name``, or None."""
        return self._tools.get(name)

    def specs(self) -> list[ToolSpec]:
        """Every tool as the model sees it, in registration order."""
        return [t.spec for t in self._tools.values()]

    def __iter__(self) -> Iterator[Tool]:
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)


def load_tools(spec: str) -> list[Tool]:
    """Import tools named by ``"package.module:attr"`` (comma-separated for several).

    Each attribute is a :class:`Tool` or a list or tuple of them. Raises
    ValueError for a malformed spec, ImportError or AttributeError when a
    name does not resolve, TypeError when it is not a tool.
    """
    entries = [part.strip() for part in spec.split(",")]
    # Check every entry before importing anything: a typo fails fast, with no side effects.
    for entry in entries:
        module_name, sep, attr = entry.partition(":")
        dotted = module_name.split(".") + attr.split(".")
        if not sep or ":" in attr or not all(p.isidentifier() for p in dotted):
            raise ValueError(
                f"malformed tool spec {entry!r} in {spec!r}: expected 'package.module:attr'"
            )
    tools: list[Tool] = []
    for entry in entries:
        module_name, _, attr = entry.partition(":")
        try:
            obj: Any = importlib.import_module(module_name)
        except ImportError as exc:
            raise ImportError(
                f"cannot import {module_name!r} for tool spec {entry!r}: {exc}", name=exc.name
            ) from exc
        try:
            obj = operator.attrgetter(attr)(obj)
        except AttributeError as exc:
            raise AttributeError(
                f"{module_name!r} has no attribute {attr!r} (tool spec {entry!r}); "
                "it should name a @tool function or a list of them"
            ) from exc
        items = list(obj) if isinstance(obj, list | tuple) else [obj]
        for item in items:
            if not isinstance(item, Tool):
                raise TypeError(
                    f"tool spec {entry!r} names a {type(item).__name__}, not a Tool: "
                    "decorate the function with @tool"
                )
        tools.extend(items)
    return tools


def _describe(name: str, exc: pydantic.ValidationError) -> str:
    problems = []
    for err in exc.errors(include_url=False):
        where = ".".join(str(p) for p in err["loc"]) or "input"
        problems.append(f"{where}: {err['msg']}")
    return f"invalid input for tool {name!r}: " + "; ".join(problems)


def _strip_titles(schema: Any, names: bool = False) -> Any:
    # Pydantic titles every model and field; the titles only repeat the names
    # and cost the model tokens. In name maps ("properties") the keys are
    # names, not keywords: a property called "title" stays.
    if isinstance(schema, list):
        return [_strip_titles(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    return {
        k: v if k in _DATA_KEYWORDS and not names else _strip_titles(v, k in _NAME_MAPS)
        for k, v in schema.items()
        if names or not (k == "title" and isinstance(v, str))
    }
