"""Helpers shared by the benchmarks: a private Tansu, worker subprocesses, metrics."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from core_app.settings import Settings
from tests.support.processes import free_port, metric

__all__ = ["Tansu", "Worker", "drop_database", "free_port", "metric", "start_tansu", "wait_http_ok"]


@dataclass
class Tansu:
    process: subprocess.Popen[bytes]
    port: int

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"kafka://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def start_tansu(workdir: Path) -> Tansu:
    from core_app.devstack import tansu_argv

    port = free_port()
    with open(workdir / "tansu.log", "wb") as log:
        process = subprocess.Popen(tansu_argv(port), stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return Tansu(process, port)
        except OSError:
            time.sleep(0.05)
    raise TimeoutError("Tansu did not start")


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    http_port: int
    log_path: Path
    grpc_port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @classmethod
    def start(cls, env: dict[str, str], log_path: Path, command: str = "worker") -> Worker:
        """`core worker` (or another `core` command, e.g. `sink`) on free ports."""
        http_port, grpc_port = free_port(), free_port()
        env = env | {"HTTP_PORT": str(http_port), "GRPC_PORT": str(grpc_port)}
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "core_app", command], env=env, stdout=log, stderr=subprocess.STDOUT
            )
        return cls(process, http_port, log_path, grpc_port)

    def peak_rss_mib(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmHWM")

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()


async def wait_http_ok(url: str, timeout: float, interval: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            try:
                async with http.get(url) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(interval)
    raise TimeoutError(f"{url} not OK after {timeout}s")


def worker_env(
    settings: Settings,
    broker: str,
    registry: str,
    workdir: Path,
    worker_id: str,
    partitions: int,
    **extra: str,
) -> dict[str, str]:
    """A bench worker's environment: tuned for Tansu like the tests (docs/decisions.md D6), quiet logs."""
    return {
        **os.environ,
        "CORE_DB_NAME": settings.core_db_name,
        "KAFKA_BROKER": broker,
        "SCHEMA_REGISTRY_URL": registry,
        "REDIS_KEY_PREFIX": settings.redis_key_prefix,
        "DATA_DIR": str(workdir / "core-data"),
        "WORKER_ID": worker_id,
        "KAFKA_TOPIC_PARTITIONS": str(partitions),
        "KAFKA_FETCH_MAX_WAIT_MS": "100",
        "KAFKA_SESSION_TIMEOUT": "10",
        "KAFKA_REBALANCE_TIMEOUT": "5",
        "KAFKA_HEARTBEAT_INTERVAL": "1",
        "TABLE_STANDBY_REPLICAS": "0",
        "LOG_LEVEL": "WARNING",
        "LOG_JSON": "false",
        **extra,
    }


def drop_database(settings: Settings) -> None:
    """Drop a bench's throwaway database (connected to `postgres` on the same server)."""
    import psycopg2

    admin = psycopg2.connect(settings.model_copy(update={"core_db_name": "postgres"}).db_dsn)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{settings.core_db_name}" WITH (FORCE)')
    admin.close()
