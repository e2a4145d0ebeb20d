"""Two workers in one group on their own Tansu, shared by the e2e modules that need a pair."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support.processes import (
    WorkerProcess,
    running_tansu,
    start_worker,
    stop_process,
    wait_ready,
)


@pytest.fixture(scope="session")
def pair_tansu() -> Iterator[str]:
    with running_tansu() as url:
        yield url


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
