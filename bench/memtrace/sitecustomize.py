"""Memory tracing for a bench worker, off unless this directory is on the worker's PYTHONPATH.

`bench/ingest.py --memtrace DIR` puts it there: Python imports `sitecustomize` at start-up, which
starts tracemalloc and a thread that, every CORE_MEMTRACE_EVERY seconds, writes a tracemalloc
snapshot and the RocksDB memory properties of the worker's tables into DIR (`python -m
bench.memtrace DIR` compares them). Tracing slows the worker several times: never for a rate.
"""

from __future__ import annotations

import os

if os.environ.get("CORE_MEMTRACE_DIR"):
    from bench.memtrace.hook import start

    start(os.environ["CORE_MEMTRACE_DIR"], float(os.environ.get("CORE_MEMTRACE_EVERY", "30")))
