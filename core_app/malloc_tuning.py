"""glibc malloc settings for the long-running processes (worker, sink): fewer arenas, and free
memory handed back to the OS on a schedule (docs/decisions.md D258).

A no-op where the C library is not glibc (musl, macOS): nothing there answers to these calls.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
from functools import cache

from mode import Service

from core_app.settings import Settings

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameters (malloc.h)
M_ARENA_MAX = -8


@cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        libc.mallopt  # noqa: B018 - both exist on glibc only
        libc.malloc_trim  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


def tune_malloc(settings: Settings) -> bool:
    """`MALLOC_ARENA_MAX` arenas for the process's threads and a fixed `MALLOC_MMAP_THRESHOLD`
    (0 keeps glibc's default for either); True if glibc took every value asked for.

    Called before the process starts its threads: a thread keeps the arena it was given. A fixed
    threshold also stops glibc from raising it (up to 32 MiB) each time a large block is freed, after
    which RocksDB's 256 KiB memtable blocks and aiokafka's fetch buffers came from the heap and
    left it fragmented, instead of going back to the OS when freed.
    """
    libc = _libc()
    if libc is None:
        return False
    asked = [(M_ARENA_MAX, settings.malloc_arena_max), (M_MMAP_THRESHOLD, settings.malloc_mmap_threshold)]
    return all([bool(libc.mallopt(param, value)) for param, value in asked if value > 0])


def trim() -> bool:
    """Hand the free pages of every arena back to the OS; True if any were."""
    libc = _libc()
    return bool(libc.malloc_trim(0)) if libc is not None else False


class MallocTrim(Service):
    """`trim()` every `MALLOC_TRIM_INTERVAL` seconds, in a thread (it locks one arena at a time,
    never the GIL), so the memory a finished chunk freed leaves RSS before the next one."""

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self.interval = settings.malloc_trim_interval

    async def on_start(self) -> None:
        if self.interval > 0 and _libc() is not None:
            self.add_future(self._run())

    async def _run(self) -> None:
        while not self.should_stop:
            await self.sleep(self.interval)
            try:
                await asyncio.to_thread(trim)
            except Exception:  # memory housekeeping never stops the worker
                log.exception("malloc_trim failed")
