"""/health and /ready against real dependencies; Redis outage shown with a private redis-server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.support.processes import (
    PrivateRedis,
    WorkerProcess,
    eventually,
    start_worker,
    stop_process,
    wait_ready,
)


@pytest.fixture(scope="module")
def private_redis(data_root: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(data_root)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
async def health_worker(
    worker_env: dict[str, str], private_redis: PrivateRedis
) -> AsyncIterator[WorkerProcess]:
    env = worker_env | {
        "REDIS_URL": f"redis://127.0.0.1:{private_redis.port}/0",
        "SERVICE_NAME": "core-health-test",
        "HEALTH_TIMEOUT": "1",
    }
    process = start_worker("worker-health", env)
    try:
        await wait_ready(process)
        yield process
    finally:
        stop_process(process.process)


async def get(url: str) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return response.status, await response.json()


async def test_health_is_up_when_everything_answers(health_worker: WorkerProcess) -> None:
    assert await get(f"{health_worker.url}/health") == (200, {"status": "UP"})
    assert await get(f"{health_worker.url}/ready") == (200, {"ready": True})


async def test_redis_down_then_back(health_worker: WorkerProcess, private_redis: PrivateRedis) -> None:
    private_redis.stop()
    try:
        status, body = await get(f"{health_worker.url}/health")
        assert status == 503
        assert body["status"] == "DOWN"
        assert body["down"] == ["redis"]
        assert body["checks"]["postgres"] == "UP"
        assert body["checks"]["kafka"] == "UP"
        assert (await get(f"{health_worker.url}/ready"))[0] == 503
    finally:
        private_redis.start()

    async def back_up() -> bool:
        return await get(f"{health_worker.url}/health") == (200, {"status": "UP"})

    await eventually(back_up, timeout=20)


async def test_metrics_are_prometheus_text(health_worker: WorkerProcess) -> None:
    async with aiohttp.ClientSession() as http, http.get(f"{health_worker.url}/metrics") as response:
        text = await response.text()
    assert response.status == 200
    assert "# TYPE core_customers_created_total counter" in text
    assert 'core_dependency_up{dependency="redis"} 1.0' in text


async def test_grpc_server_answers_health_checks(health_worker: WorkerProcess) -> None:
    from grpclib.client import Channel
    from grpclib.health.v1.health_grpc import HealthStub
    from grpclib.health.v1.health_pb2 import HealthCheckRequest, HealthCheckResponse

    channel = Channel("127.0.0.1", health_worker.grpc_port)
    try:
        reply = await HealthStub(channel).Check(HealthCheckRequest(), timeout=5)
    finally:
        channel.close()
    assert reply.status == HealthCheckResponse.SERVING
