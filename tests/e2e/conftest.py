"""Two workers in one group on their own Tansu, shared by the e2e modules that need a pair."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from core_app.devstack import tansu_argv
from tests.helpers import WorkerProcess, free_port, start_worker, stop_process, wait_for_port, wait_ready


@pytest.fixture(scope="session")
def pair_tansu() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(tansu_argv(port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port)
    yield f"kafka://127.0.0.1:{port}"
    stop_process(process, timeout=5)


@pytest.fixture(scope="session")
async def two_workers(
    worker_env: dict[str, str], pair_tansu: str, data_root: Path
) -> AsyncIterator[tuple[WorkerProcess, WorkerProcess]]:
    env = worker_env | {"KAFKA_BROKER": pair_tansu, "DATA_DIR": str(data_root / "pair-data")}
    first = start_worker("worker-pair-a", env)
    await wait_ready(first)
    second = start_worker("worker-pair-b", env)
    try:
        await wait_ready(second)
        yield first, second
    finally:
        stop_process(second.process)
        stop_process(first.process)
