"""Recovery and rebalance inputs of the capacity model (bench/capacity.py, docs/capacity.md), and the
batched changelog apply against Faust's per-record path (D238).

    .venv/bin/python -m bench.capacity_recovery [--customers 300000] [--rounds 2]
                                                [--modes faust,batched] [--join] [--keep]

On a private Tansu, PostgreSQL database and registry: a worker started on the empty stack gives the
start-up time (to /ready); then `--customers` customer records are produced into the customers
changelog, each into its key's own partition as the record writer sends them. Per round and mode a
worker with no local state rebuilds its table from them: its time to /ready, less the start-up
time, per GiB of changelog is the recovery rate; its CPU to /ready, less the start-up worker's, the
CPU of the recovery. `faust` runs the worker with `RECOVERY_BATCH_APPLY=false` (Faust's per-record
path), `batched` with the default. With `--join` a second worker then joins: the time until both
are ready (half the partitions move to it and are rebuilt there) is the rebalance time. After each
round the worker's RocksDB is opened to check that it holds every key and each partition's
persisted offset is the changelog's last. The modes alternate their order between rounds; the
ratios (faust / batched, > 1: batched is faster) come last.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass
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
POLL = 0.05  # /ready polling, seconds: the recovery being timed can take only a few
MODES = {"faust": {"RECOVERY_BATCH_APPLY": "false"}, "batched": {"RECOVERY_BATCH_APPLY": "true"}}
OFFSET_KEY = b"__faust\x00offset__"


@dataclass
class Run:
    """One worker brought to /ready: seconds, CPU seconds of the process, and the worker."""

    seconds: float
    cpu_seconds: float
    worker: Worker


async def measure_recovery(
    count: int, workdir: Path, modes: tuple[str, ...] = ("batched",), rounds: int = 1, join: bool = True
) -> dict[str, Any]:
    """The batched mode's median round (else the first mode's) as the capacity model's recovery input;
    every round under `runs`."""
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
        settings, tansu.url, f"http://127.0.0.1:{registry_port}", workdir, "capacity-0", PARTITIONS,
        SINK_IN_WORKER="false",
    )  # fmt: skip
    try:
        topics = {"kafka_broker": tansu.url, "kafka_topic_partitions": PARTITIONS}
        await ensure_topics(settings.model_copy(update=topics))
        await create_changelog(tansu.bootstrap)
        start = await start_worker(env | {"DATA_DIR": str(workdir / "w0")}, workdir / "w0.log")
        stop(start)
        print(f"start-up to /ready, empty tables: {start.seconds:.2f} s, CPU {start.cpu_seconds:.2f} s")
        ends: dict[int, int] = {}
        changelog_bytes = await produce_changelog(tansu.bootstrap, count, ends)
        runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
        for n in range(rounds):
            for mode in modes if n % 2 == 0 else modes[::-1]:
                where = workdir / f"{mode}-{n}"
                run = await recover_once(env, where, MODES[mode], start, changelog_bytes, join)
                run |= check_state(where, count, ends)
                print(f"round {n + 1} {mode}: {describe(run, count)}", flush=True)
                runs[mode].append(run)
        mode = "batched" if "batched" in modes else modes[0]  # the service's path
        middle = sorted(runs[mode], key=lambda run: run["recovery_seconds"])[len(runs[mode]) // 2]
        return {"customers": count, "startup_seconds": start.seconds, "mode": mode, **middle} | {"runs": runs}
    finally:
        for worker in RUNNING:
            worker.stop()
        await registry.cleanup()
        tansu.stop()
        drop_database(settings)


async def recover_once(
    env: dict[str, str], where: Path, extra: dict[str, str], start: Run, changelog_bytes: int, join: bool
) -> dict[str, Any]:
    env = env | extra | {"DATA_DIR": str(where / "w1")}
    ready = await start_worker(env, where.with_suffix(".w1.log"))
    recovery = max(0.0, ready.seconds - start.seconds)
    gib = changelog_bytes / 1024**3
    result: dict[str, Any] = {
        "changelog_gib": gib,
        "ready_seconds": ready.seconds,
        "recovery_seconds": recovery,
        "seconds_per_gib": recovery / gib,
        "recovery_cpu_seconds": max(0.0, ready.cpu_seconds - start.cpu_seconds),
    }
    if join:
        second = env | {"DATA_DIR": str(where / "w2"), "WORKER_ID": "capacity-2"}
        joined = await start_worker(second, where.with_suffix(".w2.log"))
        await wait_http_ok(f"{ready.worker.url}/ready", READY_TIMEOUT, POLL)
        result |= {"join_seconds": joined.seconds, "partitions_moved": PARTITIONS // 2}
        stop(joined)
    stop(ready)
    return result


def describe(run: dict[str, Any], count: int) -> str:
    rate = count / run["recovery_seconds"] if run["recovery_seconds"] else float("inf")
    joined = f", join {run['join_seconds']:.1f} s" if "join_seconds" in run else ""
    return (
        f"ready {run['ready_seconds']:.2f} s, recovery {run['recovery_seconds']:.2f} s "
        f"({rate:,.0f} records/s, {run['seconds_per_gib']:.1f} s/GiB), "
        f"recovery CPU {run['recovery_cpu_seconds']:.2f} s{joined}; held {run['keys_held']:,} of "
        f"{count:,} keys, {run['partitions_at_end']} of {PARTITIONS} partitions' persisted offsets at "
        "the changelog's end"
    )


RUNNING: list[Worker] = []


async def start_worker(env: dict[str, str], log: Path) -> Run:
    started = time.monotonic()
    worker = Worker.start(env, log)
    RUNNING.append(worker)
    await wait_http_ok(f"{worker.url}/ready", READY_TIMEOUT, POLL)
    return Run(time.monotonic() - started, cpu_seconds(worker.process.pid), worker)


def stop(run: Run) -> None:
    RUNNING.remove(run.worker)
    run.worker.stop()


def cpu_seconds(pid: int) -> float:
    """User plus system CPU of a process, all its threads, so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def check_state(where: Path, count: int, ends: dict[int, int]) -> dict[str, int]:
    """Keys the recovered worker's customers table holds, and partitions whose persisted offset is
    the changelog's last (read from its RocksDB after it stopped)."""
    from rocksdict import AccessType, Options, Rdict

    keys = at_end = 0
    for path in (where / "w1").rglob("customers-*.db"):
        partition = int(path.name.removesuffix(".db").rsplit("-", 1)[1])
        db = Rdict(str(path), options=Options(raw_mode=True), access_type=AccessType.read_only())
        try:
            offset = db.get(OFFSET_KEY)
            keys += sum(1 for key in db.keys() if key != OFFSET_KEY)
            at_end += offset is not None and int(offset) == ends.get(partition, 0) - 1
        finally:
            db.close()
    return {"keys_held": keys, "partitions_at_end": at_end}


async def create_changelog(bootstrap: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        if CHANGELOG not in await admin.list_topics():
            topic = NewTopic(CHANGELOG, PARTITIONS, 1, topic_configs={"cleanup.policy": "compact"})
            await admin.create_topics([topic])
    finally:
        await admin.close()


async def produce_changelog(bootstrap: str, count: int, ends: dict[int, int] | None = None) -> int:
    """`count` records, each in its key's partition, in the record writer's batches; bytes sent.
    `ends`: each partition's end offset afterwards (its record count: the topic is new)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=4 * 1024 * 1024)
    await producer.start()
    sent = 0
    ends = {} if ends is None else ends
    try:
        for chunk in records(count):
            by_partition: dict[int, list[tuple[bytes, bytes]]] = {}
            for partition, key, value in chunk:
                by_partition.setdefault(partition, []).append((key, value))
            futures = []
            for partition, pairs in by_partition.items():
                ends[partition] = ends.get(partition, 0) + len(pairs)
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


def print_ratios(result: dict[str, Any]) -> None:
    runs = result["runs"]
    print("\n== recovery (medians of the rounds)")
    for mode, rounds in runs.items():
        for name in ("recovery_seconds", "seconds_per_gib", "recovery_cpu_seconds", "join_seconds"):
            if name in rounds[0]:
                print(f"{mode} {name}: {statistics.median(run[name] for run in rounds):.2f}")
    if {"faust", "batched"} <= set(runs):
        print("\n== ratios (faust / batched, per round; > 1: the batched apply is faster)")
        for name, label in (("recovery_seconds", "recovery time"), ("recovery_cpu_seconds", "recovery CPU")):
            pairs = zip(runs["faust"], runs["batched"], strict=True)
            ratios = [faust[name] / max(batched[name], 1e-3) for faust, batched in pairs]
            each = " ".join(f"{ratio:.1f}" for ratio in ratios)
            print(f"{label} faust/batched: {statistics.median(ratios):.1f} (rounds {each})")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=300_000, help="changelog records, one a customer")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--modes", default="faust,batched", help=f"comma-separated, of {', '.join(MODES)}")
    parser.add_argument("--join", action="store_true", help="also time a second worker joining")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (worker logs)")
    args = parser.parse_args()
    modes = tuple(args.modes.split(","))
    if unknown := set(modes) - set(MODES):
        parser.error(f"unknown modes: {', '.join(sorted(unknown))}")
    workdir = Path(tempfile.mkdtemp(prefix="core-recovery-"))
    try:
        result = asyncio.run(measure_recovery(args.customers, workdir, modes, args.rounds, args.join))
    finally:
        if args.keep:
            print(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    summary = {name: value for name, value in result.items() if name != "runs"}
    print(f"recovery: {json.dumps(summary)}")
    print_ratios(result)


if __name__ == "__main__":
    main()
