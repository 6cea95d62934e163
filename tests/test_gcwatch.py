"""GcWatch times full garbage collections while open; freeze_startup_heap freezes."""

from __future__ import annotations

import gc

import pytest

from realtime_agent.gcwatch import GcWatch, freeze_startup_heap


def test_the_watch_counts_and_times_full_collections_only_while_open() -> None:
    """A full collection is counted with its duration; a young one is not; after the
    watch is closed, nothing more is counted and its callback is gone."""
    with GcWatch() as watch:
        for _ in range(20):
            gc.collect(0)
        young_only = watch.full  # 0 unless Python started a full one meanwhile
        gc.collect()
        gc.collect()
        assert watch.full >= young_only + 2
        assert 0 < watch.longest <= watch.total
        report = watch.report()
    assert young_only <= 1
    assert report["full_collections"] == watch.full
    assert report["full_ms_longest"] == round(watch.longest * 1000, 3)
    counted = watch.full
    gc.collect()
    assert watch.full == counted
    assert watch._on_gc not in gc.callbacks


def test_freezing_leaves_the_live_objects_out_and_says_how_many() -> None:
    """After freeze_startup_heap the objects alive are frozen (not walked by collections)."""
    assert gc.get_freeze_count() == 0
    try:
        frozen = freeze_startup_heap()
        assert frozen == gc.get_freeze_count() > 10_000
        with GcWatch(frozen) as watch:
            gc.collect()
            assert watch.report()["frozen_objects"] == frozen
    finally:
        gc.unfreeze()
    assert gc.get_freeze_count() == 0


def test_the_report_does_not_walk_the_frozen_objects(monkeypatch: pytest.MonkeyPatch) -> None:
    """``gc.get_freeze_count()`` walks the whole frozen list (about 1.2 ms with the
    event loop stopped, for the 109,000 objects a served offline demo freezes): the
    report, which every ``/healthz`` asks for, gives the count it was told."""

    def walks(*args: object) -> int:
        raise AssertionError("report() walked the frozen list")

    monkeypatch.setattr(gc, "get_freeze_count", walks)
    with GcWatch(240_000) as watch:
        assert watch.report()["frozen_objects"] == 240_000
