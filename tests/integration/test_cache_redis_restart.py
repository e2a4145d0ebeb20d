"""A Redis restart under load leaves no cached customer older than its PostgreSQL row.

Redis here keeps its data across the restart (AOF, as the plan's production Redis does), so a cache
entry whose invalidation failed while Redis was away would come back and be served for 24 h. The
sink must retry the invalidation and commit nothing past it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from core_app.events.codec import EventCodec
from core_app.settings import Settings
from tests.support.cluster import KeyedLoad
from tests.support.events import customer_rows, insert_customers, new_merchant
from tests.support.processes import (
    PrivateRedis,
    WorkerProcess,
    metric,
    running_tansu,
    start_worker,
    stop_process,
    wait_ready,
)

CUSTOMERS = 200


@pytest.fixture
def durable_redis(data_root: Path) -> Iterator[PrivateRedis]:
    workdir = data_root / "durable-redis"
    workdir.mkdir(parents=True, exist_ok=True)
    server = PrivateRedis(workdir, durable=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def cache_worker(
    worker_env: dict[str, str], durable_redis: PrivateRedis, data_root: Path
) -> AsyncIterator[tuple[WorkerProcess, str]]:
    with running_tansu() as url:
        env = worker_env | {
            "KAFKA_BROKER": url,
            "REDIS_URL": f"redis://127.0.0.1:{durable_redis.port}/0",
            "DATA_DIR": str(data_root / "cache-restart-data"),
            "HEALTH_TIMEOUT": "1",
        }
        worker = start_worker("worker-cache-restart", env)
        try:
            await wait_ready(worker)
            yield worker, url
        finally:
            stop_process(worker.process)


async def test_redis_restart_under_load_leaves_no_stale_cache_entry(
    cache_worker: tuple[WorkerProcess, str],
    durable_redis: PrivateRedis,
    settings: Settings,
    codec: EventCodec,
) -> None:
    worker, url = cache_worker
    merchant_id = new_merchant(settings)
    customers = [cid for cid, _ in insert_customers(settings, merchant_id, CUSTOMERS)]
    redis = Redis(port=durable_redis.port)
    prefix = settings.redis_key_prefix

    def cache_key(customer_id: str) -> str:
        return f"{prefix}customer:{merchant_id}:{customer_id}"

    # Every customer cached as a fallback read would cache it (version 0, from PostgreSQL).
    for customer_id in customers:
        view = {"id": customer_id, "merchant_id": merchant_id, "rfm_score": {}, "metadata": {}, "version": 0}
        await redis.set(cache_key(customer_id), orjson.dumps(view), ex=24 * 3600)

    producer = AIOKafkaProducer(bootstrap_servers=url.removeprefix("kafka://"), linger_ms=5)
    await producer.start()
    load = KeyedLoad(producer, codec, merchant_id, customers, rate=150)
    task = asyncio.create_task(load.run())
    try:
        await asyncio.sleep(2)
        durable_redis.stop()
        await asyncio.sleep(4)  # events keep coming; their invalidations cannot reach Redis
        durable_redis.start()
        await asyncio.sleep(2)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await producer.stop()

    stale: list[str] = []

    async def quiet() -> bool:
        rows = customer_rows(settings, merchant_id)
        if any(rows[c]["version"] != load.expected(c)[1] for c in customers):
            return False  # the sink has not caught up yet
        redis_now = Redis(port=durable_redis.port)
        try:
            stale.clear()
            for customer_id in customers:
                cached = await redis_now.get(cache_key(customer_id))
                if cached is not None and orjson.loads(cached)["version"] < rows[customer_id]["version"]:
                    stale.append(customer_id)
        finally:
            await redis_now.aclose()
        return not stale

    deadline = asyncio.get_running_loop().time() + 60
    while not await quiet():
        assert asyncio.get_running_loop().time() < deadline, (
            f"{len(stale)} stale cache entries, e.g. {stale[:3]}"
        )
        await asyncio.sleep(1)
    assert await metric(worker, "core_cache_invalidation_failures_total") > 0, "Redis was never missed"
    print(f"\nredis restart: {sum(load.sent.values())} events, 0 stale entries of {CUSTOMERS} cached")
