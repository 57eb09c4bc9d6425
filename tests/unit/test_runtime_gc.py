"""The server's garbage-collector tuning (ocs/runtime.py ``_tune_gc``)."""

from __future__ import annotations

import gc

from ocs.runtime import GC_GEN0_THRESHOLD, _tune_gc


def test_start_objects_frozen_and_young_collections_rarer() -> None:
    """After start-up tuning, what exists is out of future collections and the
    first-generation threshold is the server's, the older ones unchanged."""
    before = gc.get_threshold()
    try:
        gc.unfreeze()
        _tune_gc()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (GC_GEN0_THRESHOLD, *before[1:])
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
