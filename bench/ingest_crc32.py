"""Phase (c') of bench/ingest.py: the same load produced by librdkafka's CRC32 partitioner (the
repartition cost, docs/decisions.md D100), and its report line."""

from __future__ import annotations

import argparse
import uuid
from pathlib import Path

from bench.common import Worker, metric, wait_http_ok
from bench.ingest import insert_customers, pipeline_rate, produce_rfm, rfm_record, section
from bench.rdkafka import CrcProducer
from core_app.events.codec import EventCodec
from core_app.settings import Settings
from core_app.topics import RFM_UPDATED


async def produce_rfm_crc32(
    bootstrap: str, codec: EventCodec, merchant_id: str, customers: list[str], rounds: int
) -> int:
    producer = CrcProducer(bootstrap)
    for step in range(rounds):
        for n, customer_id in enumerate(customers):
            value = await codec.encode(RFM_UPDATED, rfm_record(merchant_id, customer_id, n, step))
            producer.send(RFM_UPDATED, f"{merchant_id}:{customer_id}".encode(), value)
    await producer.flush()
    return rounds * len(customers)


async def crc32_phase(
    args: argparse.Namespace,
    settings: Settings,
    bootstrap: str,
    codec: EventCodec,
    env: dict[str, str],
    workdir: Path,
    results: dict[str, float],
) -> None:
    """(c') the same load produced by librdkafka's CRC32 partitioner, while the worker is stopped, then
    consumed by the same worker restarted: most events are forwarded to their key's partition first."""
    section("(c') this pipeline, CRC32-partitioned input (librdkafka default): the repartition cost")
    merchant_id = str(uuid.uuid4())
    customers = insert_customers(settings, merchant_id, args.customers)
    rounds = max(1, args.messages // args.customers)
    total = await produce_rfm(bootstrap, codec, merchant_id, customers, rounds, crc32=True)
    print(f"produced {total:,} events through librdkafka")
    sink = None
    if not args.sink_in_worker:
        sink = Worker.start(env | {"WORKER_ID": "bench-sink"}, workdir / "sink-crc32.log", command="sink")
    # A new worker id: it recovers the tables from the changelogs before it consumes (the rate counts
    # from the first applied event), as a worker joining the set would.
    worker = Worker.start(env | {"WORKER_ID": "bench-crc32"}, workdir / "worker-crc32.log")
    try:
        try:
            await wait_http_ok(f"{worker.url}/ready", timeout=180)
        except TimeoutError:
            print(worker.log_tail(60))
            raise
        pids = {"worker": worker.process.pid} | ({"sink": sink.process.pid} if sink else {})
        results["c'"], _finished, cpu = await pipeline_rate(worker, total, pids)
        results["cpu c'"] = cpu["worker"]
        forwarded = await metric(worker, "core_events_repartitioned_total")
        rate = results["c'"]
        print(
            f"{rate:,.0f} events/s ({cpu['worker']:.0f} us worker CPU per event); "
            f"{forwarded:,.0f} of {total:,} forwarded to their key's partition"
        )
    finally:
        worker.stop()
        if sink is not None:
            sink.stop()


def report_crc32(results: dict[str, float]) -> None:
    ratio = results["c'"] / results["c"]
    verdict = "met" if ratio >= 0.6 else "MISSED"
    print(f"(c') CRC32 input        / (c) murmur2   = {ratio:.2f}  target >= 0.6: {verdict}")
    if "cpu c" in results:  # far less sensitive to other load on the machine than the rates
        c_cpu, crc_cpu = results["cpu c"], results["cpu c'"]
        print(f"(c') CPU per event: (c) {c_cpu:.0f} us / (c') {crc_cpu:.0f} us = {c_cpu / crc_cpu:.2f}")
