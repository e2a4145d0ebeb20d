"""The worker side of bench/memtrace: periodic tracemalloc snapshots and RocksDB memory properties."""

from __future__ import annotations

import ctypes
import json
import os
import sys
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROCKSDB_PROPERTIES = (
    "rocksdb.cur-size-all-mem-tables",
    "rocksdb.size-all-mem-tables",
    "rocksdb.estimate-table-readers-mem",
    "rocksdb.block-cache-usage",
    "rocksdb.block-cache-pinned-usage",
)


def start(directory: str, every: float) -> None:
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    frames = int(os.environ.get("CORE_MEMTRACE_FRAMES", "1"))
    if frames:  # 0: only the RSS and RocksDB samples, at full speed
        tracemalloc.start(frames)
    threading.Thread(target=_loop, args=(out, every), daemon=True, name="memtrace").start()


def _loop(out: Path, every: float) -> None:
    number = 0
    while True:
        time.sleep(every)
        number += 1
        if tracemalloc.is_tracing():
            tracemalloc.take_snapshot().dump(str(out / f"snap-{number:03d}.pickle"))
        status = _status()
        rocks = _rocksdb_properties()
        line = {"n": number, "t": time.time(), "status": status, "rocksdb": rocks}
        if os.environ.get("CORE_MEMTRACE_TRIM"):  # how much of RSS is memory malloc holds free
            ctypes.CDLL("libc.so.6").malloc_trim(0)
            line["after_malloc_trim"] = _status()
        with open(out / "samples.jsonl", "a") as samples:
            samples.write(json.dumps(line) + "\n")


def _status() -> dict[str, int]:
    wanted = ("VmRSS", "VmHWM", "RssAnon", "RssFile")
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in wanted:
            fields[name] = int(rest.split()[0]) // 1024
    return fields


def _rocksdb_properties() -> dict[str, dict[str, int]]:
    """Per table, each property summed over its partitions' databases (read on the event loop)."""
    module = sys.modules.get("core_app.app")
    app = getattr(module, "app", None)
    # `_loop`, never the `loop` property: read from this thread before the worker set its loop, the
    # property would make a loop for this thread, and the app would schedule its work on it.
    loop = getattr(app, "_loop", None)
    if loop is None or not loop.is_running():
        return {}
    done = threading.Event()
    result: dict[str, dict[str, int]] = {}

    def read() -> None:
        try:
            for name, table in app.tables.items():
                dbs: dict[int, Any] = getattr(table.data, "_dbs", {}) or {}
                sums = dict.fromkeys(ROCKSDB_PROPERTIES, 0)
                for db in dbs.values():
                    for prop in ROCKSDB_PROPERTIES:
                        sums[prop] += int(db.property_int_value(prop) or 0)
                sums["instances"] = len(dbs)
                result[name] = sums
        except Exception as exc:
            result["error"] = {repr(exc): 0}
        finally:
            done.set()

    loop.call_soon_threadsafe(read)
    if not done.wait(10):
        result["error"] = {"not run on the loop": 0}
    return result
