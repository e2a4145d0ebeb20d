"""List phase of the read benchmark: 50-item pages of `GET /core/v1/customers` against a bare handler,
and full walks of every filter while customers are updated concurrently (no duplicates, no gaps).

    .venv/bin/python -m bench.reads_list [--customers 100000] [--others 10] [--duration 10]
                                         [--concurrency 8] [--walk]

Setup: `--customers` scored and tagged customers of one merchant and as many again spread over
`--others` merchants, in PostgreSQL (lists are served from there), thresholds for the merchant, one
worker (security layer off: the list path alone) and the bare aiohttp server of bench/bare_servers.py.
(l0) the bare handler, (l1) plain pages walked by cursor, (l2) `segment=loyal`, (l3) `tag=vip`,
(l4) `recency_max=30&monetary_min=500`: `--concurrency` clients each walk pages of 50 for
`--duration` seconds (restarting at the end), latency measured per request by the client.
With `--walk`, every filter is then walked to its end while a writer updates scores in batches the
way the sink does: plain and tag walks must return exactly the merchant's matching ids, each once;
RFM-based walks must hold no duplicate and every customer that matched before and after the walk.
The 1,000,000-customer acceptance run: `--customers 1000000 --others 10 --walk` (outside CI). Its
load takes ~20 minutes here: `--database core_bench_1m --keep` keeps the loaded database, and a later
run with the same `--database` measures again without loading (`--keep` off drops it at the end).
`--phases l3,l4` runs only those page phases (after l0), e.g. to measure them first at a quiet moment.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path
from statistics import quantiles

import aiohttp
import psycopg2
import psycopg2.extras

from bench.common import Worker, drop_database, free_port, start_tansu, wait_http_ok, worker_env
from core_app import db
from core_app.domain.segments import segment_of
from core_app.migrate import migrate
from core_app.schema_registry.run import start_registry
from core_app.settings import Settings
from core_app.sink_sql import CUSTOMERS

THRESHOLDS = {
    "recency": {"min": 7, "max": 60},
    "frequency": {"min": 2, "max": 10},
    "monetary": {"min": 50, "max": 1000},
}
FILTERS = {
    "l1 plain": {},
    "l2 segment=loyal": {"segment": "loyal"},
    "l3 tag=vip": {"tag": "vip"},
    "l4 recency<=30,monetary>=500": {"recency_max": "30", "monetary_min": "500"},
}


def connect(settings: Settings) -> psycopg2.extensions.connection:
    conn = psycopg2.connect(settings.db_dsn, options=db.connection_options(settings))
    conn.autocommit = True
    return conn


def random_score(rng: random.Random) -> dict[str, int]:
    return {"recency": rng.randint(0, 120), "frequency": rng.randint(0, 15), "monetary": rng.randint(0, 2000)}


def load(settings: Settings, merchant: str, count: int, others: int) -> None:
    rng = random.Random(1)
    with connect(settings) as conn, conn.cursor() as cur:
        merchants = [(merchant, count)] + [
            (str(uuid.uuid4()), max(1, count // max(others, 1))) for _ in range(others)
        ]
        for mid, n in merchants:
            cur.execute("INSERT INTO merchants (id, shop_domain) VALUES (%s, %s)", (mid, mid))
            for start in range(0, n, 10_000):
                rows = []
                for _ in range(min(10_000, n - start)):
                    cid = str(uuid.uuid4())
                    tags = {"tags": ["vip"]} if rng.random() < 0.1 else {}
                    rows.append(
                        (cid, mid, f"{cid}@bench.example", json.dumps(random_score(rng)), json.dumps(tags))
                    )
                psycopg2.extras.execute_values(
                    cur,
                    "INSERT INTO customers (id, merchant_id, email, rfm_score, metadata) VALUES %s",
                    rows,
                    page_size=10_000,
                )
        cur.execute(
            "INSERT INTO program_settings (merchant_id, rfm_thresholds) VALUES (%s, %s)",
            (merchant, json.dumps(THRESHOLDS)),
        )
        cur.execute("ANALYZE customers")


async def pages(
    http: aiohttp.ClientSession, url: str, params: dict[str, str], until: float, latencies: list[float]
) -> None:
    cursor = None
    while time.monotonic() < until:
        query = params | ({"cursor": cursor} if cursor else {})
        started = time.perf_counter()
        async with http.get(url, params=query) as response:
            body = await response.read()
            if response.status != 200:
                raise SystemExit(f"{url} answered {response.status}: {body[:200]!r}")
        latencies.append(time.perf_counter() - started)
        cursor = json.loads(body).get("next_cursor") if body.startswith(b'{"customers"') else None


async def phase(name: str, url: str, params: dict[str, str], args: argparse.Namespace) -> dict[str, float]:
    latencies: list[float] = []
    async with aiohttp.ClientSession() as http:
        until = time.monotonic() + args.duration
        await asyncio.gather(*(pages(http, url, params, until, latencies) for _ in range(args.concurrency)))
    cuts = quantiles(latencies, n=100)
    report = {
        "requests": len(latencies),
        "rps": len(latencies) / args.duration,
        "p50_ms": cuts[49] * 1000,
        "p99_ms": cuts[98] * 1000,
    }
    print(
        f"{name:32} {report['requests']:7} req  {report['rps']:8.0f}/s"
        f"  p50 {report['p50_ms']:6.1f} ms  p99 {report['p99_ms']:6.1f} ms",
        flush=True,
    )
    return report


def matching(settings: Settings, merchant: str, name: str) -> set[str]:
    with connect(settings) as conn, conn.cursor() as cur:
        cur.execute("SELECT id::text, rfm_score, metadata FROM customers WHERE merchant_id = %s", (merchant,))
        rows = cur.fetchall()
    test = {
        "l1 plain": lambda r, m: True,
        "l2 segment=loyal": lambda r, m: segment_of(r, THRESHOLDS) == "loyal",
        "l3 tag=vip": lambda r, m: "vip" in m.get("tags", []),
        "l4 recency<=30,monetary>=500": lambda r, m: r["recency"] <= 30 and r["monetary"] >= 500,
    }[name]
    return {cid for cid, r, m in rows if test(r, m)}


def writer(settings: Settings, merchant: str, stop: list[bool]) -> int:
    """Sink-style batch upserts of new scores (version + 1) until told to stop; returns rows written."""
    rng = random.Random(2)
    written = 0
    with connect(settings) as conn, conn.cursor() as cur:
        while not stop:
            cur.execute(
                "SELECT id::text, version, metadata FROM customers WHERE merchant_id = %s"
                " ORDER BY random() LIMIT 200",
                (merchant,),
            )
            batch = [
                {
                    "customer_id": cid,
                    "merchant_id": merchant,
                    "rfm_score": random_score(rng),
                    "metadata": metadata,  # kept: only scores change
                    "version": v + 1,
                }
                for cid, v, metadata in cur.fetchall()
            ]
            cur.execute(CUSTOMERS.sql, (json.dumps(batch),))
            written += len(batch)
    return written


async def walk(url: str, params: dict[str, str]) -> list[str]:
    ids: list[str] = []
    cursor = None
    async with aiohttp.ClientSession() as http:
        while True:
            query = params | {"limit": "250", "fields": "id"} | ({"cursor": cursor} if cursor else {})
            async with http.get(url, params=query) as response:
                page = await response.json()
            ids.extend(item["id"] for item in page["customers"])
            cursor = page["next_cursor"]
            if cursor is None:
                return ids


async def walks(settings: Settings, url: str, merchant: str) -> bool:
    ok = True
    for name, params in FILTERS.items():
        before = matching(settings, merchant, name)
        stop: list[bool] = []
        writing = asyncio.get_running_loop().run_in_executor(None, writer, settings, merchant, stop)
        ids = await walk(url, {"merchant_id": merchant} | params)
        stop.append(True)
        written = await writing
        after = matching(settings, merchant, name)
        duplicates = len(ids) - len(set(ids))
        stable = before & after
        missing = len(stable - set(ids))
        exact = name in ("l1 plain", "l3 tag=vip")  # score updates cannot change these matches
        good = duplicates == 0 and missing == 0 and (not exact or set(ids) == before == after)
        ok &= good
        print(
            f"walk {name:30} {len(ids):8} ids, {duplicates} duplicates,"
            f" {missing} of {len(stable)} stable matches missing,"
            f" {written} rows updated meanwhile: {'ok' if good else 'FAILED'}",
            flush=True,
        )
    return ok


def loaded_merchant(settings: Settings) -> tuple[str, int] | None:
    """The merchant with the most customers of a database an earlier run loaded (and kept), if any."""
    with connect(settings) as conn, conn.cursor() as cur:
        cur.execute("SELECT merchant_id::text, count(*) FROM customers GROUP BY 1 ORDER BY 2 DESC LIMIT 1")
        found = cur.fetchone()
    return (found[0], int(found[1])) if found else None


def prepare(args: argparse.Namespace, settings: Settings) -> str:
    """The merchant to measure: the loaded one of `--database`, or a new one loaded now."""
    migrate(settings)
    found = loaded_merchant(settings) if args.database else None
    if found is not None:
        print(f"setup: reusing {found[1]:,} customers of one merchant in {settings.core_db_name}", flush=True)
        return found[0]
    merchant = str(uuid.uuid4())
    started = time.perf_counter()
    load(settings, merchant, args.customers, args.others)
    print(
        f"setup: {args.customers:,} customers of one merchant and {args.others} others"
        f" in {time.perf_counter() - started:.0f} s",
        flush=True,
    )
    return merchant


async def run(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="core-bench-list-"))
    settings = Settings(
        core_db_name=args.database or f"core_bench_{uuid.uuid4().hex[:6]}",
        redis_key_prefix=f"bench:{uuid.uuid4().hex[:6]}:",
    )
    try:
        return await measure(args, settings, prepare(args, settings), workdir)
    finally:
        if not args.keep:
            drop_database(settings)


async def measure(args: argparse.Namespace, settings: Settings, merchant: str, workdir: Path) -> int:
    tansu = start_tansu(workdir)
    registry_port = free_port()
    registry = await start_registry(settings, "127.0.0.1", registry_port)
    env = worker_env(
        settings,
        tansu.url,
        f"http://127.0.0.1:{registry_port}",
        workdir,
        "bench-list",
        4,
        AUTH_ENABLED="false",
    )
    worker = Worker.start(env, workdir / "worker.log")
    bare_http, bare_grpc = free_port(), free_port()
    bare = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.bare_servers",
        "--http-port", str(bare_http), "--grpc-port", str(bare_grpc),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert bare.stdout is not None
        await asyncio.wait_for(bare.stdout.readline(), 30)
        await wait_http_ok(f"{worker.url}/ready", timeout=180)
        url = f"{worker.url}/core/v1/customers"
        results = {
            "l0 bare aiohttp": await phase("l0 bare aiohttp", f"http://127.0.0.1:{bare_http}/bare", {}, args)
        }
        for name, params in FILTERS.items():
            if args.phases and name.split()[0] not in args.phases.split(","):
                continue
            results[name] = await phase(name, url, {"merchant_id": merchant, "limit": "50"} | params, args)
        worst = max(r["p99_ms"] for n, r in results.items() if not n.startswith("l0"))
        print(
            f"p99 of a 50-item page, worst filter: {worst:.1f} ms (target < 50 ms):"
            f" {'met' if worst < 50 else 'NOT met'}"
        )
        ok = await walks(settings, url, merchant) if args.walk else True
        return 0 if ok else 1
    finally:
        worker.stop()
        bare.terminate()
        await bare.wait()
        await registry.cleanup()
        tansu.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--others", type=int, default=10, help="other merchants, customers/others each")
    parser.add_argument("--duration", type=int, default=10, help="seconds per phase")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--walk", action="store_true", help="then walk every filter under concurrent updates")
    parser.add_argument("--phases", help="only these page phases, e.g. l3,l4 (l0 always runs); default: all")
    parser.add_argument(
        "--database", help="use this database; if an earlier --keep run loaded it, reuse its customers"
    )
    parser.add_argument("--keep", action="store_true", help="keep the database (default: drop it at the end)")
    sys.exit(asyncio.run(run(parser.parse_args())))


if __name__ == "__main__":
    main()
