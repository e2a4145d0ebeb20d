"""The baselines of bench/ingest.py, on their own copy of the load (BASELINE_TOPIC): (a) a raw aiokafka
consumer, (b) a bare Faust agent that counts, (b') one that writes each message into a RocksDB table."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaConsumer

from bench.common import Tansu
from bench.ingest import BASELINE_TOPIC, PARTITIONS, section


async def raw_consumer_rate(bootstrap: str, total: int) -> float:
    consumer = AIOKafkaConsumer(
        BASELINE_TOPIC,
        bootstrap_servers=bootstrap,
        group_id=f"bench-raw-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        fetch_max_wait_ms=100,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    seen, started = 0, 0.0
    try:
        while seen < total:
            batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            count = sum(len(records) for records in batches.values())
            if count and not started:
                started = time.perf_counter()
            seen += count
        return seen / (time.perf_counter() - started)
    finally:
        await consumer.stop()


def faust_baseline(mode: str, broker: str, total: int, workdir: Path) -> tuple[float, float]:
    """The rate, and the CPU time per message in microseconds."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.faust_baselines",
            mode,
            "--broker",
            broker,
            "--topic",
            BASELINE_TOPIC,
            "--n",
            str(total),
            "--partitions",
            str(PARTITIONS),
            "--datadir",
            str(workdir / f"faust-{mode}-{uuid.uuid4().hex[:6]}"),
        ],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    # Faust redirects stdout into its log, so the report may arrive on either stream.
    lines = [line for line in (result.stdout + result.stderr).splitlines() if '{"mode"' in line]
    if not lines:
        raise RuntimeError(f"faust baseline {mode} failed:\n{result.stderr[-2000:]}")
    report = json.loads(lines[-1][lines[-1].index("{") :])
    return report["messages"] / report["seconds"], report["cpu_seconds"] / report["messages"] * 1e6


async def create_topic(bootstrap: str, name: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, PARTITIONS, 1)])
    finally:
        await admin.close()


async def baselines(tansu: Tansu, total: int, workdir: Path, results: dict[str, float]) -> None:
    """On the first `total` records of BASELINE_TOPIC (produced once, before the first round)."""
    section("(a) raw aiokafka consumer")
    results["a"] = await raw_consumer_rate(tansu.bootstrap, total)
    print(f"{results['a']:,.0f} msgs/s")
    section("(b) bare Faust agent, counting")
    results["b"], results["cpu b"] = faust_baseline("count", tansu.url, total, workdir)
    print(f"{results['b']:,.0f} msgs/s ({results['cpu b']:.0f} us CPU per message)")
    section("(b') bare Faust agent, one RocksDB table write per message")
    rate, cpu_us = faust_baseline("table", tansu.url, total, workdir)
    results["b'"], results["cpu b'"] = rate, cpu_us
    print(f"{rate:,.0f} msgs/s ({cpu_us:.0f} us CPU per message)")
