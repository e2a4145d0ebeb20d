"""(e) of bench/ingest.py: the peak RSS of a new worker that applies one event to each of
`--rss-customers` customers (inserted into PostgreSQL first: each is loaded on first touch).

Every `--rss-every` applied events it prints the worker's VmRSS and VmHWM, so the curve shows what
grows with the customers and what is a one-off. `--memtrace DIR` runs the worker under
bench/memtrace (tracemalloc snapshots and RocksDB memory properties; slow, never for a rate).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from pathlib import Path
from typing import Any

from bench.common import Tansu, Worker, metric, wait_http_ok
from core_app.events.codec import EventCodec
from core_app.settings import Settings

REPO = Path(__file__).resolve().parent.parent


def memory_mib(pid: int) -> dict[str, float]:
    fields: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            fields[name] = int(rest.split()[0]) / 1024
    return fields


def memtrace_env(directory: str) -> dict[str, str]:
    path = os.pathsep.join([str(REPO / "bench" / "memtrace"), str(REPO)])
    return {"PYTHONPATH": path, "CORE_MEMTRACE_DIR": directory, "CORE_MEMTRACE_EVERY": "20"}


async def rss_phase(
    args: argparse.Namespace,
    settings: Settings,
    tansu: Tansu,
    codec: EventCodec,
    env: dict[str, str],
    workdir: Path,
) -> dict[str, Any]:
    """The peak RSS (MiB) and its curve: [applied events, VmRSS, VmHWM] every `--rss-every`."""
    from bench.ingest import insert_customers, produce_rfm, section

    section(f"(e) peak RSS after {args.rss_customers:,} distinct customers")
    merchant_id = str(uuid.uuid4())
    started = time.perf_counter()
    many = insert_customers(settings, merchant_id, args.rss_customers)
    print(f"inserted {len(many):,} customers in {time.perf_counter() - started:.0f}s", flush=True)
    total = await produce_rfm(tansu.bootstrap, codec, merchant_id, many, 1)
    del many
    if args.memtrace:
        env = env | memtrace_env(args.memtrace)
    worker = Worker.start(env | {"WORKER_ID": "bench-rss"}, workdir / "worker-rss.log")
    curve: list[list[float]] = []
    try:
        await wait_http_ok(f"{worker.url}/ready", timeout=600)
        ready = memory_mib(worker.process.pid)
        print(f"ready: VmRSS {ready['VmRSS']:.0f} MiB, VmHWM {ready['VmHWM']:.0f} MiB", flush=True)
        started = time.perf_counter()
        next_mark = args.rss_every
        while True:
            done = await metric(worker, "core_events_processed_total")
            if done >= next_mark or done >= total:
                mem = memory_mib(worker.process.pid)
                curve.append([done, round(mem["VmRSS"], 1), round(mem["VmHWM"], 1)])
                elapsed = time.perf_counter() - started
                print(
                    f"  {done:>10,.0f} applied, {elapsed:5.0f}s: VmRSS {mem['VmRSS']:.0f} "
                    f"(anon {mem['RssAnon']:.0f}, file {mem['RssFile']:.0f}), VmHWM {mem['VmHWM']:.0f} MiB",
                    flush=True,
                )
                next_mark = (done // args.rss_every + 1) * args.rss_every
            if done >= total:
                break
            if worker.process.poll() is not None:
                raise RuntimeError(f"worker exited:\n{worker.log_tail()}")
            await asyncio.sleep(1)
        rss = worker.peak_rss_mib()
    finally:
        worker.stop()
    print(f"{rss:,.0f} MiB peak RSS (VmHWM)")
    return {"e": rss, "e curve": curve}
