"""The long chaos run (issue 20): the harness of tests/chaos/ (tests/chaos/run.py, the same code as
the short run in `make test`) for 20 minutes or more, with at least 20 worker SIGKILLs and two broker
wipes, over 10,000 customers of four merchants.

    .venv/bin/python -m bench.chaos [--seed N] [--minutes 20] [--rate 150]
    .venv/bin/python -m bench.record chaos bench/results/$(date -u +%F)-chaos.json -- --minutes 20

It owns everything it breaks (a PostgreSQL cluster, a Redis and a Tansu); the schema registry runs on
a database of its own on the shared PostgreSQL. It prints the seed, each nemesis with its time to
recover, the recovery times by kind, the rebalance time of each churn step, the verifier's
`ALL-RECORDS-DELIVERED` line and the reads answered, failed by reason and stale; it exits 1 unless
lost=0 regressed=0 diverged=0.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

from bench.reads_list import drop_database
from core_app.events.codec import EventCodec
from core_app.migrate import migrate
from core_app.schema_registry.run import start_registry
from core_app.settings import Settings
from tests.chaos.run import Config, run_chaos
from tests.chaos.stack import Stack
from tests.support.processes import free_port

# Per 20 minutes; more minutes scale every count but the wipes (two, as the issue asks).
LONG_COUNTS = {
    "kill_worker": 20,
    "churn": 4,
    "kill_sink": 3,
    "broker_wipe": 2,
    "pg_restart": 3,
    "redis_restart": 3,
}
NEMESIS_SECONDS = 30.0  # a nemesis, the recovery and the step after it, on a loaded 2-core host


def config(options: argparse.Namespace) -> Config:
    scale = options.minutes / 20
    counts = {kind: max(1, round(n * scale)) for kind, n in LONG_COUNTS.items()}
    counts["broker_wipe"] = 2 if options.minutes >= 5 else 1
    events = sum(counts.values())
    gap = max(2.0, options.minutes * 60 / events - NEMESIS_SECONDS)
    return Config(
        seed=options.seed or Config.seed_from_env(),
        merchants=4,
        customers_per_merchant=options.customers // 4,
        rate=options.rate,
        read_rate=options.read_rate,
        counts=counts,
        gap=gap,
        tail=10.0,
        created_per_step=20,
        erased_per_step=10,
        recover_timeout=120.0,
        verify_timeout=240.0,
    )


def base_env(settings: Settings, registry: str, workdir: Path) -> dict[str, str]:
    """A worker's environment as the tests' (tests/conftest.py worker_env), quieter logs."""
    return {
        "CORE_ENV": "test",
        "AUTH_ENABLED": "false",
        "AUTH_FAILURE_LIMIT": "0",
        "CORE_DB_NAME": settings.core_db_name,
        "SCHEMA_REGISTRY_URL": registry,
        "REDIS_KEY_PREFIX": settings.redis_key_prefix,
        "KAFKA_FETCH_MAX_WAIT_MS": "100",
        "KAFKA_SESSION_TIMEOUT": "10",
        "KAFKA_REBALANCE_TIMEOUT": "5",
        "KAFKA_HEARTBEAT_INTERVAL": "1",
        "TABLE_STANDBY_REPLICAS": "0",
        "LOG_JSON": "false",
        "LOG_LEVEL": "WARNING",
        "SHUTDOWN_TIMEOUT": "10",
        "PYTHONUNBUFFERED": "1",
        "IMPORT_PRIVATE_ALLOWLIST": "127.0.0.1/32",
        "IMPORT_MAX_FILE_MB": "32",
        "DATA_DIR": str(workdir / "data"),
    }


async def main(options: argparse.Namespace) -> int:
    run_id = uuid.uuid4().hex[:8]
    workdir = Path(tempfile.mkdtemp(prefix="core-chaos-"))
    # The registry's database is on the shared server: it is not a nemesis target.
    registry_settings = Settings(core_env="test", core_db_name=f"core_chaos_{run_id}")
    await asyncio.to_thread(migrate, registry_settings)
    port = free_port()
    runner = await start_registry(registry_settings, "127.0.0.1", port)
    registry = f"http://127.0.0.1:{port}"
    codec = EventCodec(registry, registry_settings.avro_dir)
    await codec.register_all()
    shared = registry_settings.model_copy(
        update={"redis_key_prefix": f"chaos:{run_id}:", "data_dir": workdir / "data", "auth_failure_limit": 0}
    )
    stack = Stack(workdir / "stack", base_env(shared, registry, workdir), shared)
    try:
        report = await run_chaos(config(options), stack, codec)
    finally:
        stack.stop()
        await runner.cleanup()
        drop_database(registry_settings)
        shutil.rmtree(workdir, ignore_errors=True)
    verdict = report.verdict
    return 0 if verdict.clean else 1


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="the schedule's seed (default: CHAOS_SEED or new)"
    )
    parser.add_argument("--minutes", type=float, default=20.0, help="the nemesis phase's length, about")
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=150.0, help="events per second")
    parser.add_argument("--read-rate", type=float, default=5.0, help="reads per second per worker")
    return parser.parse_args(argv)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(asyncio.run(main(parse(sys.argv[1:]))))
