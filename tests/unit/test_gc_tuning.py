"""The worker's and sink's GC thresholds come from GC_GEN0_THRESHOLD (D45)."""

from __future__ import annotations

import gc

from core_app.gc_tuning import tune_gc
from core_app.settings import Settings


def test_gen0_threshold_comes_from_settings_and_older_generations_keep_theirs() -> None:
    before = gc.get_threshold()
    try:
        tune_gc(Settings(gc_gen0_threshold=12_345))
        assert gc.get_threshold() == (12_345, before[1], before[2])
    finally:
        gc.set_threshold(*before)
