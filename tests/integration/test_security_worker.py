"""The security layer in a real worker: flags and the allow-list change without a restart, the 101st
request in a second gets 429, internal routes want the internal token."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from grpclib import GRPCError
from grpclib.client import Channel
from grpclib.const import Status

from core_app.rpc.generated.core.v1 import core_pb2 as pb
from core_app.rpc.generated.core.v1.core_grpc import CoreServiceStub
from core_app.security.cli import change_allowlist, set_flag
from core_app.security.flags import RFM_SCORE
from core_app.security.principal import VIEW
from core_app.settings import DEV_INTERNAL_TOKEN, Settings
from tests.auth import create_api_credentials, grpc_metadata, mint_jwt, signed_session
from tests.helpers import WorkerProcess
from tests.integration.events import insert_customers, new_merchant


async def test_flag_off_then_on_without_restart(secure_worker: WorkerProcess, settings: Settings) -> None:
    merchant = new_merchant(settings)
    [(customer, _)] = insert_customers(settings, merchant, 1)
    channel = Channel("127.0.0.1", secure_worker.grpc_port)
    stub, metadata = CoreServiceStub(channel), grpc_metadata(mint_jwt(merchant, [VIEW]))
    request = pb.GetCustomerRFMRequest(merchant_id=merchant, customer_id=customer)
    try:
        with pytest.raises(GRPCError) as before:
            await stub.GetCustomerRFM(request, metadata=metadata)
        assert before.value.status == Status.NOT_FOUND  # allowed; the customer has no score yet
        set_flag(settings, merchant, RFM_SCORE, False, "cli:test")
        with pytest.raises(GRPCError) as off:
            await stub.GetCustomerRFM(request, metadata=metadata)
        assert off.value.status == Status.PERMISSION_DENIED and RFM_SCORE in off.value.message
        set_flag(settings, merchant, RFM_SCORE, True, "cli:test")
        with pytest.raises(GRPCError) as on:
            await stub.GetCustomerRFM(request, metadata=metadata)
        assert on.value.status == Status.NOT_FOUND
    finally:
        channel.close()


async def test_allow_list_without_restart(secure_worker: WorkerProcess, settings: Settings) -> None:
    merchant = new_merchant(settings)
    [(customer, _)] = insert_customers(settings, merchant, 1)
    creds = create_api_credentials(settings, merchant, [VIEW])
    params = {"merchant_id": merchant, "customer_id": customer}
    async with signed_session(creds) as http:
        async with http.get(f"{secure_worker.url}/core/v1/customers", params=params) as response:
            assert response.status == 200
        change_allowlist(settings, merchant, "add", ["203.0.113.77"], "cli:test")
        async with http.get(f"{secure_worker.url}/core/v1/customers", params=params) as response:
            assert response.status == 403
        change_allowlist(settings, merchant, "add", ["127.0.0.1"], "cli:test")
        async with http.get(f"{secure_worker.url}/core/v1/customers", params=params) as response:
            assert response.status == 200
        change_allowlist(settings, merchant, "clear", [], "cli:test")


async def test_101st_rest_request_in_a_second_is_429(
    secure_worker: WorkerProcess, settings: Settings
) -> None:
    merchant = new_merchant(settings)
    creds = create_api_credentials(settings, merchant, [VIEW])
    params = {"merchant_id": merchant, "customer_id": "not-a-uuid"}  # a cheap 400 after admission
    async with signed_session(creds, connector=aiohttp.TCPConnector(limit=20)) as http:

        async def call() -> tuple[int, str | None]:
            async with http.get(f"{secure_worker.url}/core/v1/customers", params=params) as response:
                return response.status, response.headers.get("Retry-After")

        started = time.monotonic()
        first = await asyncio.gather(*(call() for _ in range(100)))
        status, retry_after = await call()
        elapsed = time.monotonic() - started
    assert [s for s, _ in first] == [400] * 100
    if elapsed >= 1.0:
        pytest.skip(f"100 requests took {elapsed:.2f} s here; the window is one second")
    assert status == 429 and retry_after is not None and int(retry_after) >= 1


async def test_internal_routes_want_the_internal_token(
    secure_worker: WorkerProcess, settings: Settings
) -> None:
    merchant = new_merchant(settings)
    [(customer, _)] = insert_customers(settings, merchant, 1)
    url = f"{secure_worker.url}/internal/v1/customers/{merchant}/{customer}"
    async with aiohttp.ClientSession() as http:
        async with http.get(url) as response:
            assert response.status == 401
        async with http.get(url, headers={"X-Internal-Token": DEV_INTERNAL_TOKEN}) as response:
            assert response.status in (200, 404)  # the table's value, or none yet
