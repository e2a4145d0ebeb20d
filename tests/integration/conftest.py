from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import psycopg2
import pytest
from aiokafka import AIOKafkaProducer

from core_app import db
from core_app.rpc.generated.core.v1.core_grpc import CoreServiceStub
from core_app.settings import Settings
from tests.helpers import WorkerProcess, start_worker, stop_process, wait_ready


@contextmanager
def pg(settings: Settings, with_keys: bool = True) -> Iterator[psycopg2.extensions.connection]:
    """An autocommit connection, with the email keys set as the service's own unless told not to.

    (psycopg2's own `with conn` would open a transaction.)
    """
    options = db.connection_options(settings) if with_keys else "-c timezone=UTC"
    conn = psycopg2.connect(settings.db_dsn, options=options)
    conn.autocommit = True
    try:
        yield conn
    finally:
        conn.close()


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
