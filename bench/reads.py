"""Read benchmark: REST and gRPC reads of one worker against bare handlers, in one run.

    .venv/bin/python -m bench.reads [--customers 10000] [--duration 10] [--concurrency 64] [--rounds 5]
                                    [--fallback-customers 40000] [--grpc-clients 1] [--secure]

Every phase runs `--concurrency` clients for `--duration` seconds from a separate process: wrk
(`bench/reads.lua`, ids varying per request) for HTTP, `bench/grpc_load.py` (grpclib) for gRPC.
(a) a bare aiohttp handler returning a constant;  (b) a bare grpclib unary handler returning a
    constant (`bench/bare_servers.py`, its own process, up for the whole run);
(c) REST `GET /core/v1/customers` and (d) gRPC `GetCustomerRFM` answered from the worker's table:
    `--customers` customers inserted into PostgreSQL, then one `rfm.updated` event each;
(c2) the GraphQL `getCustomer` query (POST /graphql, `bench/reads.lua` given the merchant) from the table, in
    rounds with (a) again;
Each comparison with a bare handler runs as `--rounds` rounds of its phases back to back ((a) then
(c), five times by default; (b) then (d), likewise); each round gives a ratio and the verdict takes the
median: this host's speed drifts by tens of percent within minutes, so phases minutes apart are
not comparable.
(e) the same, answered from Redis: customers of a second merchant that no event touched (never in
    the table), whose Redis entries a first read filled;
(f) the PostgreSQL fallback: more never-loaded customers of that merchant, Redis empty for them,
    each read once (the load generators never repeat an id before the list is exhausted, and the
    phase checks the sources on /metrics): every read misses the table and Redis, reads PostgreSQL
    and writes the answer to Redis.
With `--secure`, the same worker is then restarted with the security layer on (AUTH_ENABLED=true,
the merchant's IP allow-list set to the load generator's address and another, rate limiting on with
RATE_LIMIT_PER_SECOND raised so that nothing is refused: the admission script still runs on every
request) and, in rounds with (a) and (b) again, two more phases run against the table:
(g) REST `GET /core/v1/customers` signed with an API key (X-Api-Key, X-Timestamp, X-Nonce,
    X-Signature): wrk's Lua has no HMAC and a nonce is good once, so the requests are signed in
    Python just before the phase, more than it can send, and `bench/signed_reads.lua` replays each
    exactly once; (a') the bare aiohttp handler under the same signed requests (headers ignored)
    shows what the longer requests cost wrk;
(h) gRPC `GetCustomerRFM` with a JWT in `authorization` metadata.
Both fail unless every response was a 2xx / OK, `core_auth_refused_total` did not move and the
merchant's rate-limit window in Redis holds the phase's admissions.
`BENCH_PROFILE_DIR=DIR` has py-spy sample the server through each phase into DIR/<phase>-<round>.txt
(folded stacks; `pip install py-spy`).
The worker runs with Faust's default fetch wait (1500 ms, as deployed), not the tests' 100 ms.
Ratios are printed last. Needs wrk (`apt-get install wrk`), the local PostgreSQL and Redis; starts
its own Tansu, registry and worker.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid
from array import array
from asyncio.subprocess import PIPE
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from statistics import median

import aiohttp
import psycopg2
import psycopg2.extras
import redis.asyncio as aioredis

from bench.common import Worker, drop_database, free_port, metric, start_tansu, wait_http_ok
from bench.ingest import insert_customers, produce_rfm, rows_at_version, worker_env
from bench.reads_graphql import check_one_answer, wrk_arguments
from core_app import db
from core_app.events.codec import EventCodec
from core_app.migrate import migrate
from core_app.schema_registry.run import start_registry
from core_app.security.cli import change_allowlist, create_api_key, mint_token
from core_app.security.gate import rate_key
from core_app.security.principal import VIEW
from core_app.security.signing import sign
from core_app.settings import Settings
from core_app.topics import ensure_topics

BENCH = Path(__file__).resolve().parent
LUA = BENCH / "reads.lua"
SIGNED_LUA = BENCH / "signed_reads.lua"
WARMUP_SECONDS = 2
REDIS_CUSTOMERS = 2_000  # (e) cycles over these; they stay cached, so repeats are fine


def section(title: str) -> None:
    print(f"\n== {title}", flush=True)


def insert_scored_customers(settings: Settings, merchant_id: str, count: int) -> list[str]:
    """Customers in PostgreSQL only, with an RFM score, so GetCustomerRFM answers without an event."""
    ids = [str(uuid.uuid4()) for _ in range(count)]
    conn = psycopg2.connect(settings.db_dsn, options=db.connection_options(settings))
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("INSERT INTO merchants (id, shop_domain) VALUES (%s, %s)", (merchant_id, merchant_id))
        for start in range(0, count, 10_000):
            rows = [
                (
                    cid,
                    merchant_id,
                    f"{cid}@bench.example",
                    json.dumps({"recency": 1, "frequency": 2, "monetary": n}),
                )
                for n, cid in enumerate(ids[start : start + 10_000], start)
            ]
            psycopg2.extras.execute_values(
                cur,
                "INSERT INTO customers (id, merchant_id, email, rfm_score) VALUES %s",
                rows,
                page_size=10_000,
            )
    conn.close()
    return ids


def write_ids(path: Path, ids: list[str]) -> Path:
    path.write_text("\n".join(ids) + "\n")
    return path


async def run_wrk(
    args: argparse.Namespace,
    url: str,
    prefix: str,
    ids_file: Path,
    seconds: int,
    *,
    script: Path = LUA,
    script_args: tuple[str, ...] | None = None,
) -> dict:
    threads = args.wrk_threads
    extra = script_args if script_args is not None else (str(ids_file), prefix, str(threads))
    process = await asyncio.create_subprocess_exec(
        "wrk", f"-t{threads}", f"-c{args.concurrency}", f"-d{seconds}s", "--timeout", "10s",
        "-s", str(script), url, "--", *extra, stdout=PIPE, stderr=PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    lines = [line for line in out.decode().splitlines() if line.startswith("{")]
    if process.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed: {out.decode()[-2000:]} {err.decode()[-2000:]}")
    return json.loads(lines[-1])


async def run_grpc_load(
    args: argparse.Namespace,
    port: int,
    merchant_id: str,
    ids: list[str],
    workdir: Path,
    seconds: float,
    authorization: str | None = None,
) -> dict:
    """`--grpc-clients` load processes sharing `--concurrency` calls in flight and the ids."""
    clients = args.grpc_clients
    processes = []
    for n in range(clients):
        ids_file = write_ids(workdir / f"grpc-ids-{n}.txt", ids[n::clients])
        argv = ["--port", str(port), "--merchant-id", merchant_id, "--ids", str(ids_file)]
        argv += ["--concurrency", str(args.concurrency // clients), "--duration", str(seconds)]
        argv += ["--latencies-out", str(workdir / f"grpc-lat-{n}.bin")]
        if authorization:
            argv += ["--authorization", authorization]
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.grpc_load", *argv, stdout=PIPE, stderr=PIPE
        )
        processes.append(process)
    reports = []
    for process in processes:
        out, err = await process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"grpc_load failed: {err.decode()[-2000:]}")
        reports.append(json.loads(out.decode().splitlines()[-1]))
    latencies = array("d")
    for n in range(clients):
        path = workdir / f"grpc-lat-{n}.bin"
        latencies.frombytes(path.read_bytes())
    ordered = sorted(latencies)

    def pct(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))] * 1000 if ordered else 0.0

    return {
        "requests": sum(r["requests"] for r in reports),
        "seconds": max(r["seconds"] for r in reports),
        "errors": sum(r["errors"] for r in reports),
        "non_2xx": 0,
        "p50_ms": pct(50),
        "p99_ms": pct(99),
        "wrapped": sum(r["wrapped"] for r in reports),
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (/proc/PID/stat utime, stime)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measured(server_pid: int, load: Awaitable[dict], label: str = "phase") -> dict:
    """Run `load` and add the server's CPU per request: unlike req/s, it barely moves when other
    processes compete for the cores. With BENCH_PROFILE_DIR set, py-spy samples the server meanwhile
    (`profile_of`)."""
    before = cpu_seconds(server_pid)
    profiler = await profile_of(server_pid, label)
    report = await load
    if profiler is not None:  # py-spy writes its profile when interrupted
        profiler.send_signal(signal.SIGINT)
        await profiler.wait()
    report["cpu_us"] = (cpu_seconds(server_pid) - before) * 1e6 / max(1, report["requests"])
    report["load"] = os.getloadavg()[0]
    return report


PROFILED: dict[str, int] = {}


async def profile_of(pid: int, label: str) -> asyncio.subprocess.Process | None:
    """py-spy's folded stacks of `pid` until the phase ends (`measured` interrupts it), as
    BENCH_PROFILE_DIR/<label>-N.txt (`py-spy` from the venv: `pip install py-spy`; needs ptrace rights)."""
    directory = os.environ.get("BENCH_PROFILE_DIR")
    if not directory:
        return None
    PROFILED[label] = PROFILED.get(label, 0) + 1
    target = Path(directory) / f"{label}-{PROFILED[label]}.txt"
    target.parent.mkdir(parents=True, exist_ok=True)
    binary = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    argv = [binary, "record", "-p", str(pid), "-r", "250", "-f", "raw", "-o", str(target)]
    print(f"   profiling {label} into {target}", flush=True)
    return await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.DEVNULL, stderr=PIPE)


def show(name: str, report: dict) -> dict:
    report["rate"] = report["requests"] / report["seconds"]
    bad = report["errors"] + report["non_2xx"]
    print(
        f"{name}: {report['rate']:,.0f} req/s  p50 {report['p50_ms']:.2f} ms  p99 {report['p99_ms']:.2f} ms"
        f"  server CPU {report['cpu_us']:.0f} us/req  ({report['requests']:,} requests"
        f"{f', {bad:,} failed' if bad else ''}; load average {report['load']:.1f})",
        flush=True,
    )
    if bad:
        raise RuntimeError(f"{name}: {bad} failed requests")
    return report


async def read_sources(worker: Worker, name: str) -> dict[str, float]:
    return {
        source: await metric(worker, name, source=source)
        for source in ("table", "owner", "redis", "postgres")
    }


async def sources_during(worker: Worker, name: str, before: dict[str, float]) -> dict[str, int]:
    after = await read_sources(worker, name)
    return {
        source: int(after[source] - before[source]) for source in after if after[source] != before[source]
    }


async def prewarm_redis(worker: Worker, merchant_id: str, ids: list[str]) -> None:
    """One REST read per id (each answered by PostgreSQL and cached in Redis)."""
    limit = asyncio.Semaphore(32)
    async with aiohttp.ClientSession() as http:

        async def read(customer_id: str) -> None:
            params = {"merchant_id": merchant_id, "customer_id": customer_id}
            async with limit, http.get(f"{worker.url}/core/v1/customers", params=params) as response:
                assert response.status == 200, await response.text()

        await asyncio.gather(*(read(customer_id) for customer_id in ids))


async def drop_redis_keys(settings: Settings) -> None:
    client = aioredis.Redis.from_url(settings.redis_dsn)
    try:
        batch = []
        async for key in client.scan_iter(match=f"{settings.redis_key_prefix}*", count=5000):
            batch.append(key)
            if len(batch) >= 5000:
                await client.unlink(*batch)
                batch.clear()
        if batch:
            await client.unlink(*batch)
    finally:
        await client.aclose()


Load = Callable[[], Awaitable[dict]]
Results = dict[str, list[dict]]


async def alternate(args: argparse.Namespace, phases: list[tuple[str, Load]], results: Results) -> None:
    """Each phase once per round, `--rounds` times, in order. This host's speed drifts by tens of
    percent within minutes (the same bare server gave 11k and 23k req/s in consecutive runs), so each
    ratio compares phases run seconds apart, and the verdict takes the median round."""
    for n in range(1, args.rounds + 1):
        for name, load in phases:
            results.setdefault(name, []).append(show(f"{name} [{n}/{args.rounds}]", await load()))


@dataclass(frozen=True)
class Bare:
    pid: int
    url: str
    grpc_port: int


def bare_rest(args: argparse.Namespace, bare: Bare, merchant_id: str, ids_file: Path) -> Load:
    prefix = f"/bare?merchant_id={merchant_id}&customer_id="
    return lambda: measured(bare.pid, run_wrk(args, bare.url, prefix, ids_file, args.duration))


def bare_grpc(args: argparse.Namespace, bare: Bare, merchant_id: str, ids: list[str], workdir: Path) -> Load:
    load = run_grpc_load
    return lambda: measured(bare.pid, load(args, bare.grpc_port, merchant_id, ids, workdir, args.duration))


async def measure_worker(
    args: argparse.Namespace,
    worker: Worker,
    bare: Bare,
    workdir: Path,
    results: Results,
    table: tuple[str, list[str]],
    fallback: tuple[str, list[str]],
) -> None:
    table_merchant, table_ids = table
    cold_merchant, cold_ids = fallback
    rest_prefix = "/core/v1/customers?merchant_id={m}&customer_id="
    redis_ids, rest_cold, grpc_cold = (
        cold_ids[:REDIS_CUSTOMERS],
        cold_ids[REDIS_CUSTOMERS::2],
        cold_ids[REDIS_CUSTOMERS + 1 :: 2],
    )

    def rest(name: str, merchant_id: str, ids: list[str], expect: str, graphql: bool = False) -> Load:
        """GET /core/v1/customers per id, or with `graphql` the getCustomer query POSTed to /graphql."""
        ids_file = write_ids(workdir / f"{name}.txt", ids)
        prefix = "" if graphql else rest_prefix.format(m=merchant_id)
        extra = wrk_arguments(ids_file, merchant_id, args.wrk_threads) if graphql else None

        async def load() -> dict:
            before = await read_sources(worker, "core_customer_reads_total")
            calls = run_wrk(args, worker.url, prefix, ids_file, args.duration, script_args=extra)
            report = await measured(worker.process.pid, calls, name)
            sources = await sources_during(worker, "core_customer_reads_total", before)
            check_sources(name, sources, expect)
            if graphql and sources.get(expect, 0) < report["requests"]:  # a GraphQL error is a 200
                raise RuntimeError(f"{name}: {report['requests']:,} answers, reads {sources}")
            return report

        return load

    def grpc(name: str, merchant_id: str, ids: list[str], expect: str) -> Load:
        async def load() -> dict:
            before = await read_sources(worker, "core_rfm_reads_total")
            calls = run_grpc_load(args, worker.grpc_port, merchant_id, ids, workdir, args.duration)
            report = await measured(worker.process.pid, calls, name)
            check_sources(name, await sources_during(worker, "core_rfm_reads_total", before), expect)
            return report

        return load

    bare_ids = write_ids(workdir / "bare.txt", table_ids)
    warm = f"/core/v1/customers?merchant_id={table_merchant}&customer_id="
    section("(a) bare aiohttp handler, constant body, and (c) REST GET /core/v1/customers, from the table")
    await run_wrk(
        args, bare.url, f"/bare?merchant_id={table_merchant}&customer_id=", bare_ids, WARMUP_SECONDS
    )
    await run_wrk(args, worker.url, warm, bare_ids, WARMUP_SECONDS)
    rest_table = rest("rest_table", table_merchant, table_ids, "table")
    await alternate(
        args,
        [("rest_bare", bare_rest(args, bare, table_merchant, bare_ids)), ("rest_table", rest_table)],
        results,
    )
    section("(a) bare aiohttp handler and (c2) GraphQL getCustomer (POST /graphql), from the table")
    await check_one_answer(worker, table_merchant, table_ids[0])
    graphql_table = rest("graphql_table", table_merchant, table_ids, "table", graphql=True)
    bare_again = bare_rest(args, bare, table_merchant, bare_ids)
    await alternate(args, [("graphql_bare", bare_again), ("graphql_table", graphql_table)], results)
    section("(b) bare grpclib unary handler, constant reply, and (d) gRPC GetCustomerRFM, from the table")
    await run_grpc_load(args, bare.grpc_port, table_merchant, table_ids, workdir, WARMUP_SECONDS)
    await run_grpc_load(args, worker.grpc_port, table_merchant, table_ids, workdir, WARMUP_SECONDS)
    grpc_bare = bare_grpc(args, bare, table_merchant, table_ids, workdir)
    grpc_table = grpc("grpc_table", table_merchant, table_ids, "table")
    await alternate(args, [("grpc_bare", grpc_bare), ("grpc_table", grpc_table)], results)

    section(f"(e) from Redis: {len(redis_ids):,} never-loaded customers, cached by one read each")
    await prewarm_redis(worker, cold_merchant, redis_ids)
    once = argparse.Namespace(**{**vars(args), "rounds": 1})
    await alternate(once, [("rest_redis", rest("rest_redis", cold_merchant, redis_ids, "redis"))], results)
    await alternate(once, [("grpc_redis", grpc("grpc_redis", cold_merchant, redis_ids, "redis"))], results)

    section(f"(f) PostgreSQL fallback: {len(rest_cold):,} + {len(grpc_cold):,} never-read customers")
    postgres = [
        ("rest_postgres", rest("rest_postgres", cold_merchant, rest_cold, "postgres")),
        ("grpc_postgres", grpc("grpc_postgres", cold_merchant, grpc_cold, "postgres")),
    ]
    await alternate(once, postgres, results)


@dataclass(frozen=True)
class Credentials:
    key_id: str
    secret: str
    token: str


SECURE_RATE_LIMIT = 1_000_000_000  # per merchant per endpoint per second: admission runs, never refuses
OTHER_ALLOWED_IP = "192.0.2.10"  # TEST-NET-1: the allow-list has more than the load generator's address


def create_credentials(settings: Settings, merchant_id: str) -> Credentials:
    """What an operator would run: `core apikey create`, `core token mint`, `core allowlist add`."""
    key_id, secret = create_api_key(settings, merchant_id, [VIEW], "bench", "bench/reads.py --secure")
    token = mint_token(settings, merchant_id, [VIEW], subject="bench", ttl=3600)
    members = change_allowlist(settings, merchant_id, "add", ["127.0.0.1", OTHER_ALLOWED_IP], "bench")
    print(f"API key {key_id} (view), JWT (view), IP allow-list {sorted(members)}", flush=True)
    return Credentials(key_id, secret, token)


def write_signed(
    workdir: Path, name: str, creds: Credentials, prefix: str, ids: list[str], count: int, threads: int
) -> Path:
    """`count` signed GETs of `prefix + id` (cycling over ids), each with its own nonce, dealt round
    robin to one file per wrk thread (`<name>.1` .. `<name>.T`); the timestamp is now."""
    started = time.perf_counter()
    stamp = str(int(time.time()))
    tag = os.urandom(6).hex()
    base = workdir / name
    lines: list[list[str]] = [[] for _ in range(threads)]
    for i in range(count):
        path = prefix + ids[i % len(ids)]
        nonce = f"{tag}{i:012x}"
        signature = sign(creds.secret, "GET", path, stamp, nonce, b"")
        lines[i % threads].append(f"{path}\t{stamp}\t{nonce}\t{signature}\n")
    for k, chunk in enumerate(lines, 1):
        Path(f"{base}.{k}").write_text("".join(chunk))
    print(f"   signed {count:,} requests in {time.perf_counter() - started:.1f}s", flush=True)
    return base


def signed_count(rate: float, seconds: int) -> int:
    """More signed requests than a phase can send: twice the rate of the plain phase, plus slack (the
    host's speed drifts: one phase ran 1.6x as fast as the one before it)."""
    return int(rate * seconds * 2) + 20_000


async def run_signed_wrk(
    args: argparse.Namespace,
    url: str,
    prefix: str,
    ids: list[str],
    creds: Credentials,
    workdir: Path,
    seconds: int,
    expected_rate: float,
) -> dict:
    base = write_signed(
        workdir, "signed", creds, prefix, ids, signed_count(expected_rate, seconds), args.wrk_threads
    )
    report = await run_wrk(
        args, url, prefix, base, seconds, script=SIGNED_LUA, script_args=(str(base), creds.key_id)
    )
    if report["wrapped"]:
        raise RuntimeError(f"wrk ran out of signed requests ({report['wrapped']:,} unsigned sent)")
    return report


async def redis_server_pid(settings: Settings) -> int | None:
    """The Redis server's pid when it runs on this machine (its CPU per admitted request)."""
    client = aioredis.Redis.from_url(settings.redis_dsn)
    try:
        pid = int((await client.info("server"))["process_id"])
    finally:
        await client.aclose()
    return pid if Path(f"/proc/{pid}/stat").exists() else None


async def security_counters(worker: Worker) -> dict[str, float]:
    return {
        name: await metric(worker, name)
        for name in ("core_auth_refused_total", "core_security_redis_unavailable_total")
    }


async def admission_entries(settings: Settings, merchant_id: str) -> dict[str, int]:
    """Entries of the merchant's rate-limit windows in Redis (proof the admission script ran)."""
    client = aioredis.Redis.from_url(settings.redis_dsn)
    try:
        found = {}
        head = settings.redis_key_prefix + rate_key(merchant_id, "")  # the gate's key, hash tag and all
        async for key in client.scan_iter(match=f"{head}*"):
            found[key.decode().removeprefix(head)] = int(await client.zcard(key))
        return found
    finally:
        await client.aclose()


async def wait_secure_table(worker: Worker, creds: Credentials, merchant_id: str, ids: list[str]) -> None:
    """Until a signed read of a table customer is answered from the table (recovery done)."""
    deadline = time.monotonic() + 180
    async with aiohttp.ClientSession() as http:
        while True:
            path = f"/core/v1/customers?merchant_id={merchant_id}&customer_id={ids[0]}"
            nonce = os.urandom(12).hex()
            stamp = str(int(time.time()))
            headers = {
                "X-Api-Key": creds.key_id,
                "X-Timestamp": stamp,
                "X-Nonce": nonce,
                "X-Signature": sign(creds.secret, "GET", path, stamp, nonce, b""),
            }
            async with http.get(f"{worker.url}{path}", headers=headers) as response:
                body = await response.json()
                if response.status == 200 and body.get("source") == "table":
                    return
                if response.status in (401, 403, 429):
                    raise RuntimeError(f"secure worker refused the bench's credentials: {body}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"secure worker: table not ready ({response.status} {body})")
            await asyncio.sleep(0.5)


async def measure_secure(
    args: argparse.Namespace,
    settings: Settings,
    worker: Worker,
    bare: Bare,
    workdir: Path,
    results: Results,
    table: tuple[str, list[str]],
    creds: Credentials,
    rates: tuple[float, float],
) -> None:
    """`rates`: the plain phases' bare and table req/s, to sign enough requests for each phase."""
    bare_rate, plain_rate = rates
    merchant_id, ids = table
    prefix = f"/core/v1/customers?merchant_id={merchant_id}&customer_id="
    bare_prefix = f"/bare?merchant_id={merchant_id}&customer_id="
    redis_pid = await redis_server_pid(settings)

    def checked(name: str, load: Callable[[], Awaitable[dict]], reads_metric: str, endpoint: str) -> Load:
        async def run_checked() -> dict:
            counters = await security_counters(worker)
            before = await read_sources(worker, reads_metric)
            redis_before = cpu_seconds(redis_pid) if redis_pid else 0.0
            report = await measured(worker.process.pid, load())
            if redis_pid:
                redis_us = (cpu_seconds(redis_pid) - redis_before) * 1e6 / max(1, report["requests"])
                print(f"   Redis server CPU {redis_us:.0f} us/req (a shared Redis: other clients count too)")
            check_sources(name, await sources_during(worker, reads_metric, before), "table")
            after = await security_counters(worker)
            moved = {k: after[k] - v for k, v in counters.items() if after[k] != v}
            if moved:
                raise RuntimeError(f"{name}: the security layer refused or skipped requests: {moved}")
            entries = (await admission_entries(settings, merchant_id)).get(endpoint, 0)
            print(f"   rate-limit window {endpoint} in Redis: {entries:,} entries (the last second)")
            if not entries:
                raise RuntimeError(f"{name}: the admission script did not count the requests")
            return report

        return run_checked

    def signed(url: str, path_prefix: str, rate: float) -> Callable[[], Awaitable[dict]]:
        return lambda: run_signed_wrk(args, url, path_prefix, ids, creds, workdir, args.duration, rate)

    section(
        "(a) bare aiohttp handler, (a') the same with the signed requests of (g) (headers ignored),"
        " (g) REST GET /core/v1/customers, from the table, API key + HMAC signature"
    )
    await run_signed_wrk(args, worker.url, prefix, ids, creds, workdir, WARMUP_SECONDS, plain_rate)
    bare_ids = write_ids(workdir / "bare.txt", ids)
    phases = [
        ("rest_bare", bare_rest(args, bare, merchant_id, bare_ids)),
        ("rest_bare_signed", lambda: measured(bare.pid, signed(bare.url, bare_prefix, bare_rate)())),
        (
            "rest_secure",
            checked(
                "rest_secure",
                signed(worker.url, prefix, plain_rate),
                "core_customer_reads_total",
                "GET:/core/v1/customers",
            ),
        ),
    ]
    await alternate(args, phases, results)

    section("(b) bare grpclib handler, (h) gRPC GetCustomerRFM, from the table, JWT in `authorization`")
    bearer = f"Bearer {creds.token}"
    await run_grpc_load(args, worker.grpc_port, merchant_id, ids, workdir, WARMUP_SECONDS, bearer)

    def secure_calls() -> Awaitable[dict]:
        return run_grpc_load(args, worker.grpc_port, merchant_id, ids, workdir, args.duration, bearer)

    phases = [
        ("grpc_bare", bare_grpc(args, bare, merchant_id, ids, workdir)),
        (
            "grpc_secure",
            checked(
                "grpc_secure",
                secure_calls,
                "core_rfm_reads_total",
                "grpc:/core.v1.CoreService/GetCustomerRFM",
            ),
        ),
    ]
    await alternate(args, phases, results)


def check_sources(name: str, sources: dict[str, int], expect: str) -> None:
    others = {k: v for k, v in sources.items() if k != expect}
    print(f"   answered by: {', '.join(f'{k} {v:,}' for k, v in sources.items())}", flush=True)
    if others:
        print(f"   WARNING: {name} expected only {expect}; raise --fallback-customers if ids wrapped")


async def run(args: argparse.Namespace) -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("bench/reads.py needs wrk: apt-get install -y wrk")
    workdir = Path(tempfile.mkdtemp(prefix="core-bench-reads-"))
    settings = Settings(
        core_db_name=f"core_bench_{uuid.uuid4().hex[:6]}", redis_key_prefix=f"bench:{uuid.uuid4().hex[:6]}:"
    )
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} cores)")
    migrate(settings)
    tansu = start_tansu(workdir)
    registry_port = free_port()
    registry = await start_registry(settings, "127.0.0.1", registry_port)
    registry_url = f"http://127.0.0.1:{registry_port}"
    await ensure_topics(settings.model_copy(update={"kafka_broker": tansu.url, "kafka_topic_partitions": 12}))
    codec = EventCodec(registry_url, settings.avro_dir)
    await codec.register_all()
    results: Results = {}
    secure: Results = {}  # --secure: the bare servers measured again, beside the secure worker
    bare = None
    try:
        table_merchant, cold_merchant = str(uuid.uuid4()), str(uuid.uuid4())
        cold_count = REDIS_CUSTOMERS + 2 * args.fallback_customers
        section(
            f"setup: {args.customers:,} customers loaded into the table, {cold_count:,} in PostgreSQL only"
        )
        started = time.perf_counter()
        table_ids = insert_customers(settings, table_merchant, args.customers)
        cold_ids = insert_scored_customers(settings, cold_merchant, cold_count)
        await produce_rfm(tansu.bootstrap, codec, table_merchant, table_ids, 1)
        print(f"inserted and produced in {time.perf_counter() - started:.1f}s", flush=True)
        creds = create_credentials(settings, table_merchant) if args.secure else None

        bare_http, bare_grpc = free_port(), free_port()
        bare = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.bare_servers",
            "--http-port", str(bare_http), "--grpc-port", str(bare_grpc),
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert bare.stdout is not None
        await asyncio.wait_for(bare.stdout.readline(), 30)

        env = worker_env(settings, tansu.url, registry_url, workdir, "bench-reads")
        env["AUTH_ENABLED"] = "false"  # phases (c)-(f): the read path alone
        # Faust's default fetch wait, as deployed. The tests' Tansu tuning (100 ms) only speeds up
        # event hops, which these phases do not measure, and makes an idle worker poll 15x as often
        # (5.1% of a core idle, against 2.5%), CPU the reads would otherwise pay for.
        env["KAFKA_FETCH_MAX_WAIT_MS"] = "1500"
        worker = Worker.start(env, workdir / "worker.log")
        try:
            await wait_http_ok(f"{worker.url}/ready", timeout=180)
            print(f"worker pid {worker.process.pid}", flush=True)
            while await metric(worker, "core_events_processed_total") < args.customers:
                await asyncio.sleep(0.2)
            while rows_at_version(settings, table_merchant, 1) < args.customers:
                await asyncio.sleep(0.2)  # let the sink finish, so it does not compete with reads
            print(f"table loaded and persisted after {time.perf_counter() - started:.1f}s", flush=True)

            servers = Bare(bare.pid, f"http://127.0.0.1:{bare_http}", bare_grpc)
            await measure_worker(
                args,
                worker,
                servers,
                workdir,
                results,
                (table_merchant, table_ids),
                (cold_merchant, cold_ids),
            )
            if creds is not None:
                section("restart: the worker with the security layer on")
                worker.stop()
                secure_env = env | {
                    # A fresh data dir: the restarted worker recovers the table from its changelog
                    # (a restart is part of what this section measures, not a local-state reuse).
                    "DATA_DIR": str(workdir / "core-data-secure"),
                    "AUTH_ENABLED": "true",
                    "RATE_LIMIT_PER_SECOND": str(SECURE_RATE_LIMIT),
                }
                worker = Worker.start(secure_env, workdir / "worker-secure.log")
                try:
                    await wait_http_ok(f"{worker.url}/ready", timeout=180)
                except TimeoutError:
                    print(worker.log_tail(40), file=sys.stderr)
                    raise
                # Recovery from Tansu's changelog can miss a partition's last records: a new event
                # per customer (newer than the first) puts every one back in the table.
                await produce_rfm(tansu.bootstrap, codec, table_merchant, table_ids, 2)
                while rows_at_version(settings, table_merchant, 2) < args.customers:
                    await asyncio.sleep(0.2)
                await wait_secure_table(worker, creds, table_merchant, table_ids)
                print(f"worker pid {worker.process.pid}: AUTH_ENABLED=true, rate limit on", flush=True)
                rates = [median(r["rate"] for r in results[k]) for k in ("rest_bare", "rest_table")]
                await measure_secure(
                    args,
                    settings,
                    worker,
                    servers,
                    workdir,
                    secure,
                    (table_merchant, table_ids),
                    creds,
                    (rates[0], rates[1]),
                )
        finally:
            worker.stop()
    finally:
        if bare is not None:
            bare.terminate()
            await bare.wait()
        await registry.cleanup()
        tansu.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        await drop_redis_keys(settings)
        drop_database(settings)
    print(f"\nload average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print_ratios(results)
    if secure:
        print_secure_ratios(secure, results)


def paired(subject: list[dict], base: list[dict], field: str) -> list[float]:
    """subject / base of one field, round by round (each pair ran seconds apart)."""
    return [a[field] / b[field] for a, b in zip(subject, base, strict=True)]


def summary(values: list[float]) -> str:
    rounds = " ".join(f"{v:.2f}" for v in values)
    return f"{median(values):.2f}  (rounds: {rounds})" if len(values) > 1 else f"{values[0]:.2f}"


def verdict(value: float, target: float, at_least: bool) -> str:
    if (value >= target) if at_least else (value <= target):
        return "met"
    missed = (1 - value / target) if at_least else (value / target - 1)
    return f"MISSED by {missed * 100:.0f}%"


def print_ratios(results: Results) -> None:
    section(
        f"ratios (same run, {os.cpu_count()} cores shared by server and load generator;"
        " median of the rounds, each a pair of phases run back to back)"
    )
    for transport, bare in (("rest", "bare aiohttp"), ("grpc", "bare grpclib")):
        table, base = results[f"{transport}_table"], results[f"{transport}_bare"]
        label = transport.upper().ljust(4)
        rate = paired(table, base, "rate")
        met = verdict(median(rate), 0.5, True)
        print(f"{label} table req/s / {bare:<13} = {summary(rate)}  target >= 0.5: {met}")
        p99 = paired(table, base, "p99_ms")
        met = verdict(median(p99), 2, False)
        print(f"{label} table p99   / {bare + ' p99':<13} = {summary(p99)}  target <= 2.0: {met}")
        cpu = paired(table, base, "cpu_us")
        note = "(server CPU per request; 2.0 ~ half the rate)"
        print(f"{label} table CPU/req / {bare:<11} = {summary(cpu)}  {note}")
    if "graphql_table" in results:
        rate = paired(results["graphql_table"], results["graphql_bare"], "rate")
        met = verdict(median(rate), 0.5, True)
        print(f"GQL  table req/s / {'bare aiohttp':<13} = {summary(rate)}  target >= 0.5: {met}")
        p99 = paired(results["graphql_table"], results["graphql_bare"], "p99_ms")
        print(f"GQL  table p99   / {'bare aiohttp p99':<13} = {summary(p99)}")
    for transport in ("rest", "grpc"):
        table = median(r["rate"] for r in results[f"{transport}_table"])
        label = transport.upper().ljust(4)
        for tier in ("redis", "postgres"):
            ratio = results[f"{transport}_{tier}"][0]["rate"] / table
            print(f"{label} {tier + ' req/s':<14} / table          = {ratio:.2f}")


def print_secure_ratios(secure: Results, plain: Results) -> None:
    section("security layer on (AUTH_ENABLED=true, allow-list set, rate limit on, nothing refused)")
    for transport, bare in (("rest", "bare aiohttp"), ("grpc", "bare grpclib")):
        subject, base = secure[f"{transport}_secure"], secure[f"{transport}_bare"]
        label = transport.upper().ljust(4)
        rate = paired(subject, base, "rate")
        target = f"  target >= 0.35: {verdict(median(rate), 0.35, True)}" if transport == "rest" else ""
        print(f"{label} secure req/s / {bare:<13} = {summary(rate)}{target}")
        if transport == "rest":
            signed = paired(subject, secure["rest_bare_signed"], "rate")
            print(
                f"{label} secure req/s / {'bare, signed':<13} = {summary(signed)}  (same wrk script as (g))"
            )
        print(f"{label} secure p99   / {bare + ' p99':<13} = {summary(paired(subject, base, 'p99_ms'))}")
        plain_rate = median(r["rate"] for r in plain[f"{transport}_table"])
        plain_cpu = median(r["cpu_us"] for r in plain[f"{transport}_table"])
        secure_cpu = median(r["cpu_us"] for r in subject)
        print(f"{label} secure req/s / plain table   = {median(r['rate'] for r in subject) / plain_rate:.2f}")
        print(
            f"{label} secure CPU/req / plain        = {secure_cpu / plain_cpu:.2f}"
            f"  (+{secure_cpu - plain_cpu:.0f} us per request for the security layer)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--duration", type=int, default=10, help="seconds per phase")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5, help="bare/worker pairs per comparison")
    parser.add_argument(
        "--fallback-customers", type=int, default=40_000, help="never-read customers per transport for (f)"
    )
    parser.add_argument("--grpc-clients", type=int, default=1, help="gRPC load processes sharing the calls")
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument(
        "--secure",
        action="store_true",
        help="then restart the worker with authentication, rate limiting and the IP allow-list on: (g), (h)",
    )
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
