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
import os
import shutil
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg2
import psycopg2.extras
from aiokafka import AIOKafkaProducer

from bench.common import (
    Tansu,
    Worker,
    drop_database,
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
# The baselines read their own copy of the load: the pipeline's workers never see it.
BASELINE_TOPIC = "bench.baseline"
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
    topic: str = RFM_UPDATED,
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
                    await producer.send(topic, key=f"{merchant_id}:{customer_id}".encode(), value=value)
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
                # A whole backlog can land in one chunk, between two polls.
                name: (cpu_seconds(pid) - cpu0[name]) / max(done - first_done, 1) * 1e6
                for name, pid in cpu_pids.items()
            }
            break
        if worker.process.poll() is not None:
            raise RuntimeError(f"worker exited:\n{worker.log_tail()}")
        await asyncio.sleep(POLL_EVERY)
    return total / max(last - first, POLL_EVERY), last, cpu


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
    rounds: list[dict[str, float]] = []
    if not args.pipeline_only:
        from bench.ingest_baselines import create_topic

        await create_topic(tansu.bootstrap, BASELINE_TOPIC)
        steps = max(1, args.messages // args.customers)
        ids = [str(uuid.uuid4()) for _ in range(args.customers)]
        args.baseline_total = await produce_rfm(
            tansu.bootstrap, codec, str(uuid.uuid4()), ids, steps, topic=BASELINE_TOPIC
        )
    env = worker_env(settings, tansu.url, registry_url, workdir, "bench-1")
    try:
        for number in range(1, args.rounds + 1):
            section(f"round {number} of {args.rounds}")
            results: dict[str, float] = {"round": number}
            await one_round(
                args, settings, tansu, codec, env | {"WORKER_ID": f"bench-{number}"}, workdir, results
            )
            rounds.append(results)
        if args.rss_customers:
            from bench.ingest_rss import rss_phase

            rounds[-1].update(await rss_phase(args, settings, tansu, codec, env, workdir))
        if not args.skip_crc32:
            from bench.ingest_crc32 import crc32_phase

            await crc32_phase(args, settings, tansu.bootstrap, codec, env, workdir, rounds[-1])
    finally:
        await registry.cleanup()
        tansu.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        drop_database(settings)
    from bench.ingest_report import report

    report(rounds, baselines=not args.pipeline_only)


async def one_round(
    args: argparse.Namespace,
    settings: Settings,
    tansu: Tansu,
    codec: EventCodec,
    env: dict[str, str],
    workdir: Path,
    results: dict[str, float],
) -> None:
    """The baselines on the topic's first `total` records; then, for (c) (and (c0), the agents' path,
    with `--compare-agents`, the two in alternating order) new customers and their events appended
    to the topic, and a new worker (the earlier rounds' tables recovered) on that backlog."""
    if not args.pipeline_only:
        from bench.ingest_baselines import baselines

        await baselines(tansu, args.baseline_total, workdir, results)
    labels = ["c", "c0"] if args.compare_agents else ["c"]
    if args.compare_agents and int(results.get("round", 1)) % 2 == 0:
        labels.reverse()
    for label in labels:
        flag = "false" if label == "c0" else "true"
        phase_env = env | {"WORKER_ID": f"{env['WORKER_ID']}-{label}", "INGEST_BATCH_DELIVERY": flag}
        await pipeline_phase(args, settings, tansu, codec, phase_env, workdir, results, label)


async def pipeline_phase(
    args: argparse.Namespace,
    settings: Settings,
    tansu: Tansu,
    codec: EventCodec,
    env: dict[str, str],
    workdir: Path,
    results: dict[str, float],
    label: str,
) -> None:
    what = "batched delivery" if label == "c" else "the agents' path (INGEST_BATCH_DELIVERY=false)"
    section(f"({label}) this pipeline, {what}: decode, validate, table, customer.updated")
    merchant_id = str(uuid.uuid4())
    steps = max(1, args.messages // args.customers)
    customers = insert_customers(settings, merchant_id, args.customers)
    total = await produce_rfm(tansu.bootstrap, codec, merchant_id, customers, steps)
    print(f"{len(customers):,} new customers, {total:,} rfm.updated produced")
    sink = None
    if not args.sink_in_worker:
        env = env | {"SINK_IN_WORKER": "false"}
        sink = Worker.start(env | {"WORKER_ID": "bench-sink"}, workdir / "sink.log", command="sink")
    worker = Worker.start(env, workdir / "worker.log")
    try:
        await wait_http_ok(f"{worker.url}/ready", timeout=180)
        pids = {"worker": worker.process.pid} | ({"sink": sink.process.pid} if sink else {})
        results[label], finished, cpu = await pipeline_rate(worker, total, pids)
        results[f"cpu {label}"] = cpu["worker"]
        per_process = ", ".join(f"{name} {value:.0f}" for name, value in cpu.items())
        print(f"{results[label]:,.0f} events/s (us CPU per event: {per_process})")
        waited = await metric(worker, "core_record_writer_wait_seconds_total")
        print(f"   agents waited {waited:.1f}s of the {total / results[label]:.0f}s for the record writer")
        chunks = await metric(worker, "core_ingest_chunks_total")
        if chunks:
            print(f"   batched delivery: {chunks:,.0f} chunks, {total / chunks:,.0f} events each on average")
        d = "d" if label == "c" else "d0"
        results[d] = await sink_catch_up(settings, merchant_id, len(customers), steps, finished)
        print(f"({d}) {results[d]:.1f}s after the last applied event until all rows hold their final version")
    finally:
        worker.stop()
        if sink is not None:
            sink.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--rss-customers", type=int, default=1_000_000, help="0 skips (e)")
    parser.add_argument("--rss-every", type=int, default=20_000, help="(e): print the RSS every N events")
    parser.add_argument("--memtrace", default="", help="(e): trace the worker's memory into this directory")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of (a), (b), (b'), (c), (d)")
    parser.add_argument(
        "--compare-agents",
        action="store_true",
        help="also (c0): the agents' path, INGEST_BATCH_DELIVERY=false",
    )
    parser.add_argument("--pipeline-only", action="store_true", help="skip the baselines (for profiling)")
    parser.add_argument("--skip-crc32", action="store_true", help="skip (c'), the CRC32-partitioned input")
    parser.add_argument(
        "--sink-in-worker", action="store_true", help="run the PostgreSQL sink inside the worker"
    )
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
