"""The cyclic garbage collector in a server process: the start-up heap left out, full
collections timed.

A full (generation 2) collection walks every tracked object the process holds and
stops the event loop meanwhile. The objects alive once the server has started
(modules, classes, the SDKs' models: about 240,000) are most of them until
thousands of sockets are open: each full collection walked them again, 120 to 180 ms
for a server with 100 to 1,000 sockets on this machine class, and one came during
a measured stream (``bench/README.md``). ``realtime-agent serve`` therefore
freezes them (:func:`freeze_startup_heap`); what sockets and runs create later is
collected as before. :class:`GcWatch` times the full collections for
``/healthz``: with many thousands of sockets they are long again (about 0.8 s
with 8,000 idle sockets), and an operator should see it.
"""

from __future__ import annotations

import gc
import time
from typing import Any


def freeze_startup_heap() -> int:
    """Collect the start-up garbage, then leave every object alive now out of later
    collections (``gc.freeze``); returns how many objects that is.

    Only for a process that lives as long as its start-up objects (the server):
    an object frozen here is never collected as part of a cycle.
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


class GcWatch:
    """Counts and times this process's full garbage collections while open."""

    def __init__(self) -> None:
        self.full = 0
        self.longest = 0.0
        self.total = 0.0
        self._started: float | None = None

    def __enter__(self) -> GcWatch:
        gc.callbacks.append(self._on_gc)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._started = time.perf_counter()
        elif self._started is not None:
            took = time.perf_counter() - self._started
            self._started = None
            self.full += 1
            self.total += took
            self.longest = max(self.longest, took)

    def report(self) -> dict[str, Any]:
        """What ``/healthz`` shows."""
        return {
            "frozen_objects": gc.get_freeze_count(),
            "full_collections": self.full,
            "full_ms_longest": round(self.longest * 1000, 3),
            "full_ms_total": round(self.total * 1000, 3),
        }
