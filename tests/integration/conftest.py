from __future__ import annotations

from collections.abc import AsyncIterator

import aiopg
import pytest
from aiokafka import AIOKafkaProducer

from core_app import db
from core_app.rpc.generated.core.v1.core_grpc import CoreServiceStub
from core_app.settings import Settings
from tests.support.processes import WorkerProcess, start_worker, stop_process, wait_ready


@pytest.fixture(scope="session")
async def worker(worker_env: dict[str, str]) -> AsyncIterator[WorkerProcess]:
    process = start_worker("worker-main", worker_env)
    try:
        await wait_ready(process)
        yield process
    finally:
        stop_process(process.process)


@pytest.fixture(scope="session")
async def producer(tansu: str) -> AsyncIterator[AIOKafkaProducer]:
    kafka = AIOKafkaProducer(bootstrap_servers=tansu.removeprefix("kafka://"))
    await kafka.start()
    yield kafka
    await kafka.stop()


@pytest.fixture
async def stub(worker: WorkerProcess) -> AsyncIterator[CoreServiceStub]:
    """A gRPC client of the session worker."""
    from grpclib.client import Channel

    channel = Channel("127.0.0.1", worker.grpc_port)
    yield CoreServiceStub(channel)
    channel.close()


@pytest.fixture
async def pool(settings: Settings) -> AsyncIterator[aiopg.Pool]:
    """A small aiopg pool on the session database, for tests of the PostgreSQL adapters."""
    created = await db.create_pool(settings, minsize=0, maxsize=2)
    yield created
    created.close()
    await created.wait_closed()
