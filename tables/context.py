"""Table access on behalf of one event, outside Faust's per-event context."""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager

from faust.streams import _current_event
from faust.types import EventT


@contextmanager
def processing(event: EventT) -> Iterator[None]:
    """Make `event` current for table access.

    Faust's RocksDB store and changelog pick the partition from the current event, which batched
    processing does not have. With the key's own event current, reads go straight to the key's
    partition (instead of probing every partition) and writes land where Faust expects them.
    """
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)
