"""Recovery and rebalance inputs of the capacity model (bench/capacity.py, docs/capacity.md).

On a private Tansu, PostgreSQL database and registry: a worker started on the empty stack gives the
start-up time (to /ready); then `count` customer records are produced into the customers changelog,
each into its key's own partition as the record writer sends them, and a worker with no local state
rebuilds its table from them: its time to /ready, less the start-up time, per GiB of changelog is
the recovery rate. Then a second worker joins: the time until both are ready (half the partitions
move to it and are rebuilt there) is the rebalance time.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.capacity import closed_size, records
from bench.common import Worker, drop_database, free_port, start_tansu, wait_http_ok, worker_env
from core_app.migrate import migrate
from core_app.schema_registry.run import start_registry
from core_app.settings import Settings
from core_app.topics import ensure_topics
from tables.changelog import new_builder

PARTITIONS = 12
CHANGELOG = "core-customers-changelog"
READY_TIMEOUT = 3600.0


async def measure_recovery(count: int, workdir: Path) -> dict[str, Any]:
    settings = Settings(
        core_db_name=f"core_capacity_{uuid.uuid4().hex[:6]}",
        redis_key_prefix=f"capacity:{uuid.uuid4().hex[:6]}:",
    )
    migrate(settings)
    tansu = start_tansu(workdir)
    registry_port = free_port()
    registry = await start_registry(settings, "127.0.0.1", registry_port)
    # No in-worker sink: it would write the changelog to PostgreSQL beside the recovery (and refuse
    # it, the bench's merchants being absent), which is not what a recovery costs.
    env = worker_env(
        settings,
        tansu.url,
        f"http://127.0.0.1:{registry_port}",
        workdir,
        "capacity-0",
        PARTITIONS,
        SINK_IN_WORKER="false",
    )
    try:
        topics = {"kafka_broker": tansu.url, "kafka_topic_partitions": PARTITIONS}
        await ensure_topics(settings.model_copy(update=topics))
        await create_changelog(tansu.bootstrap)
        startup = await time_to_ready(env | {"DATA_DIR": str(workdir / "w0")}, workdir / "w0.log")
        changelog_bytes = await produce_changelog(tansu.bootstrap, count)
        ready = await time_to_ready(env | {"DATA_DIR": str(workdir / "w1")}, workdir / "w1.log", keep=True)
        first = RUNNING[-1]
        join = await time_to_ready(
            env | {"DATA_DIR": str(workdir / "w2"), "WORKER_ID": "capacity-2"}, workdir / "w2.log", keep=True
        )
        await wait_http_ok(f"{first.url}/ready", READY_TIMEOUT)
        recovery = max(0.0, ready - startup)
        return {
            "customers": count,
            "changelog_gib": changelog_bytes / 1024**3,
            "startup_seconds": startup,
            "ready_seconds": ready,
            "recovery_seconds": recovery,
            "seconds_per_gib": recovery / (changelog_bytes / 1024**3),
            "join_seconds": join,
            "partitions_moved": PARTITIONS // 2,
        }
    finally:
        for worker in RUNNING:
            worker.stop()
        await registry.cleanup()
        tansu.stop()
        drop_database(settings)


RUNNING: list[Worker] = []


async def time_to_ready(env: dict[str, str], log: Path, keep: bool = False) -> float:
    started = time.monotonic()
    worker = Worker.start(env, log)
    RUNNING.append(worker)
    await wait_http_ok(f"{worker.url}/ready", READY_TIMEOUT)
    elapsed = time.monotonic() - started
    if not keep:
        RUNNING.remove(worker)
        worker.stop()
    return elapsed


async def create_changelog(bootstrap: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        if CHANGELOG not in await admin.list_topics():
            topic = NewTopic(CHANGELOG, PARTITIONS, 1, topic_configs={"cleanup.policy": "compact"})
            await admin.create_topics([topic])
    finally:
        await admin.close()


async def produce_changelog(bootstrap: str, count: int) -> int:
    """`count` records, each in its key's partition, in the record writer's batches; bytes sent."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=4 * 1024 * 1024)
    await producer.start()
    sent = 0
    try:
        for chunk in records(count):
            by_partition: dict[int, list[tuple[bytes, bytes]]] = {}
            for partition, key, value in chunk:
                by_partition.setdefault(partition, []).append((key, value))
            futures = []
            for partition, pairs in by_partition.items():
                builder = new_builder()
                for key, value in pairs:
                    if builder.append(timestamp=None, key=key, value=value) is None:
                        sent += closed_size(builder)
                        futures.append(await producer.send_batch(builder, CHANGELOG, partition=partition))
                        builder = new_builder()
                        builder.append(timestamp=None, key=key, value=value)
                sent += closed_size(builder)
                futures.append(await producer.send_batch(builder, CHANGELOG, partition=partition))
            await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return sent
