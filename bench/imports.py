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
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import psycopg2

from bench.common import Worker, drop_database, free_port, start_tansu, wait_http_ok
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


def customers_in_postgres(conn: Any, merchant_id: str) -> int:
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM customers WHERE merchant_id = %s", (merchant_id,))
        return int(cur.fetchone()[0])


def cpu_seconds(pid: int) -> float:
    """The process's CPU time, all threads (user + system): a load-independent cost."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def database_cpu(conn: Any) -> dict[int, float]:
    """CPU seconds of each backend on the bench's database (the worker's and the sink's pools), the
    backend of `conn` (the bench's own) excluded."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        pids = [row[0] for row in cur.fetchall()]
    seconds = {}
    for pid in pids:
        try:
            seconds[pid] = cpu_seconds(pid)
        except OSError:
            pass  # PostgreSQL on another host, or the backend ended
    return seconds


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def import_rate(
    settings: Settings, worker: Worker, url: str, expected: int, bad: int, merchant_id: str
) -> tuple[float, float, float]:
    """(customers/s until all are in PostgreSQL, seconds until then, seconds until `completed`)."""
    rss_before = peak = rss_mib(worker.process.pid)
    poll = connect(settings)  # one connection for the bench's polling, not one a poll
    cpu_before, db_before = cpu_seconds(worker.process.pid), database_cpu(poll)
    async with aiohttp.ClientSession() as http:
        started = time.perf_counter()
        async with http.post(
            f"{worker.url}/core/v1/imports",
            json={"merchant_id": merchant_id, "source": "shopify", "file_url": url},
        ) as response:
            log = await response.json()
            assert response.status == 202, log
        in_postgres = completed = next_count = 0.0
        params = {"merchant_id": merchant_id, "import_id": log["import_id"]}
        while not completed:
            async with http.get(f"{worker.url}/core/v1/imports", params=params) as response:
                log = await response.json()
            # The count scans the merchant's customers: every 50 ms it took a core of PostgreSQL
            # from the import at 1,000,000 rows. Once a second, and as soon as the log is final.
            now = time.perf_counter()
            if not in_postgres and (now >= next_count or log["status"] == "completed"):
                next_count = now + 1.0
                if customers_in_postgres(poll, merchant_id) >= expected:
                    in_postgres = time.perf_counter() - started
            if log["status"] == "failed":
                raise RuntimeError(f"the import failed: {log}")
            if log["status"] == "completed" and in_postgres:
                completed = time.perf_counter() - started
            if worker.process.poll() is not None:
                raise RuntimeError(f"worker exited:\n{worker.log_tail()}")
            peak = max(peak, rss_mib(worker.process.pid))
            await asyncio.sleep(0.05)
    assert (log["record_count"], log["error_count"]) == (expected, bad), log
    print(f"worker RSS {rss_before:.0f} MiB before, peak {peak:.0f} MiB (growth {peak - rss_before:.0f} MiB)")
    RSS_GROWTH.append(peak - rss_before)
    cpu = cpu_seconds(worker.process.pid) - cpu_before
    db_after = database_cpu(poll)
    poll.close()
    db = sum(value - db_before.get(pid, 0.0) for pid, value in db_after.items())
    print(
        f"worker CPU {cpu:.1f}s, its PostgreSQL backends' CPU {db:.1f}s to `completed`"
        f" ({cpu * 1e6 / expected:.0f} + {db * 1e6 / expected:.0f} us a customer)"
    )
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
        IMPORT_MAX_FILE_MB="1000",  # the 1M-row file is ~180 MB
        IMPORT_UPDATE_TIMEOUT="900",  # (c) on a loaded machine: measure a slow re-import, do not fail it
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
    results: list[dict[str, float]] = []
    load = os.getloadavg()
    try:
        data, bad_rows = shopify_csv(args.rows)
        rows = good_rows(data)
        url = files.add("customers_export.csv", data)
        size = len(data) / 1e6
        section(
            f"setup: a Shopify export of {args.rows:,} rows ({size:.1f} MB), {len(bad_rows):,} of them bad"
        )

        env = worker_env(settings, tansu.url, f"http://127.0.0.1:{registry_port}", workdir)
        worker = Worker.start(env, workdir / "worker.log")
        try:
            await wait_http_ok(f"{worker.url}/ready", timeout=180)
            for round_no in range(1, args.rounds + 1):
                results.append(await one_round(settings, worker, url, rows, len(bad_rows), round_no, args))
        finally:
            worker.stop()
            for line in (workdir / "worker.log").read_text(errors="replace").splitlines():
                if "stage seconds" in line:
                    print(line[-300:])
    finally:
        await files.stop()
        await registry.cleanup()
        tansu.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        drop_database(settings)
    load_after = os.getloadavg()
    section("ratios (same run)")
    print(
        f"load average (1 min) before / after: {load[0]:.2f} / {load_after[0]:.2f} on {os.cpu_count()} cores"
    )
    for r in results:
        print(f"round {r['round']:.0f}: {round_line(r)}")
    b = [r["b"] for r in results]
    print(f"(b) import {min(b):,.0f}-{max(b):,.0f} customers/s  target >= 20,000/s")
    c = [r["c"] for r in results if r["c"]]
    if c:
        print(f"(c) re-import {min(c):,.0f}-{max(c):,.0f} customers/s  target >= 10,000/s")
    if RSS_GROWTH:
        print(f"worker RSS growth {min(RSS_GROWTH):.0f}-{max(RSS_GROWTH):.0f} MiB  target (1M rows) < 50 MiB")


RSS_GROWTH: list[float] = []  # MiB per measured import, (b) and (c), in the order run


def round_line(r: dict[str, float]) -> str:
    """A round's rates and the ratios its phases allow (a skipped phase has none)."""
    parts = [f"(b) import {r['b']:,.0f}/s ({r['b_seconds']:.1f}s)"]
    if r["c"]:
        parts.append(f"(c) re-import {r['c']:,.0f}/s ({r['c_seconds']:.1f}s)")
    if r["a"]:
        parts.append(
            f"(a')/(a) = {r['a_raw'] / r['a']:.1f}, (b)/(a') = {r['b'] / r['a_raw']:.3f}, "
            f"(b)/(a) = {r['b'] / r['a']:.2f}" + (f", (c)/(a) = {r['c'] / r['a']:.2f}" if r["c"] else "")
        )
    return "; ".join(parts)


def start_profile(worker: Worker, name: str) -> subprocess.Popen[bytes] | None:
    """With BENCH_PROFILE_DIR set: py-spy samples the worker into {dir}/{name}.txt (raw), in (b) and (c)."""
    where = os.environ.get("BENCH_PROFILE_DIR")
    if not where:
        return None
    argv = ["py-spy", "record", "-p", str(worker.process.pid), "-f", "raw", "-r", "50", "-o"]
    return subprocess.Popen([*argv, f"{where}/{name}.txt"], stdout=subprocess.DEVNULL)


def stop_profile(profile: subprocess.Popen[bytes] | None) -> None:
    if profile is not None:
        profile.send_signal(signal.SIGINT)
        profile.wait(30)


async def one_round(
    settings: Settings, worker: Worker, url: str, rows: list[ImportedRow], bad: int, round_no: int, args: Any
) -> dict[str, float]:
    result: dict[str, float] = {"round": round_no}
    section(f"round {round_no}: (a) COPY of the same customers into `customers` (same triggers and indexes)")
    if args.skip_copy:
        result["a"] = result["a_raw"] = 0.0  # skipped: no ratio against it
    else:
        result["a"] = copy_rate(settings, rows, "customers")
        print(f"{result['a']:,.0f} rows/s")
        section(f"round {round_no}: (a') COPY of the same rows into a table without triggers or indexes")
        with connect(settings) as conn, conn.cursor() as cur:
            cur.execute(
                "CREATE TABLE IF NOT EXISTS bench_plain"
                " (id uuid, merchant_id uuid, email text, metadata jsonb)"
            )
        result["a_raw"] = copy_rate(settings, rows, "bench_plain")
        print(f"{result['a_raw']:,.0f} rows/s")
    section(f"round {round_no}: (b) the import: POST /core/v1/imports until every customer is in PostgreSQL")
    merchant_id = new_merchant(settings)
    profile = start_profile(worker, f"import-{round_no}")
    result["b"], result["b_seconds"], _ = await import_rate(
        settings, worker, url, len(rows), bad, merchant_id
    )
    stop_profile(profile)
    print(f"{result['b']:,.0f} customers/s")
    section(f"round {round_no}: (c) re-import of the same file (every customer exists) until `completed`")
    if args.skip_reimport:
        result["c"] = result["c_seconds"] = 0.0
        return result
    profile = start_profile(worker, f"reimport-{round_no}")
    _, _, result["c_seconds"] = await import_rate(settings, worker, url, len(rows), bad, merchant_id)
    result["c"] = len(rows) / result["c_seconds"]
    stop_profile(profile)
    print(f"{result['c']:,.0f} customers/s")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-copy", action="store_true", help="only (b) and (c): for the 1M-row run")
    parser.add_argument("--skip-reimport", action="store_true", help="no (c): for the 1M-row run")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
