"""The code stays lint-clean and strictly typed (ruff and mypy --strict, as configured)."""

from __future__ import annotations

import subprocess
import sys
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
