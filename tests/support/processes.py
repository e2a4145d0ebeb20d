"""Test helpers shared by the integration and e2e suites (no fixtures here)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port} after {timeout}s")


@contextmanager
def running_tansu(log_path: Path | None = None) -> Iterator[str]:
    """A Tansu broker of its own (in memory) on a free port; yields its KAFKA_BROKER URL."""
    from core_app.devstack import tansu_argv

    port = free_port()
    log = open(log_path, "wb") if log_path else subprocess.DEVNULL
    process = subprocess.Popen(tansu_argv(port), stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port)
        yield f"kafka://127.0.0.1:{port}"
    finally:
        stop_process(process, timeout=5)
        if log_path:
            log.close()  # type: ignore[union-attr]


async def eventually(
    probe: Callable[[], Awaitable[Any]], timeout: float = 30.0, interval: float = 0.2
) -> Any:
    """Await `probe` until it returns a truthy value; fail with its last result or error."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = await probe()
            if last:
                return last
        except (AssertionError, aiohttp.ClientError, OSError) as exc:
            last = exc
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s; last result: {last!r}")


def stop_process(process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class WorkerProcess:
    name: str
    process: subprocess.Popen[bytes]
    http_port: int
    grpc_port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def start_worker(
    name: str, env: dict[str, str], http_port: int | None = None, command: str = "worker"
) -> WorkerProcess:
    """`core worker` as a subprocess, logging to test-artifacts/<name>.log (`http_port`: when the
    caller must know it before the start, e.g. for SHOPIFY_APP_URL; `command`: another `core`
    command, e.g. `sink`)."""
    ARTIFACTS.mkdir(exist_ok=True)
    http_port, grpc_port = http_port or free_port(), free_port()
    log_path = ARTIFACTS / f"{name}.log"
    full_env = {
        **os.environ,
        **env,
        "HTTP_PORT": str(http_port),
        "GRPC_PORT": str(grpc_port),
        "WORKER_ID": name,
        "CANONICAL_URL": f"http://127.0.0.1:{http_port}",
    }
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "core_app", command],
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return WorkerProcess(name, process, http_port, grpc_port, log_path)


async def wait_ready(worker: WorkerProcess, timeout: float = 120.0) -> None:
    async def ready() -> bool:
        if worker.process.poll() is not None:
            raise RuntimeError(f"worker {worker.name} exited:\n{worker.log_tail()}")
        async with aiohttp.ClientSession() as http, http.get(f"{worker.url}/ready") as response:
            return response.status == 200

    try:
        await eventually(ready, timeout=timeout, interval=0.5)
    except AssertionError:
        raise AssertionError(f"worker {worker.name} not ready:\n{worker.log_tail()}") from None


DIAGNOSTIC_METRICS = (
    "core_events_processed_total",
    "core_events_failed_total",
    "core_sink_",
    "core_consumer_lag",
    "core_consumer_committed_offset",
    "core_consumer_positions_rewound_total",
    "core_partition_stalled",
    "core_table_state_discarded_total",
    "core_recovery_",
)


async def diagnose(worker: WorkerProcess) -> str:
    """What a stalled worker is doing, for a failure message: its pipeline and sink counters from
    /metrics, then the stacks of its threads and asyncio tasks (mode's SIGUSR1 handler writes them
    to the worker's log) and the log's tail."""
    lines = []
    try:
        async with aiohttp.ClientSession() as http, http.get(f"{worker.url}/metrics") as response:
            text = await response.text()
        lines = [line for line in text.splitlines() if line.startswith(DIAGNOSTIC_METRICS)]
    except aiohttp.ClientError as exc:
        lines = [f"/metrics did not answer: {exc!r}"]
    if worker.process.poll() is None:
        worker.process.send_signal(signal.SIGUSR1)
        await asyncio.sleep(2)
    log_lines = worker.log_path.read_text(errors="replace").splitlines()
    warnings = [line for line in log_lines if "WARNING" in line or "ERROR" in line][-60:]
    dump = worker.log_tail(400)
    return "\n".join(
        [
            "worker metrics:",
            *[line for line in lines if not line.endswith(" 0.0") and "_created" not in line],
            "warnings and errors in the worker log (this test's workers share it):",
            *warnings,
            "worker log (with a SIGUSR1 stack dump):",
            dump,
        ]
    )


async def metric(worker: WorkerProcess, name: str, **labels: str) -> float:
    """Sum of the worker's samples of `name` whose labels include `labels`."""
    return sum(value for _, value in await metric_samples(worker, name, **labels))


async def metric_samples(
    worker: WorkerProcess, name: str, **labels: str
) -> list[tuple[dict[str, str], float]]:
    """The worker's samples of `name` whose labels include `labels`: (labels, value) each."""
    from prometheus_client.parser import text_string_to_metric_families

    async with aiohttp.ClientSession() as http, http.get(f"{worker.url}/metrics") as response:
        text = await response.text()
    return [
        (sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    ]


class PrivateRedis:
    """A redis-server of our own on a free port, so the shared one is never stopped. `durable`: with
    AOF, so what it held comes back after a restart (as the plan's production Redis)."""

    def __init__(self, workdir: Path, durable: bool = False) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.durable = durable
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        argv += ["--appendonly", "yes", "--appendfsync", "always"] if self.durable else ["--appendonly", "no"]
        self.process = subprocess.Popen(
            [*argv, "--dir", str(self.workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, timeout=10)
            self.process = None


class RestartableTansu:
    """A Tansu of its own that can be stopped and started again at the same address: in memory, so it
    comes back empty, as a wiped or replaced broker."""

    def __init__(self, log_path: Path) -> None:
        self.port = free_port()
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"kafka://127.0.0.1:{self.port}"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        from core_app.devstack import tansu_argv

        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(tansu_argv(self.port), stdout=log, stderr=subprocess.STDOUT)
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, timeout=5)
            self.process = None
