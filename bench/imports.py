"""Import benchmark: a Shopify export end to end into PostgreSQL, against a plain COPY of the same rows.

    .venv/bin/python -m bench.imports [--rows 50000]

(a) COPY of the same customers into `customers`: the same rows (id, merchant, email, the metadata the
    import writes) through the same triggers (pgcrypto AES-256 email, keyed email hash, PII
    sanitising) and indexes. The floor for these rows in this schema.
(a') COPY of the same rows into a table with no triggers and no indexes: raw COPY speed, for scale.
(b) the import: from `POST /core/v1/imports` (one worker, file served over local HTTP) until every
    customer is in PostgreSQL, then until the log says `completed`.
Ratios are printed last. Needs the local PostgreSQL and Redis; starts its own Tansu and registry.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import psycopg2

from bench.common import Worker, free_port, start_tansu, wait_http_ok
from bench.common import worker_env as common_worker_env
from core_app import db
from core_app.domain.customer_import import FileReader, ImportedRow, imported_metadata
from core_app.migrate import migrate
from core_app.schema_registry.run import start_registry
from core_app.settings import Settings
from tests.support.file_server import FileServer
from tests.support.imports import shopify_csv

PARTITIONS = 12


def section(title: str) -> None:
    print(f"\n== {title}", flush=True)


def connect(settings: Settings) -> Any:
    conn = psycopg2.connect(settings.db_dsn, options=db.connection_options(settings))
    conn.autocommit = True
    return conn


def new_merchant(settings: Settings) -> str:
    merchant_id = str(uuid.uuid4())
    with connect(settings) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO merchants (id, shop_domain) VALUES (%s, %s)", (merchant_id, merchant_id))
    return merchant_id


def good_rows(data: bytes) -> list[ImportedRow]:
    reader = FileReader("shopify")
    parsed = reader.feed(data.decode()) + reader.finish()
    seen: set[str] = set()
    rows = []
    for _row, outcome in parsed:
        if isinstance(outcome, ImportedRow) and outcome.email not in seen:
            seen.add(outcome.email)
            rows.append(outcome)
    return rows


def copy_buffer(merchant_id: str, rows: list[ImportedRow]) -> io.StringIO:
    import csv

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    import_id = str(uuid.uuid4())
    for row in rows:
        fields = {**row.fields, "import_id": import_id, "imported_at": "2026-01-01T00:00:00.000Z"}
        metadata = imported_metadata({}, "shopify", fields)
        writer.writerow([str(uuid.uuid4()), merchant_id, row.email, json.dumps(metadata)])
    buffer.seek(0)
    return buffer


def copy_rate(settings: Settings, rows: list[ImportedRow], table: str) -> float:
    merchant_id = new_merchant(settings)
    buffer = copy_buffer(merchant_id, rows)
    with connect(settings) as conn, conn.cursor() as cur:
        started = time.perf_counter()
        copy = f"COPY {table} (id, merchant_id, email, metadata) FROM STDIN WITH (FORMAT csv)"
        cur.copy_expert(copy, buffer)
        elapsed = time.perf_counter() - started
        cur.execute(f"SELECT count(*) FROM {table} WHERE merchant_id = %s", (merchant_id,))
        assert cur.fetchone()[0] == len(rows)
    print(f"{len(rows):,} rows in {elapsed:.2f}s")
    return len(rows) / elapsed


def customers_in_postgres(settings: Settings, merchant_id: str) -> int:
    with connect(settings) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM customers WHERE merchant_id = %s", (merchant_id,))
        return int(cur.fetchone()[0])


async def import_rate(
    settings: Settings, worker: Worker, url: str, expected: int, bad: int
) -> tuple[float, float, float]:
    """(customers/s until all are in PostgreSQL, seconds until then, seconds until `completed`)."""
    merchant_id = new_merchant(settings)
    async with aiohttp.ClientSession() as http:
        started = time.perf_counter()
        async with http.post(
            f"{worker.url}/core/v1/imports",
            json={"merchant_id": merchant_id, "source": "shopify", "file_url": url},
        ) as response:
            log = await response.json()
            assert response.status == 202, log
        in_postgres = completed = 0.0
        params = {"merchant_id": merchant_id, "import_id": log["import_id"]}
        while not completed:
            if not in_postgres and customers_in_postgres(settings, merchant_id) >= expected:
                in_postgres = time.perf_counter() - started
            async with http.get(f"{worker.url}/core/v1/imports", params=params) as response:
                log = await response.json()
            if log["status"] == "failed":
                raise RuntimeError(f"the import failed: {log}")
            if log["status"] == "completed" and in_postgres:
                completed = time.perf_counter() - started
            if worker.process.poll() is not None:
                raise RuntimeError(f"worker exited:\n{worker.log_tail()}")
            await asyncio.sleep(0.05)
    assert (log["record_count"], log["error_count"]) == (expected, bad), log
    print(f"{expected:,} customers in PostgreSQL after {in_postgres:.1f}s")
    print(f"the log said `completed` after {completed:.1f}s")
    return expected / in_postgres, in_postgres, completed


def worker_env(settings: Settings, broker: str, registry: str, workdir: Path) -> dict[str, str]:
    return common_worker_env(
        settings,
        broker,
        registry,
        workdir,
        "bench-imports",
        PARTITIONS,
        IMPORT_PRIVATE_ALLOWLIST="127.0.0.1/32",  # the file server below
        # One request starts the import; what is measured is the import itself, not the security layer.
        AUTH_ENABLED="false",
    )


async def run(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="core-bench-imports-"))
    settings = Settings(
        core_db_name=f"core_bench_{uuid.uuid4().hex[:6]}", redis_key_prefix=f"bench:{uuid.uuid4().hex[:6]}:"
    )
    migrate(settings)
    tansu = start_tansu(workdir)
    registry_port = free_port()
    registry = await start_registry(settings, "127.0.0.1", registry_port)
    files = FileServer()
    await files.start()
    results: dict[str, float] = {}
    load = os.getloadavg()
    try:
        data, bad_rows = shopify_csv(args.rows)
        rows = good_rows(data)
        url = files.add("customers_export.csv", data)
        size = len(data) / 1e6
        section(
            f"setup: a Shopify export of {args.rows:,} rows ({size:.1f} MB), {len(bad_rows):,} of them bad"
        )

        section("(a) COPY of the same customers into `customers` (same triggers and indexes)")
        results["a"] = copy_rate(settings, rows, "customers")
        print(f"{results['a']:,.0f} rows/s")
        section("(a') COPY of the same rows into a table without triggers or indexes")
        with connect(settings) as conn, conn.cursor() as cur:
            cur.execute("CREATE TABLE bench_plain (id uuid, merchant_id uuid, email text, metadata jsonb)")
        results["a_raw"] = copy_rate(settings, rows, "bench_plain")
        print(f"{results['a_raw']:,.0f} rows/s")

        section("(b) the import, end to end: POST /core/v1/imports until every customer is in PostgreSQL")
        env = worker_env(settings, tansu.url, f"http://127.0.0.1:{registry_port}", workdir)
        worker = Worker.start(env, workdir / "worker.log")
        try:
            await wait_http_ok(f"{worker.url}/ready", timeout=180)
            results["b"], results["b_seconds"], results["b_completed"] = await import_rate(
                settings, worker, url, len(rows), len(bad_rows)
            )
            print(f"{results['b']:,.0f} customers/s")
        finally:
            worker.stop()
    finally:
        await files.stop()
        await registry.cleanup()
        tansu.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        admin = psycopg2.connect(settings.model_copy(update={"core_db_name": "postgres"}).db_dsn)
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{settings.core_db_name}" WITH (FORCE)')
        admin.close()
    load_after = os.getloadavg()
    section("ratios (same run)")
    cores = os.cpu_count()
    print(f"load average (1 min) before / after: {load[0]:.2f} / {load_after[0]:.2f} on {cores} cores")
    target = "met" if results["b"] >= 2000 and results["b_seconds"] < 25 else "MISSED"
    print(
        f"(b) import = {results['b']:,.0f} customers/s, {results['b_seconds']:.1f}s for {args.rows:,} rows"
        f"  target >= 2,000/s and < 25 s: {target}"
    )
    print(f"(a') raw COPY / (a) COPY with the schema's triggers = {results['a_raw'] / results['a']:.1f}")
    print(f"(b) import / (a') raw COPY = {results['b'] / results['a_raw']:.3f}")
    print(f"(b) import / (a) COPY of the same rows = {results['b'] / results['a']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=50_000)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
