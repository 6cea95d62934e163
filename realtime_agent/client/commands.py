"""Subcommands of the websocket client (filled in by the CLI client work)."""

from __future__ import annotations

import argparse
from typing import Any


def add_client_commands(sub: Any) -> None:
    """Add ``chat`` and ``watch`` to the ``realtime-agent`` parser."""
    del sub  # placeholder until the client lands


def _unused(args: argparse.Namespace) -> int:
    return 0
