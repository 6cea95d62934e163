"""The cyclic garbage collector in a server process: the start-up heap left out, full
collections timed.

A full (generation 2) collection walks every tracked object the process holds and
stops the event loop meanwhile. The objects alive once the server has started
(modules, classes, the SDKs' models: about 240,000) were most of them until
thousands of sockets are open: each full collection walked them again, about
120 ms with 100 sockets and 170 to 230 ms with 1,000 on the machine of
``bench/README.md``, where one came in the middle of a measured stream.
``realtime-agent serve`` therefore freezes them (:func:`freeze_startup_heap`):
1.4 ms and 17 to 85 ms then. What sockets and runs create later is collected as
before. :class:`GcWatch` times the full collections for ``/healthz``: with many
thousands of sockets they are long again (up to 0.5 s while 8,000 sockets connect),
and an operator should see it.
"""

from __future__ import annotations

import gc
import time
from typing import Any


def freeze_startup_heap() -> int:
    """Collect the start-up garbage, then leave every object alive now out of later
    collections (``gc.freeze``); returns how many objects that is.

    Only for a process that keeps most of its start-up objects to the end (the
    server): a frozen object is never collected as part of a cycle. The few that
    are replaced later (a connection after a reconnect) stay in memory if they
    were in a cycle: a bounded, one-time cost, against the pauses it saves.
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


class GcWatch:
    """Counts and times this process's full garbage collections while open.

    ``frozen`` is what :func:`freeze_startup_heap` returned: the report gives that
    number and never asks ``gc.get_freeze_count()``, which walks the whole frozen
    list (1.2 ms of CPU with the event loop stopped for the 109,000 objects of the
    offline demo, more with the SDK's 240,000 or when they are out of the caches),
    on every ``/healthz`` a load balancer sends.
    """

    def __init__(self, frozen: int = 0) -> None:
        self.frozen = frozen
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
            "frozen_objects": self.frozen,
            "full_collections": self.full,
            "full_ms_longest": round(self.longest * 1000, 3),
            "full_ms_total": round(self.total * 1000, 3),
        }
