"""``load_tools``: tools named by ``"package.module:attr"`` specs."""

from __future__ import annotations

import pytest

from realtime_agent.tools.registry import Tool, load_tools
from tests.tools.sample_tools import greet, shout


def test_load_single_tool() -> None:
    """A spec naming one tool loads it."""
    assert load_tools("tests.tools.sample_tools:greet") == [greet]


def test_load_list_and_several() -> None:
    """A spec may name a list of tools, and several specs are comma-separated."""
    loaded = load_tools(" tests.tools.sample_tools:TOOLS , tests.tools.sample_tools:greet")
    assert loaded == [greet, shout, greet]
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
    with pytest.raises(AttributeError, match="has no 'nope'; name a @tool or a list"):
        load_tools("tests.tools.sample_tools:nope")


@pytest.mark.parametrize("attr", ["NOT_A_TOOL", "plain_function"])
def test_load_not_a_tool(attr: str) -> None:
    """An attribute that is not a Tool raises TypeError suggesting @tool."""
    with pytest.raises(TypeError, match="decorate it with @tool"):
        load_tools(f"tests.tools.sample_tools:{attr}")
