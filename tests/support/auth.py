"""Credentials for tests: signed REST requests, JWTs for GraphQL / gRPC / WebSocket, and a worker with
the security layer on.

Helpers (no fixtures needed):
    mint_jwt(merchant_id, [VIEW]) -> token          bearer(token) -> headers, grpc_metadata(token)
    create_api_credentials(settings, merchant_id, [EDIT]) -> ApiCredentials
    creds.headers("GET", "/core/v1/customers?merchant_id=...", body=b"")
    signed_session(creds)  -> aiohttp.ClientSession that signs every request it sends

Fixtures (registered in tests/conftest.py):
    api_credentials(merchant_id, permissions=(FULL,)) -> ApiCredentials   (factory)
    secure_worker -> a `core worker` with AUTH_ENABLED=true on its own broker (session scope)
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import psycopg2
import pytest

from core_app import db
from core_app.security.api_keys import new_api_key
from core_app.security.crypto import kek_from_setting
from core_app.security.principal import FULL
from core_app.security.signing import signed_headers
from core_app.settings import DEV_JWT_HS256_SECRET, Settings
from tests.support.processes import (
    WorkerProcess,
    running_tansu,
    start_worker,
    stop_process,
    wait_ready,
)

ISSUER = "loyalnest-auth"
AUDIENCE = "loyalnest-core"


def mint_jwt(
    merchant_id: str | None,
    permissions: Iterable[str] = (FULL,),
    *,
    expires_in: int = 3600,
    subject: str = "test-user",
    secret: str = DEV_JWT_HS256_SECRET,
    issuer: str = ISSUER,
    audience: str = AUDIENCE,
    cross_merchant: bool = False,
    **claims: Any,
) -> str:
    """An HS256 token as the dev settings accept it (expires_in < 0 gives an expired one)."""
    now = int(time.time())
    body: dict[str, Any] = {
        "sub": subject,
        "iss": issuer,
        "aud": audience,
        "iat": now,
        "exp": now + expires_in,
        "permissions": list(permissions),
        **claims,
    }
    if merchant_id is not None:
        body["merchant_id"] = merchant_id
    if cross_merchant:
        body["cross_merchant"] = True
    return jwt.encode(body, secret, algorithm="HS256")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def grpc_metadata(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


@dataclass(frozen=True)
class ApiCredentials:
    key_id: str
    secret: str
    merchant_id: str
    permissions: tuple[str, ...]

    def headers(
        self,
        method: str,
        path_qs: str,
        body: bytes = b"",
        timestamp: int | None = None,
        nonce: str | None = None,
    ) -> dict[str, str]:
        """X-Api-Key / X-Timestamp / X-Nonce / X-Signature for one request (path with its query)."""
        return signed_headers(self.key_id, self.secret, method, path_qs, body, timestamp, nonce)


def create_api_credentials(
    settings: Settings, merchant_id: str, permissions: Iterable[str] = (FULL,)
) -> ApiCredentials:
    kek = kek_from_setting(settings.key_encryption_key.get_secret_value())
    conn = psycopg2.connect(settings.db_dsn, options=db.connection_options(settings))
    try:
        with conn, conn.cursor() as cur:
            key_id, secret = new_api_key(cur, kek, merchant_id, permissions, "tests")
    finally:
        conn.close()
    return ApiCredentials(key_id, secret, merchant_id, tuple(permissions))


def signing_middleware(creds: ApiCredentials) -> Any:
    """An aiohttp client middleware that signs each request (method, raw path+query, body)."""

    async def sign(request: aiohttp.ClientRequest, handler: Any) -> aiohttp.ClientResponse:
        body = b"" if not request.body else await request.body.as_bytes()
        request.headers.update(creds.headers(request.method, request.url.raw_path_qs, body))
        return await handler(request)

    return sign


def signed_session(creds: ApiCredentials, **kwargs: Any) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(middlewares=(signing_middleware(creds),), **kwargs)


@pytest.fixture
def api_credentials(settings: Settings) -> Callable[..., ApiCredentials]:
    def make(merchant_id: str, permissions: Iterable[str] = (FULL,)) -> ApiCredentials:
        return create_api_credentials(settings, merchant_id, permissions)

    return make


@pytest.fixture(scope="session")
def secure_broker(data_root: Path) -> Iterator[str]:
    """A Tansu of its own for the secure worker: its consumer group, tables and produced events stay
    apart from the session worker's, whatever order the suites run in."""
    with running_tansu(data_root / "tansu-secure.log") as url:
        yield url


@pytest.fixture(scope="session")
async def secure_worker(worker_env: dict[str, str], secure_broker: str) -> AsyncIterator[WorkerProcess]:
    """A worker with the security layer on, on its own broker (same PostgreSQL, Redis and registry)."""
    env = worker_env | {"AUTH_ENABLED": "true", "KAFKA_BROKER": secure_broker}
    process = start_worker(f"worker-secure-{uuid.uuid4().hex[:6]}", env)
    try:
        await wait_ready(process)
        yield process
    finally:
        stop_process(process.process)
