"""Everything the chaos run owns and breaks: a PostgreSQL cluster, a Redis and a Tansu of its own, the
sink as its own process (`core sink`), and the workers (tests/support/cluster.py's `Cluster`).

The shared PostgreSQL and Redis are never touched except by the schema registry, which is not a
nemesis target.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from core_app.migrate import migrate
from core_app.settings import Settings
from core_app.topics import CONSUMED, INTERNAL, PRODUCED, ensure_topics
from tests.support.cluster import Cluster
from tests.support.postgres import ThrowawayPostgres
from tests.support.processes import (
    PrivateRedis,
    RestartableTansu,
    WorkerProcess,
    start_worker,
    stop_process,
)
from tests.support.readers import Readers

PARTITIONS = 6
SINK = "chaos-sink"


@dataclass
class Stack:
    workdir: Path
    base_env: dict[str, str]  # a test worker's environment (tests/conftest.py worker_env)
    shared_settings: Settings  # the session's: database name, Redis key prefix
    pg: ThrowawayPostgres = field(default_factory=ThrowawayPostgres)
    redis: PrivateRedis = field(init=False)
    tansu: RestartableTansu = field(init=False)
    settings: Settings = field(init=False)  # the service's settings against this stack
    cluster: Cluster = field(init=False)
    sink: WorkerProcess | None = None
    _named: int = 0

    def __post_init__(self) -> None:
        (self.workdir / "redis").mkdir(parents=True, exist_ok=True)
        (self.workdir / "imports").mkdir(exist_ok=True)
        # AOF, as the plan's production Redis: what it held comes back after a restart.
        self.redis = PrivateRedis(self.workdir / "redis", durable=True)
        self.tansu = RestartableTansu(self.workdir / "tansu.log")

    def start(self, readers: Readers) -> None:
        self.pg.init()
        self.redis.start()
        self.tansu.start()
        self.settings = self.shared_settings.model_copy(
            update={
                "core_db_port": self.pg.port,
                "kafka_broker": self.tansu.url,
                "kafka_topic_partitions": PARTITIONS,
                "redis_url": f"redis://127.0.0.1:{self.redis.port}/0",
            }
        )
        migrate(self.settings)
        env = self.base_env | {
            "KAFKA_BROKER": self.tansu.url,
            "KAFKA_TOPIC_PARTITIONS": str(PARTITIONS),
            "CORE_DB_PORT": str(self.pg.port),
            "REDIS_URL": self.settings.redis_url or "",
            "SINK_IN_WORKER": "false",
            "IMPORT_FILE_ROOT": str(self.workdir / "imports"),
            "HEALTH_TIMEOUT": "1",
            # A wipe holds /health DOWN this long (D115); the run measures the rebuild, not the hold.
            "BROKER_RESET_HOLD_SECONDS": "5",
        }
        self.cluster = Cluster(env, self.workdir, readers)

    def next_name(self) -> str:
        self._named += 1
        return f"chaos-w{self._named}"

    def start_sink(self) -> None:
        self.sink = start_worker(SINK, self.cluster.env, command="sink")

    def kill_sink(self) -> None:
        if self.sink is not None:
            self.sink.process.kill()
            self.sink.process.wait(10)
            self.sink = None

    async def recreate_topics(self) -> None:
        """After a wipe, the topics the load is produced to come back with their partition counts, as
        the operator's provisioning makes them (D14), before the generator's producer asks for them
        (a producer's metadata request makes Tansu create a topic with 4 partitions). The tables'
        changelogs are the workers' to make again (D208)."""
        await ensure_topics(self.settings, CONSUMED + PRODUCED + INTERNAL)

    async def unhealthy(self) -> list[str]:
        """What is not yet healthy: each worker's /ready and /health, and the sink's /health."""
        urls = {
            f"{w.name} {probe}": f"{w.url}/{probe}"
            for w in self.cluster.workers
            for probe in ("ready", "health")
        }
        if self.sink is not None:
            urls["sink health"] = f"{self.sink.url}/health"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as http:

            async def status(url: str) -> str:
                try:
                    async with http.get(url) as response:
                        return "" if response.status == 200 else f"{response.status} {await response.text()}"
                except (aiohttp.ClientError, TimeoutError) as exc:
                    return type(exc).__name__

            answers = await asyncio.gather(*(status(url) for url in urls.values()))
        return [f"{name}: {answer[:200]}" for name, answer in zip(urls, answers, strict=True) if answer]

    def restart_exited(self) -> list[str]:
        """As an orchestrator would: a worker or the sink that exited is started again (same name)."""
        restarted = []
        for worker in [w for w in self.cluster.workers if w.process.poll() is not None]:
            restarted.append(f"{worker.name} exited {worker.process.returncode}")
            self.cluster.workers.remove(worker)
            if self.cluster.readers is not None:
                self.cluster.readers.detach(worker)
            self.cluster.start(worker.name)
        if self.sink is not None and self.sink.process.poll() is not None:
            restarted.append(f"sink exited {self.sink.process.returncode}")
            self.start_sink()
        return restarted

    async def recovered(self, timeout: float) -> tuple[float, list[str], list[str]]:
        """(seconds until every probe is healthy or the timeout, what was still unhealthy then,
        the processes that exited meanwhile and were started again)."""
        started, restarted = time.monotonic(), []
        while True:
            restarted += self.restart_exited()
            failing = await self.unhealthy()
            if not failing or time.monotonic() - started > timeout:
                return time.monotonic() - started, failing, restarted
            await asyncio.sleep(0.5)

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.cluster.stop()
        if self.sink is not None:
            stop_process(self.sink.process)
        self.tansu.stop()
        self.redis.stop()
        self.pg.remove()
