"""The grpclib listener in-process, and the Auth / Roles clients against fake servers that speak the
real protocol (grpclib servers implementing the checked-in auth.v1 / roles.v1 contracts)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import pytest
from google.protobuf.struct_pb2 import Struct
from grpclib import GRPCError
from grpclib.client import Channel
from grpclib.const import Status
from grpclib.health.service import Health
from grpclib.health.v1.health_grpc import HealthStub
from grpclib.health.v1.health_pb2 import HealthCheckRequest, HealthCheckResponse
from grpclib.server import Server

from core_app.components import Components
from core_app.rpc.core_service import CoreService
from core_app.rpc.generated.core.v1 import core_pb2 as pb
from core_app.rpc.generated.core.v1.core_grpc import CoreServiceStub
from core_app.runtime import Runtime
from core_app.security.generated.auth.v1 import auth_pb2
from core_app.security.generated.auth.v1.auth_grpc import AuthServiceBase
from core_app.security.generated.roles.v1 import roles_pb2
from core_app.security.generated.roles.v1.roles_grpc import RolesServiceBase
from core_app.security.grpc_listener import install_grpc_security
from core_app.security.layer import SecurityLayer
from core_app.security.principal import EDIT, FULL, VIEW
from core_app.settings import Settings
from tests.support.auth import bearer, grpc_metadata, mint_jwt
from tests.support.processes import free_port
from tests.support.security import ROUTES, open_layer, serve


class FakeAuth(AuthServiceBase):
    def __init__(self) -> None:
        self.tokens: dict[str, auth_pb2.ValidateTokenResponse] = {}
        self.inactive: set[str] = set()
        self.calls = {"token": 0, "merchant": 0}

    async def ValidateToken(self, stream) -> None:
        request = await stream.recv_message()
        self.calls["token"] += 1
        assert request.audience == "loyalnest-core"
        reply = self.tokens.get(request.token, auth_pb2.ValidateTokenResponse(valid=False, reason="unknown"))
        await stream.send_message(reply)

    async def ValidateMerchant(self, stream) -> None:
        request = await stream.recv_message()
        self.calls["merchant"] += 1
        inactive = request.merchant_id in self.inactive
        await stream.send_message(
            auth_pb2.ValidateMerchantResponse(valid=not inactive, reason="suspended" if inactive else "")
        )


class FakeRoles(RolesServiceBase):
    def __init__(self) -> None:
        self.permissions: dict[str, list[str]] = {}
        self.calls = 0

    async def GetPermissions(self, stream) -> None:
        request = await stream.recv_message()
        self.calls += 1
        granted = self.permissions.get(request.subject, [])
        await stream.send_message(roles_pb2.GetPermissionsResponse(permissions=granted))


@asynccontextmanager
async def grpc_server(handlers: list, layer: SecurityLayer | None = None) -> AsyncIterator[int]:
    server = Server(handlers)
    if layer is not None:
        install_grpc_security(server, lambda: layer)
    port = free_port()
    await server.start("127.0.0.1", port)
    try:
        yield port
    finally:
        server.close()
        await server.wait_closed()


def core_service(layer: SecurityLayer) -> CoreService:
    """The handler over the layer's own pool and Redis (no codec: these RPCs never decode events)."""
    runtime = Runtime(layer.settings, layer.pool, layer.redis, codec=None, health=None)  # type: ignore[arg-type]
    return CoreService(Components.of(runtime, layer))


@asynccontextmanager
async def core_client(layer: SecurityLayer) -> AsyncIterator[CoreServiceStub]:
    async with grpc_server([core_service(layer), Health()], layer) as port:
        channel = Channel("127.0.0.1", port)
        try:
            yield CoreServiceStub(channel)
        finally:
            channel.close()


async def status_of(call) -> Status | None:
    try:
        await call
    except GRPCError as exc:
        return exc.status
    return None


def settings_request(merchant: str) -> pb.UpdateProgramSettingsRequest:
    thresholds, config = Struct(), Struct()
    thresholds.update({"recency": {"min": 1, "max": 2}})
    return pb.UpdateProgramSettingsRequest(
        merchant_id=merchant, rfm_thresholds=thresholds, loyalty_config=config
    )


async def test_every_rpc_needs_a_valid_token_and_the_callers_merchant(settings: Settings) -> None:
    merchant, other = str(uuid.uuid4()), str(uuid.uuid4())
    async with open_layer(settings) as layer, core_client(layer) as stub:
        read = pb.GetCustomerRequest(merchant_id=other, customer_id=str(uuid.uuid4()))
        assert await status_of(stub.GetCustomer(read)) == Status.UNAUTHENTICATED
        expired = grpc_metadata(mint_jwt(merchant, [FULL], expires_in=-60))
        assert await status_of(stub.GetCustomer(read, metadata=expired)) == Status.UNAUTHENTICATED
        forged = grpc_metadata(mint_jwt(merchant, [FULL], secret="x" * 40))
        assert await status_of(stub.GetCustomer(read, metadata=forged)) == Status.UNAUTHENTICATED
        good = grpc_metadata(mint_jwt(merchant, [FULL]))
        try:
            await stub.GetCustomer(read, metadata=good)
        except GRPCError as exc:
            assert exc.status == Status.PERMISSION_DENIED and "merchant" in exc.message
        else:
            raise AssertionError("another merchant's customer was served")
        edit_only = grpc_metadata(mint_jwt(merchant, [EDIT]))
        refused = await status_of(stub.UpdateProgramSettings(settings_request(merchant), metadata=edit_only))
        assert refused == Status.PERMISSION_DENIED
        view_only = grpc_metadata(mint_jwt(merchant, [VIEW]))
        create = pb.CreateCustomerRequest(merchant_id=merchant, email="a@example.com")
        assert await status_of(stub.CreateCustomer(create, metadata=view_only)) == Status.PERMISSION_DENIED


async def test_health_checks_need_no_credentials(settings: Settings) -> None:
    async with open_layer(settings) as layer, grpc_server([core_service(layer), Health()], layer) as port:
        channel = Channel("127.0.0.1", port)
        try:
            reply = await HealthStub(channel).Check(HealthCheckRequest())
            assert reply.status == HealthCheckResponse.SERVING
        finally:
            channel.close()


async def test_101st_call_in_a_second_is_resource_exhausted(settings: Settings) -> None:
    merchant = str(uuid.uuid4())
    async with open_layer(settings) as layer, core_client(layer) as stub:
        metadata = grpc_metadata(mint_jwt(merchant, [VIEW]))
        bad_id = pb.GetCustomerRequest(merchant_id=merchant, customer_id="not-a-uuid")  # cheap: 400-class
        started = time.monotonic()
        answers = await asyncio.gather(
            *(status_of(stub.GetCustomer(bad_id, metadata=metadata)) for _ in range(100))
        )
        last = await status_of(stub.GetCustomer(bad_id, metadata=metadata))
        elapsed = time.monotonic() - started
        assert answers == [Status.INVALID_ARGUMENT] * 100
        if elapsed >= 1.0:
            pytest.skip(f"100 calls took {elapsed:.2f} s here; the window is one second")
        assert last == Status.RESOURCE_EXHAUSTED


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[FakeAuth, FakeRoles, str, str]]:
    auth, roles = FakeAuth(), FakeRoles()
    async with grpc_server([auth]) as auth_port, grpc_server([roles]) as roles_port:
        yield auth, roles, f"127.0.0.1:{auth_port}", f"127.0.0.1:{roles_port}"


async def test_tokens_go_through_the_auth_service_and_answers_are_cached(settings: Settings, fakes) -> None:
    auth, _roles, auth_target, _roles_target = fakes
    merchant, other = str(uuid.uuid4()), str(uuid.uuid4())
    expires = int(time.time()) + 600
    auth.tokens["opaque-ana"] = auth_pb2.ValidateTokenResponse(
        valid=True, subject="ana", merchant_id=merchant, permissions=[FULL], expires_at=expires
    )
    auth.tokens["opaque-suspended"] = auth_pb2.ValidateTokenResponse(
        valid=True, subject="bob", merchant_id=other, permissions=[FULL], expires_at=expires
    )
    auth.inactive.add(other)
    async with open_layer(settings, auth_grpc_target=auth_target) as layer, core_client(layer) as stub:
        request = pb.GetCustomerRequest(merchant_id=other, customer_id=str(uuid.uuid4()))
        for _ in range(3):
            denied = await status_of(stub.GetCustomer(request, metadata=grpc_metadata("opaque-ana")))
            assert denied == Status.PERMISSION_DENIED  # authenticated by Auth, refused on the merchant
        assert auth.calls == {"token": 1, "merchant": 1}
        unknown = await status_of(stub.GetCustomer(request, metadata=grpc_metadata("opaque-nobody")))
        assert unknown == Status.UNAUTHENTICATED
        suspended = await status_of(stub.GetCustomer(request, metadata=grpc_metadata("opaque-suspended")))
        assert suspended == Status.PERMISSION_DENIED
        # A local HS256 token means nothing once Auth validates tokens.
        local = grpc_metadata(mint_jwt(merchant, [FULL]))
        assert await status_of(stub.GetCustomer(request, metadata=local)) == Status.UNAUTHENTICATED

        async with serve(layer, ROUTES) as url, aiohttp.ClientSession() as http:
            async with http.post(f"{url}/graphql", json={}, headers=bearer("opaque-ana")) as response:
                assert response.status == 200 and (await response.json())["subject"] == "ana"


async def test_permissions_come_from_the_roles_service_when_configured(settings: Settings, fakes) -> None:
    _auth, roles, _auth_target, roles_target = fakes
    merchant = str(uuid.uuid4())
    roles.permissions["carol"] = [VIEW]
    async with open_layer(settings, roles_grpc_target=roles_target) as layer, core_client(layer) as stub:
        token = grpc_metadata(mint_jwt(merchant, [FULL], subject="carol"))  # the claim says full...
        refused = await status_of(stub.UpdateProgramSettings(settings_request(merchant), metadata=token))
        assert refused == Status.PERMISSION_DENIED  # ...Roles says view only
        assert roles.calls == 1


async def test_unreachable_auth_service_fails_closed(settings: Settings) -> None:
    dead = f"127.0.0.1:{free_port()}"
    async with open_layer(settings, auth_grpc_target=dead) as layer, core_client(layer) as stub:
        request = pb.GetCustomerRequest(merchant_id=str(uuid.uuid4()), customer_id=str(uuid.uuid4()))
        assert await status_of(stub.GetCustomer(request, metadata=grpc_metadata("t"))) == Status.UNAVAILABLE
