"""The code stays lint-clean and strictly typed (ruff and mypy --strict, as configured),
and declares what it imports."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *argv], cwd=ROOT, capture_output=True, text=True, check=False
    )


def test_ruff_finds_nothing() -> None:
    """ruff check and ruff format --check pass over the package, the tests and the bench."""
    for argv in (
        ("ruff", "check", "realtime_agent", "tests", "bench"),
        ("ruff", "format", "--check", "realtime_agent", "tests", "bench"),
    ):
        done = run(*argv)
        assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_strict_passes() -> None:
    """mypy --strict (pyproject's configuration) passes over the package and the tests."""
    done = run("mypy")
    assert done.returncode == 0, done.stdout + done.stderr


def _top_level_imports(package: Path) -> set[str]:
    names: set[str] = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.partition(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.partition(".")[0])
    return names


def test_every_package_the_server_imports_is_a_declared_dependency() -> None:
    """`pip install .` (the README's first command) installs everything realtime_agent
    imports: a module that only the test extra or another package's dependencies
    bring would break a fresh install."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {
        re.split(r"[\[<>=~!; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")
        for requirement in project["dependencies"]
    }
    providers = importlib.metadata.packages_distributions()
    missing = {}
    for module in _top_level_imports(ROOT / "realtime_agent"):
        if module in sys.stdlib_module_names or module in ("realtime_agent", "__future__"):
            continue
        dists = {d.lower().replace("_", "-") for d in providers.get(module, [module])}
        if not dists & declared:
            missing[module] = sorted(dists)
    assert not missing, f"imported but not declared in [project] dependencies: {missing}"
