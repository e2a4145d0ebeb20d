"""A dependency that fails in the middle of a REST request is a 503 naming it, never a 500 (D209).

Issue 20's short chaos runs saw two REST 500s per run on `GET /core/v1/customers`: a read of a
customer no table holds goes to PostgreSQL, and while PostgreSQL restarts that raises
`psycopg2.OperationalError`, which gRPC already answered UNAVAILABLE and REST answered 500.
"""

from __future__ import annotations

import psycopg2
import pytest
import redis.exceptions
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from core_app.security.layer import SecurityLayer
from core_app.settings import Settings
from views.pipeline import build_app

FAILURES: dict[str, BaseException] = {
    "postgres": psycopg2.OperationalError("server closed the connection unexpectedly"),
    "postgres-pool": psycopg2.InterfaceError("connection already closed"),
    "redis": redis.exceptions.ConnectionError("Connection refused"),
    "peer": ConnectionRefusedError(111, "Connect call failed"),
    "slow": TimeoutError(),
}


async def failing(request: web.Request) -> web.Response:
    raise FAILURES[request.match_info["what"]]


async def broken(request: web.Request) -> web.Response:
    raise KeyError("a bug")


async def client() -> TestClient:
    layer = SecurityLayer(Settings(auth_enabled=False), Redis(), None)  # type: ignore[arg-type]
    app = build_app([("GET", "/fail/{what}", failing), ("GET", "/bug", broken)], lambda: layer)
    test_client = TestClient(TestServer(app))
    await test_client.start_server()
    return test_client


@pytest.mark.parametrize(
    ("what", "named"),
    [
        ("postgres", "PostgreSQL"),
        ("postgres-pool", "PostgreSQL"),
        ("redis", "Redis"),
        ("peer", "a dependency"),
        ("slow", "a dependency"),
    ],
)
async def test_a_dependency_failing_mid_request_is_a_503_with_its_reason(what: str, named: str) -> None:
    rest = await client()
    try:
        response = await rest.get(f"/fail/{what}")
        body = await response.json()
        assert response.status == 503, body
        assert body["error"]["code"] == "UNAVAILABLE"
        assert body["error"]["message"].startswith(f"{named} unavailable")
        assert "retry" in body["error"]["message"]
        assert response.headers["X-Request-Id"]
    finally:
        await rest.close()


async def test_a_bug_is_still_a_500() -> None:
    rest = await client()
    try:
        response = await rest.get("/bug")
        assert response.status == 500
        assert (await response.json())["error"]["code"] == "INTERNAL_SERVER_ERROR"
    finally:
        await rest.close()
