"""Reads the worker's table cannot answer: Redis, then PostgreSQL, with the source on every signal.

Two ways a table lacks a customer that PostgreSQL holds:
- the key was never loaded: no event or command touched the customer (the session worker);
- the table was emptied: a worker that starts with empty state on its own fresh Tansu (as after a
  lost broker or a wiped state directory) while PostgreSQL holds the rows an earlier worker persisted.

Each read's source is checked three ways: the REST `X-Core-Source` header (and body), the gRPC
`x-core-source` trailing metadata, and the `core_customer_reads_total` / `core_rfm_reads_total`
deltas on /metrics. A PostgreSQL answer is cached in Redis for 24 h, and a read never loads the
key into the table.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import psycopg2.extras
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from grpclib.client import Channel

from core_app.events.codec import EventCodec
from core_app.rpc.generated.core.v1 import core_pb2 as pb
from core_app.rpc.generated.core.v1.core_grpc import CoreServiceStub
from core_app.settings import Settings
from tests.support.db import pg
from tests.support.events import at, insert_customers, new_merchant, produce, rfm
from tests.support.processes import (
    WorkerProcess,
    eventually,
    metric,
    running_tansu,
    start_worker,
    stop_process,
    wait_ready,
)

DAY = 24 * 3600
SOURCES = ("table", "owner", "redis", "postgres")


async def rest_read(
    worker: WorkerProcess, merchant_id: str, customer_id: str
) -> tuple[int, dict, str | None]:
    params = {"merchant_id": merchant_id, "customer_id": customer_id}
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{worker.url}/core/v1/customers", params=params) as response,
    ):
        return response.status, await response.json(), response.headers.get("X-Core-Source")


async def grpc_rfm(worker: WorkerProcess, merchant_id: str, customer_id: str) -> tuple[tuple, str | None]:
    """GetCustomerRFM's score and its `x-core-source` trailing metadata."""
    channel = Channel("127.0.0.1", worker.grpc_port)
    try:
        async with CoreServiceStub(channel).GetCustomerRFM.open() as stream:
            await stream.send_message(
                pb.GetCustomerRFMRequest(merchant_id=merchant_id, customer_id=customer_id), end=True
            )
            reply = await stream.recv_message()
            await stream.recv_trailing_metadata()
        assert reply is not None and stream.trailing_metadata is not None
        score = (reply.rfm_score.recency, reply.rfm_score.frequency, reply.rfm_score.monetary)
        return score, stream.trailing_metadata.get("x-core-source")
    finally:
        channel.close()


async def read_counts(worker: WorkerProcess) -> dict[str, float]:
    counts = {}
    for name in ("core_customer_reads_total", "core_rfm_reads_total"):
        for source in SOURCES:
            counts[f"{name}:{source}"] = await metric(worker, name, source=source)
    for name in ("core_cache_hits_total", "core_cache_misses_total"):
        counts[name] = await metric(worker, name, cache="customer")
    return counts


class Deltas:
    """Metric deltas since the last `check`, compared with the reads the test made."""

    def __init__(self, worker: WorkerProcess) -> None:
        self.worker = worker
        self.before: dict[str, float] = {}

    async def start(self) -> None:
        self.before = await read_counts(self.worker)

    async def check(self, **expected: int) -> None:
        after = await read_counts(self.worker)
        got = {k: after[k] - self.before[k] for k in after if after[k] != self.before[k]}
        want = {k.replace("__", ":"): float(v) for k, v in expected.items() if v}
        assert got == want
        self.before = after


async def in_table(worker: WorkerProcess, merchant_id: str, customer_id: str) -> bool:
    """Whether the worker's own table holds the customer (the owner route reads the table only)."""
    url = f"{worker.url}/internal/v1/customers/{merchant_id}/{customer_id}"
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        assert response.status in (200, 404)
        return response.status == 200


def set_rfm_in_postgres(settings: Settings, merchant_id: str, customer_id: str, score: tuple) -> None:
    recency, frequency, monetary = score
    with pg(settings) as conn, conn.cursor() as cur:
        cur.execute(
            "UPDATE customers SET rfm_score = %s WHERE merchant_id = %s AND id = %s",
            (
                psycopg2.extras.Json({"recency": recency, "frequency": frequency, "monetary": monetary}),
                merchant_id,
                customer_id,
            ),
        )


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(settings.redis_dsn)
    yield client
    await client.aclose()


def cache_key(settings: Settings, merchant_id: str, customer_id: str) -> str:
    return f"{settings.redis_key_prefix}customer:{merchant_id}:{customer_id}"


async def assert_cached_for_a_day(redis: aioredis.Redis, key: str, customer_id: str, score: tuple) -> None:
    cached = await redis.get(key)
    assert cached is not None, "a PostgreSQL hit is cached in Redis"
    view = json.loads(cached)
    assert view["id"] == customer_id
    assert tuple(view["rfm_score"][k] for k in ("recency", "frequency", "monetary")) == score
    assert DAY - 60 <= await redis.ttl(key) <= DAY


async def test_never_loaded_customer_is_read_from_redis_then_postgres(
    worker: WorkerProcess, settings: Settings, redis: aioredis.Redis
) -> None:
    merchant_id = new_merchant(settings)
    [(customer_id, _)] = insert_customers(settings, merchant_id, 1, metadata='{"tier": "gold"}')
    score = (5, 6, 7)
    set_rfm_in_postgres(settings, merchant_id, customer_id, score)
    key = cache_key(settings, merchant_id, customer_id)
    deltas = Deltas(worker)
    await deltas.start()

    # First read: not in the table, not in Redis: PostgreSQL answers and fills the cache.
    status, body, header = await rest_read(worker, merchant_id, customer_id)
    assert (status, body["source"], header) == (200, "postgres", "postgres")
    await assert_cached_for_a_day(redis, key, customer_id, score)
    await deltas.check(core_customer_reads_total__postgres=1, core_cache_misses_total=1)

    # Present in PostgreSQL and Redis: Redis answers, on every transport.
    status, body, header = await rest_read(worker, merchant_id, customer_id)
    assert (status, body["source"], header) == (200, "redis", "redis")
    assert body["metadata"] == {"tier": "gold"}
    assert await grpc_rfm(worker, merchant_id, customer_id) == (score, "redis")
    await deltas.check(
        core_customer_reads_total__redis=1, core_rfm_reads_total__redis=1, core_cache_hits_total=2
    )

    # The Redis key is gone: PostgreSQL answers again and the answer is cached again.
    await redis.delete(key)
    assert await grpc_rfm(worker, merchant_id, customer_id) == (score, "postgres")
    await assert_cached_for_a_day(redis, key, customer_id, score)
    await redis.delete(key)
    status, body, header = await rest_read(worker, merchant_id, customer_id)
    assert (status, body["source"], header) == (200, "postgres", "postgres")
    await deltas.check(
        core_customer_reads_total__postgres=1, core_rfm_reads_total__postgres=1, core_cache_misses_total=2
    )

    # Reads do not load the key into the table; only events and commands do.
    assert not await in_table(worker, merchant_id, customer_id)
    rate = await metric(worker, "redis_cache_hit_rate")
    assert 0 < rate < 1


async def test_a_table_read_says_table(
    worker: WorkerProcess, settings: Settings, codec: EventCodec, producer: AIOKafkaProducer
) -> None:
    merchant_id = new_merchant(settings)
    [(customer_id, _)] = insert_customers(settings, merchant_id, 1)
    await produce(producer, codec, [rfm(merchant_id, customer_id, (1, 1, 9), at(1))])

    async def from_table() -> bool:
        status, body, header = await rest_read(worker, merchant_id, customer_id)
        return status == 200 and body["rfm_score"].get("monetary") == 9 and header == "table"

    await eventually(from_table)
    deltas = Deltas(worker)
    await deltas.start()
    assert await grpc_rfm(worker, merchant_id, customer_id) == ((1, 1, 9), "table")
    await deltas.check(core_rfm_reads_total__table=1)


@pytest.fixture(scope="module")
def empty_tansu() -> Iterator[str]:
    with running_tansu() as url:
        yield url


@pytest.fixture(scope="module")
async def empty_worker(
    worker_env: dict[str, str], empty_tansu: str, data_root: Path
) -> AsyncIterator[WorkerProcess]:
    """A worker with empty tables (fresh broker, fresh state directory), same PostgreSQL and Redis."""
    env = worker_env | {"KAFKA_BROKER": empty_tansu, "DATA_DIR": str(data_root / "empty-data")}
    process = start_worker("worker-empty-table", env)
    try:
        await wait_ready(process)
        yield process
    finally:
        stop_process(process.process)


async def test_emptied_table_is_read_from_redis_then_postgres(
    worker: WorkerProcess,
    empty_worker: WorkerProcess,
    settings: Settings,
    codec: EventCodec,
    producer: AIOKafkaProducer,
    redis: aioredis.Redis,
) -> None:
    # The session worker holds the customer in its table and the sink has persisted it.
    merchant_id = new_merchant(settings)
    [(customer_id, _)] = insert_customers(settings, merchant_id, 1)
    score = (3, 1, 4)
    await produce(producer, codec, [rfm(merchant_id, customer_id, score, at(1))])

    async def persisted() -> bool:
        with pg(settings) as conn, conn.cursor() as cur:
            cur.execute("SELECT version FROM customers WHERE id = %s", (customer_id,))
            return cur.fetchone()[0] >= 1

    await eventually(persisted)
    assert await grpc_rfm(worker, merchant_id, customer_id) == (score, "table")
    key = cache_key(settings, merchant_id, customer_id)
    await eventually(lambda: _absent(redis, key))  # the sink drops the entry after persisting

    # The worker with an emptied table: PostgreSQL, then Redis, then PostgreSQL once the key is gone.
    assert not await in_table(empty_worker, merchant_id, customer_id)
    deltas = Deltas(empty_worker)
    await deltas.start()
    assert await grpc_rfm(empty_worker, merchant_id, customer_id) == (score, "postgres")
    await assert_cached_for_a_day(redis, key, customer_id, score)
    status, body, header = await rest_read(empty_worker, merchant_id, customer_id)
    assert (status, body["source"], header, body["version"]) == (200, "redis", "redis", 1)
    assert await grpc_rfm(empty_worker, merchant_id, customer_id) == (score, "redis")
    graphql_source = await graphql_rfm_source(empty_worker, merchant_id, customer_id)
    assert graphql_source == "redis"
    await deltas.check(
        core_rfm_reads_total__postgres=1,
        core_customer_reads_total__redis=1,
        core_rfm_reads_total__redis=2,
        core_cache_misses_total=1,
        core_cache_hits_total=3,
    )

    await redis.delete(key)
    status, body, header = await rest_read(empty_worker, merchant_id, customer_id)
    assert (status, body["source"], header) == (200, "postgres", "postgres")
    await assert_cached_for_a_day(redis, key, customer_id, score)
    await deltas.check(core_customer_reads_total__postgres=1, core_cache_misses_total=1)
    assert not await in_table(empty_worker, merchant_id, customer_id)


async def _absent(redis: aioredis.Redis, key: str) -> bool:
    return await redis.get(key) is None


async def graphql_rfm_source(worker: WorkerProcess, merchant_id: str, customer_id: str) -> str | None:
    query = "query($m: ID!, $c: ID!) { getCustomerRFM(merchant_id: $m, customer_id: $c) { monetary } }"
    body = {"query": query, "variables": {"m": merchant_id, "c": customer_id}}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{worker.url}/graphql", json=body) as response,
    ):
        answer = await response.json()
        assert answer.get("errors") is None, answer
        return response.headers.get("X-Core-Source")
