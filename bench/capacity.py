"""Capacity inputs (issue 21 item 4; docs/capacity.md derives the plan's sizing from them).

    .venv/bin/python -m bench.capacity [--sizes 1000000,5000000] [--redis-customers 200000]
                                       [--pg-customers 200000] [--recovery-customers 1000000]
                                       [--skip-recovery] [--storage-from RUN] [--recovery-from RUN]
                                       [--json OUT]

`--storage-from` and `--recovery-from` take those inputs from an earlier run instead of measuring
them: a `--json` file, or a run recorded by bench/record.py (of this bench, or of
bench/capacity_recovery.py for the recovery), so the model is reproduced from recorded figures with
one command (docs/capacity.md).

Every figure comes from the service's own components and formats, on this machine:
- RocksDB: customer states (`CustomerState.to_dict()`, the email sealed with AES-256-GCM as the
  service seals it) written into one RocksDB opened with the worker's options (tables/rocksdb.py,
  Faust's rocksdict driver), flushed and compacted; bytes on disk per customer at each `--sizes`.
- Changelog: the same records in Kafka v2 record batches built by the record writer's own builder
  (tables/changelog.py), uncompressed as the worker produces them; bytes per customer (one record
  per customer, what a compacted changelog keeps).
- Redis: `--redis-customers` cache entries as the read path writes them (the public view, JSON,
  24 h TTL), bytes per entry from `INFO memory` before and after; the entries are removed after.
- PostgreSQL: `--pg-customers` rows through the real schema and triggers (pgcrypto email, segment
  counts) into a throwaway database; table, TOAST and indexes per customer.
- Recovery and rebalance (bench/capacity_recovery.py): a changelog of `--recovery-customers`
  records on a private Tansu, a worker started with no local state (time to /ready per GB of
  changelog), then a second worker joining (time until both are ready, half the partitions moved).
Then bench/capacity_model.py derives partitions, workers and sizes for the plan's scale and 10x.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from statistics import median
from typing import Any

import orjson
import psycopg2
import psycopg2.extras
import redis

from bench.capacity_model import Inputs, derive, print_model
from bench.common import drop_database
from core_app import db
from core_app.customer_adapters import CUSTOMER_CACHE_TTL
from core_app.domain.customer import CustomerState
from core_app.domain.customer_view import customer_view
from core_app.migrate import migrate
from core_app.routing import key_partition
from core_app.security.crypto import new_key
from core_app.security.shredding import encrypt_field
from core_app.settings import Settings
from tables.changelog import new_builder
from tables.rocksdb import rocksdb_options

MERCHANTS = 100
CHUNK = 10_000
DATA_KEY = new_key()


def customer(n: int) -> CustomerState:
    """The n-th synthetic customer: as many fields, and as long, as a scored, pointed one."""
    merchant_id = str(uuid.UUID(int=n % MERCHANTS + 1))
    customer_id = str(uuid.uuid4())
    sealed = encrypt_field(DATA_KEY, merchant_id, customer_id, "email", f"shopper.{n}@example-shop.com")
    return CustomerState(
        merchant_id=merchant_id,
        customer_id=customer_id,
        email=sealed,
        email_hash=os.urandom(32).hex(),
        rfm_score={
            "recency": 1 + n % 5,
            "frequency": 1 + n % 4,
            "monetary": 1 + n % 3,
            "score": 111 + n % 400,
        },
        metadata={"points": {"balance": n % 5000, "tier": "silver"}, "tags": ["vip"] if n % 10 == 0 else []},
        version=7,
        applied_as_of={"rfm": 1_764_000_000_000 + n, "points": 1_764_000_000_000 + n},
        created_at="2026-11-01T10:00:00.000",
        updated_at="2026-12-01T10:00:00.000",
    )


def records(count: int) -> Any:
    """(partition, key bytes, value bytes) per customer, in chunks, as the record writer encodes them."""
    for start in range(0, count, CHUNK):
        chunk = []
        for n in range(start, min(count, start + CHUNK)):
            state = customer(n)
            chunk.append(
                (key_partition(state.key, 12), orjson.dumps(state.key), orjson.dumps(state.to_dict()))
            )
        yield chunk


def closed_size(builder: Any) -> int:
    builder.close()
    return int(builder.size())


def disk_bytes(path: Path) -> int:
    return sum(file.stat().st_size for file in path.rglob("*") if file.is_file())


def measure_rocksdb_and_changelog(settings: Settings, count: int, workdir: Path) -> dict[str, float]:
    from faust.stores.rocksdb import RocksDBOptions
    from rocksdict import WriteBatch

    path = workdir / f"rocksdb-{count}"
    store = RocksDBOptions(**rocksdb_options(settings), use_rocksdict=True).open(path)
    changelog_bytes = 0
    started = time.monotonic()
    for chunk in records(count):
        batch = WriteBatch(raw_mode=True)
        builder = new_builder()
        for _, key, value in chunk:
            batch.put(key, value)
            if builder.append(timestamp=None, key=key, value=value) is None:  # full
                changelog_bytes += closed_size(builder)
                builder = new_builder()
                builder.append(timestamp=None, key=key, value=value)
        changelog_bytes += closed_size(builder)
        store.write(batch)
    store.flush()
    store.compact_range(None, None)
    written = time.monotonic() - started
    size = disk_bytes(path)
    store.close()
    shutil.rmtree(path, ignore_errors=True)
    return {
        "customers": count,
        "rocksdb_bytes_per_customer": size / count,
        "changelog_bytes_per_customer": changelog_bytes / count,
        "write_seconds": written,
    }


def measure_redis(settings: Settings, count: int) -> float:
    client = redis.Redis(host=settings.redis_host, port=settings.redis_port)
    prefix = f"capacity:{uuid.uuid4().hex[:8]}:customer:"
    client.execute_command("MEMORY", "PURGE")
    before = int(client.info("memory")["used_memory"])
    pipe = client.pipeline(transaction=False)
    for n in range(count):
        state = customer(n)
        view = orjson.dumps(customer_view(state))
        pipe.set(f"{prefix}{state.merchant_id}:{state.customer_id}", view, ex=CUSTOMER_CACHE_TTL)
        if n % 5000 == 4999:
            pipe.execute()
    pipe.execute()
    after = int(client.info("memory")["used_memory"])
    for keys in _batched(client.scan_iter(match=f"{prefix}*", count=5000), 5000):
        client.unlink(*keys)
    return (after - before) / count


def _batched(items: Any, size: int) -> Any:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def measure_postgres(count: int) -> dict[str, float]:
    settings = Settings(core_db_name=f"core_capacity_{uuid.uuid4().hex[:6]}")
    migrate(settings)
    conn = psycopg2.connect(settings.db_dsn, options=db.connection_options(settings))
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for n in range(MERCHANTS):
                merchant_id = str(uuid.UUID(int=n + 1))
                cur.execute(
                    "INSERT INTO merchants (id, shop_domain) VALUES (%s, %s)", (merchant_id, merchant_id)
                )
            started = time.monotonic()
            for start in range(0, count, CHUNK):
                rows = [_row(customer(n)) for n in range(start, min(count, start + CHUNK))]
                psycopg2.extras.execute_values(
                    cur,
                    "INSERT INTO customers (id, merchant_id, email, email_hash, rfm_score, metadata, version,"
                    " applied_as_of) VALUES %s",
                    rows,
                    page_size=CHUNK,
                )
            inserted = time.monotonic() - started
            cur.execute("VACUUM ANALYZE customers")
            return {"customers": count, "insert_seconds": inserted} | _customer_sizes(cur, count)
    finally:
        conn.close()
        drop_database(settings)


def _row(state: CustomerState) -> tuple[Any, ...]:
    return (
        state.customer_id,
        state.merchant_id,
        f"{state.customer_id}@example-shop.com",  # the trigger encrypts it (pgcrypto)
        state.email_hash,
        json.dumps(state.rfm_score),
        json.dumps(state.metadata),
        state.version,
        json.dumps(state.applied_as_of),
    )


def _customer_sizes(cur: Any, count: int) -> dict[str, float]:
    cur.execute(
        "SELECT sum(pg_table_size(relid)), sum(pg_indexes_size(relid))"
        " FROM pg_partition_tree('customers') WHERE isleaf"
    )
    table, indexes = cur.fetchone()
    return {
        "table_bytes_per_customer": float(table) / count,
        "index_bytes_per_customer": float(indexes) / count,
    }


RESULTS = Path(__file__).resolve().parent / "results"
INGEST_CPU = re.compile(r"us CPU per event: worker (\d+), sink (\d+)")
READ_CPU = re.compile(r"^rest_table \[\d+/\d+\]: .* server CPU (\d+) us/req")


def cpu_inputs(
    results: Path = RESULTS, ingest_from: Path | None = None, reads_from: Path | None = None
) -> dict[str, Any]:
    """CPU per event and per read: the medians of the given recorded ingest and read benches, else
    of the newest ones."""
    ingest_file, ingest = _newest(results, "ingest", INGEST_CPU, ingest_from)
    reads_file, reads = _newest(results, "reads", READ_CPU, reads_from)
    return {
        "worker_us_per_event": median(int(m.group(1)) for m in ingest),
        "sink_us_per_event": median(int(m.group(2)) for m in ingest),
        "worker_us_per_read": median(int(m.group(1)) for m in reads),
        "sources": {"ingest": ingest_file, "reads": reads_file},
    }


def _newest(
    results: Path, bench: str, pattern: re.Pattern[str], only: Path | None = None
) -> tuple[str, list[re.Match[str]]]:
    paths = [only] if only is not None else list(results.glob("*.json"))
    runs = [(path, json.loads(path.read_text())) for path in paths]
    runs = [(path, run) for path, run in runs if run.get("bench") == f"bench/{bench}.py"]
    for path, recorded in sorted(runs, key=lambda run: str(run[1].get("finished") or ""), reverse=True):
        section, matches = "", []
        for line in recorded.get("output", []):
            section = line if line.startswith("== ") else section
            found = pattern.search(line)
            # ingest: the batched pipeline's phase (c) only, not (c0), the agents' path
            if found and (bench != "ingest" or section.startswith("== (c) ")):
                matches.append(found)
        if matches:
            return path.name, matches
    raise SystemExit(f"no recorded {bench} bench with CPU figures under {results}")


def measure_storage(
    args: argparse.Namespace, settings: Settings, workdir: Path, measured: dict[str, Any]
) -> None:
    for size in (int(part) for part in args.sizes.split(",")):
        result = measure_rocksdb_and_changelog(settings, size, workdir)
        print(f"rocksdb+changelog at {size:,}: {json.dumps(result)}", flush=True)
        measured["storage"].append(result)
    measured["redis_bytes_per_entry"] = entry = measure_redis(settings, args.redis_customers)
    print(f"redis at {args.redis_customers:,}: {entry:.0f} bytes/entry", flush=True)
    measured["postgres"] = measure_postgres(args.pg_customers)
    print(f"postgres at {args.pg_customers:,}: {json.dumps(measured['postgres'])}", flush=True)


def recorded_inputs(path: Path) -> dict[str, Any]:
    """The measured inputs of an earlier run: its `--json`, or its output lines as bench/record.py
    kept them (`rocksdb+changelog at N: {...}`, `redis at N: B bytes/entry`, `postgres at N: {...}`,
    `recovery: {...}`)."""
    data = json.loads(path.read_text())
    if "output" not in data:
        return dict(data)
    measured: dict[str, Any] = {"storage": []}
    for line in data["output"]:
        head, _, rest = line.partition(": ")
        if head.startswith("rocksdb+changelog at "):
            measured["storage"].append(json.loads(rest))
        elif head.startswith("redis at "):
            measured["redis_bytes_per_entry"] = float(rest.split()[0])
        elif head.startswith("postgres at "):
            measured["postgres"] = json.loads(rest)
        elif head == "recovery":
            measured["recovery"] = json.loads(rest)
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1000000,5000000")
    parser.add_argument("--redis-customers", type=int, default=200_000)
    parser.add_argument("--pg-customers", type=int, default=200_000)
    parser.add_argument("--recovery-customers", type=int, default=1_000_000)
    parser.add_argument("--skip-recovery", action="store_true")
    parser.add_argument(
        "--storage-from", type=Path, help="an earlier --json's storage inputs: measure the rest"
    )
    parser.add_argument(
        "--recovery-from", type=Path, help="an earlier run's recovery input (implies --skip-recovery)"
    )
    parser.add_argument(
        "--ingest-from", type=Path, help="the recorded ingest bench for CPU per event (default: the newest)"
    )
    parser.add_argument(
        "--reads-from", type=Path, help="the recorded reads bench for CPU per read (default: the newest)"
    )
    parser.add_argument("--json", type=Path, help="also write the measured inputs here")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (worker logs)")
    args = parser.parse_args()
    settings = Settings()
    workdir = Path(tempfile.mkdtemp(prefix="core-capacity-"))
    measured: dict[str, Any] = {"storage": [], "cpu": cpu_inputs(RESULTS, args.ingest_from, args.reads_from)}
    print(f"cpu (from bench/results): {json.dumps(measured['cpu'])}", flush=True)
    try:
        if args.storage_from:
            earlier = recorded_inputs(args.storage_from)
            measured |= {name: earlier[name] for name in ("storage", "redis_bytes_per_entry", "postgres")}
            print(f"storage inputs from {args.storage_from}", flush=True)
        else:
            measure_storage(args, settings, workdir, measured)
        if args.recovery_from:
            measured["recovery"] = recorded_inputs(args.recovery_from)["recovery"]
            print(f"recovery input from {args.recovery_from}: {json.dumps(measured['recovery'])}", flush=True)
        elif not args.skip_recovery:
            from bench.capacity_recovery import measure_recovery

            measured["recovery"] = asyncio.run(measure_recovery(args.recovery_customers, workdir))
            print(f"recovery: {json.dumps(measured['recovery'])}", flush=True)
    finally:
        if args.keep:
            print(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(measured, indent=2))
    print_model(derive(Inputs.from_measured(measured)))


if __name__ == "__main__":
    main()
