"""Ingest benchmark: the event pipeline against bare baselines, in one run on one Tansu.

    .venv/bin/python bench/ingest.py [--messages 200000] [--customers 20000] [--rss-customers 1000000]

(a) a raw aiokafka consumer reading the topic;
(b) a bare Faust agent that only counts; (b') one that writes each message into a RocksDB table;
(c) this pipeline, end to end into tables: Avro decode, validation, table write, customer.updated;
(d) the time the PostgreSQL sink needs to catch up once the producer has stopped;
(e) the worker's peak RSS after `--rss-customers` distinct customers.
The sink runs as its own process (`core sink`, the worker with SINK_IN_WORKER=false) unless
`--sink-in-worker` is given.
Ratios are printed last. Needs the local PostgreSQL and Redis; starts its own Tansu and registry.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg2
import psycopg2.extras
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.common import (
    Worker,
    free_port,
    metric,
    start_tansu,
    wait_http_ok,
)
from bench.common import worker_env as common_worker_env
from core_app import db
from core_app.events.codec import EventCodec
from core_app.migrate import migrate
from core_app.schema_registry.run import start_registry
from core_app.settings import Settings
from core_app.topics import RFM_UPDATED, ensure_topics

PARTITIONS = 12
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def section(title: str) -> None:
    print(f"\n== {title}", flush=True)


def insert_customers(settings: Settings, merchant_id: str, count: int) -> list[str]:
    ids = [str(uuid.uuid4()) for _ in range(count)]
    conn = psycopg2.connect(settings.db_dsn, options=db.connection_options(settings))
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("INSERT INTO merchants (id, shop_domain) VALUES (%s, %s)", (merchant_id, merchant_id))
        for start in range(0, count, 10_000):
            psycopg2.extras.execute_values(
                cur,
                "INSERT INTO customers (id, merchant_id, email) VALUES %s",
                [(cid, merchant_id, f"{cid}@bench.example") for cid in ids[start : start + 10_000]],
                page_size=10_000,
            )
    conn.close()
    return ids


async def produce_rfm(
    bootstrap: str,
    codec: EventCodec,
    merchant_id: str,
    customers: list[str],
    rounds: int,
    crc32: bool = False,
) -> int:
    """`rounds` rfm.updated per customer, partitioned by aiokafka's murmur2 or, with `crc32`, by
    librdkafka's default (bench/rdkafka.py)."""
    if crc32:
        from bench.ingest_crc32 import produce_rfm_crc32

        return await produce_rfm_crc32(bootstrap, codec, merchant_id, customers, rounds)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=256 * 1024)
    await producer.start()
    sent = 0
    try:
        for step in range(rounds):
            futures = []
            for n, customer_id in enumerate(customers):
                value = await codec.encode(RFM_UPDATED, rfm_record(merchant_id, customer_id, n, step))
                futures.append(
                    await producer.send(RFM_UPDATED, key=f"{merchant_id}:{customer_id}".encode(), value=value)
                )
            await asyncio.gather(*futures)
            sent += len(futures)
    finally:
        await producer.stop()
    return sent


def rfm_record(merchant_id: str, customer_id: str, n: int, step: int) -> dict[str, object]:
    return {
        "event_id": str(uuid.uuid4()),
        "merchant_id": merchant_id,
        "customer_id": customer_id,
        "rfm_score": {"recency": step, "frequency": n % 100, "monetary": step * 7 + n},
        "occurred_at": T0 + timedelta(seconds=step),
    }


async def raw_consumer_rate(bootstrap: str, total: int) -> float:
    consumer = AIOKafkaConsumer(
        RFM_UPDATED,
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
            RFM_UPDATED,
            "--n",
            str(total),
            "--partitions",
            str(PARTITIONS),
            "--datadir",
            str(workdir / f"faust-{mode}"),
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


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# Polling /metrics costs the worker a little CPU (the process collector reads /proc): every 0.25 s
# that is about 1 %, every 0.05 s about 5 %. 0.25 s against a run of a minute or more is < 0.5 % error.
POLL_EVERY = 0.25


async def pipeline_rate(
    worker: Worker, total: int, cpu_pids: dict[str, int]
) -> tuple[float, float, dict[str, float]]:
    """Rate of applied events from the first to the last, the moment the last was applied, and the
    CPU time per event (microseconds) of each process in `cpu_pids` over the same span."""
    first = last = 0.0
    first_done = 0.0
    cpu0: dict[str, float] = {}
    while True:
        done = await metric(worker, "core_events_processed_total")
        now = time.perf_counter()
        if done and not first:
            first, first_done = now, done
            cpu0 = {name: cpu_seconds(pid) for name, pid in cpu_pids.items()}
        if done >= total:
            last = now
            cpu = {
                name: (cpu_seconds(pid) - cpu0[name]) / (done - first_done) * 1e6
                for name, pid in cpu_pids.items()
            }
            break
        if worker.process.poll() is not None:
            raise RuntimeError(f"worker exited:\n{worker.log_tail()}")
        await asyncio.sleep(POLL_EVERY)
    return total / (last - first), last, cpu


def rows_at_version(settings: Settings, merchant_id: str, version: int) -> int:
    conn = psycopg2.connect(settings.db_dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT count(*) FROM customers WHERE merchant_id = %s AND version >= %s",
                (merchant_id, version),
            )
            return int(cur.fetchone()[0])
    finally:
        conn.close()


async def sink_catch_up(
    settings: Settings, merchant_id: str, customers: int, version: int, since: float
) -> float:
    while rows_at_version(settings, merchant_id, version) < customers:
        await asyncio.sleep(0.1)
    return time.perf_counter() - since


def worker_env(
    settings: Settings, broker: str, registry: str, workdir: Path, worker_id: str
) -> dict[str, str]:
    return common_worker_env(settings, broker, registry, workdir, worker_id, PARTITIONS)


async def run(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="core-bench-"))
    settings = Settings(
        core_db_name=f"core_bench_{uuid.uuid4().hex[:6]}", redis_key_prefix=f"bench:{uuid.uuid4().hex[:6]}:"
    )
    migrate(settings)
    tansu = start_tansu(workdir)
    registry_port = free_port()
    registry = await start_registry(settings, "127.0.0.1", registry_port)
    registry_url = f"http://127.0.0.1:{registry_port}"
    bench_settings = settings.model_copy(
        update={"kafka_broker": tansu.url, "kafka_topic_partitions": PARTITIONS}
    )
    await ensure_topics(bench_settings)
    codec = EventCodec(registry_url, settings.avro_dir)
    await codec.register_all()
    results: dict[str, float] = {}
    try:
        merchant_id = str(uuid.uuid4())
        rounds = max(1, args.messages // args.customers)
        planned = rounds * args.customers
        section(f"setup: {args.customers:,} customers in PostgreSQL, {planned:,} rfm.updated events")
        customers = insert_customers(settings, merchant_id, args.customers)
        started = time.perf_counter()
        total = await produce_rfm(tansu.bootstrap, codec, merchant_id, customers, rounds)
        elapsed = time.perf_counter() - started
        print(f"produced {total:,} events in {elapsed:.1f}s")

        if not args.pipeline_only:
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

        section("(c) this pipeline: decode, validate, table, customer.updated")
        env = worker_env(settings, tansu.url, registry_url, workdir, "bench-1")
        sink = None
        if not args.sink_in_worker:
            env["SINK_IN_WORKER"] = "false"
            sink = Worker.start(env | {"WORKER_ID": "bench-sink"}, workdir / "sink.log", command="sink")
        worker = Worker.start(env, workdir / "worker.log")
        try:
            await wait_http_ok(f"{worker.url}/ready", timeout=180)
            where = f", sink pid {sink.process.pid}" if sink else " (sink in the worker)"
            print(f"worker pid {worker.process.pid}{where}", flush=True)
            pids = {"worker": worker.process.pid} | ({"sink": sink.process.pid} if sink else {})
            results["c"], finished, cpu = await pipeline_rate(worker, total, pids)
            results["cpu c"] = cpu["worker"]
            per_process = ", ".join(f"{name} {value:.0f}" for name, value in cpu.items())
            print(f"{results['c']:,.0f} events/s (us CPU per event: {per_process})")
            waited = await metric(worker, "core_record_writer_wait_seconds_total")
            span = total / results["c"]
            print(f"   agents waited {waited:.1f}s of the {span:.0f}s for the record writer (back-pressure)")
            chunks = await metric(worker, "core_ingest_chunks_total")
            if chunks:
                print(f"   batched delivery: {chunks:,.0f} chunks, {total / chunks:,.0f} events each on average")
            section("(d) PostgreSQL sink catch-up after the producer stopped")
            results["d"] = await sink_catch_up(settings, merchant_id, len(customers), rounds, finished)
            print(f"{results['d']:.1f}s until all {len(customers):,} rows hold their final version")

            if args.rss_customers:
                section(f"(e) peak RSS after {args.rss_customers:,} distinct customers")
                rss_merchant = str(uuid.uuid4())
                started = time.perf_counter()
                many = insert_customers(settings, rss_merchant, args.rss_customers)
                print(f"inserted {len(many):,} customers in {time.perf_counter() - started:.0f}s")
                await produce_rfm(tansu.bootstrap, codec, rss_merchant, many, 1)
                target = total + len(many)
                while await metric(worker, "core_events_processed_total") < target:
                    await asyncio.sleep(1)
                results["e"] = worker.peak_rss_mib()
                print(f"{results['e']:,.0f} MiB peak RSS (VmHWM)")
        finally:
            worker.stop()
            if sink is not None:
                sink.stop()
        if not args.skip_crc32:
            from bench.ingest_crc32 import crc32_phase

            await crc32_phase(args, settings, tansu.bootstrap, codec, env, workdir, results)
    finally:
        await registry.cleanup()
        tansu.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        admin = psycopg2.connect(settings.model_copy(update={"core_db_name": "postgres"}).db_dsn)
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{settings.core_db_name}" WITH (FORCE)')
        admin.close()
    if not args.pipeline_only:
        report(results)
    elif "c'" in results:
        from bench.ingest_crc32 import report_crc32

        report_crc32(results)


def report(results: dict[str, float]) -> None:
    section("ratios (same run, same Tansu)")
    a, b, b2, c = results["a"], results["b"], results["b'"], results["c"]
    print(f"(b)  bare Faust count   / raw aiokafka  = {b / a:.4f}")
    print(f"(b') bare Faust table   / bare count    = {b2 / b:.2f}")
    verdict = "met" if c >= b2 else f"MISSED by {(1 - c / b2) * 100:.0f}%"
    stretch = "met" if c >= 0.5 * b else "not met"
    print(f"(c)  pipeline           / (b')          = {c / b2:.2f}  target >= 1.0: {verdict}")
    print(f"(c)  pipeline           / (b)           = {c / b:.2f}  stretch >= 0.5: {stretch}")
    if "cpu c" in results:
        # CPU time per event is far less sensitive to other load on the machine than the rates.
        b2_cpu, c_cpu = results["cpu b'"], results["cpu c"]
        print(f"(c)  CPU per event: (b') {b2_cpu:.0f} us / worker {c_cpu:.0f} us = {b2_cpu / c_cpu:.2f}")
    d_verdict = "met" if results["d"] < 10 else "MISSED"
    print(f"(d)  sink catch-up      = {results['d']:.1f}s  target < 10s: {d_verdict}")
    if "c'" in results:
        from bench.ingest_crc32 import report_crc32

        report_crc32(results)
    if "e" in results:
        e_verdict = "met" if results["e"] <= 512 else "MISSED"
        print(f"(e)  peak RSS           = {results['e']:.0f} MiB  target <= 512 MiB: {e_verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--rss-customers", type=int, default=1_000_000, help="0 skips (e)")
    parser.add_argument("--pipeline-only", action="store_true", help="skip the baselines (for profiling)")
    parser.add_argument("--skip-crc32", action="store_true", help="skip (c'), the CRC32-partitioned input")
    parser.add_argument(
        "--sink-in-worker", action="store_true", help="run the PostgreSQL sink inside the worker"
    )
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
