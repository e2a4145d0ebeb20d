"""Cyclic GC settings for the long-running processes (worker, sink)."""

from __future__ import annotations

import gc

from core_app.settings import Settings


def tune_gc(settings: Settings) -> None:
    """Young collections every `GC_GEN0_THRESHOLD` net allocations, not Python's 700 (D45).

    At 700, the objects of the requests in flight were alive at almost every young collection, so
    they were promoted, and full collections (15-25 ms pauses) ran every 1-2 s under load. Reference
    counting still frees everything at once; only cyclic garbage waits for the next collection.
    """
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(settings.gc_gen0_threshold, older, oldest)
