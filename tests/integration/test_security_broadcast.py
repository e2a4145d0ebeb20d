"""What every worker must hear within a second, over real Redis pub/sub between two security layers
(each with its own Redis client and pool, like two workers): a client address blocked after too many
failed authentications (refused before its credentials are read, over REST and gRPC, D183), and a
data-key cache that empties when its subscription comes back after a Redis restart (D184; the shred
itself is tested across a worker process in test_crypto_shredding.py and test_security_stores.py)."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import aiohttp
from grpclib import GRPCError
from grpclib.client import Channel
from grpclib.const import Status
from grpclib.server import Server
from redis.asyncio import Redis

from core_app.components import Components
from core_app.rpc.core_service import CoreService
from core_app.rpc.generated.core.v1 import core_pb2 as pb
from core_app.rpc.generated.core.v1.core_grpc import CoreServiceStub
from core_app.security import VIEW
from core_app.security.auth_failures import failures_key
from core_app.security.grpc_listener import install_grpc_security
from core_app.security.shredding import KeyShredded
from core_app.settings import Settings
from tests.support.auth import create_api_credentials, grpc_metadata, mint_jwt, signed_session
from tests.support.events import new_merchant
from tests.support.processes import PrivateRedis, eventually
from tests.support.security import ROUTES, open_layer, serve

LIMIT, WINDOW = 3, 3


async def status(http: aiohttp.ClientSession, url: str, **headers: str) -> tuple[int, dict]:
    async with http.get(f"{url}/core/v1/whoami", headers=headers) as response:
        return response.status, await response.json()


async def test_an_address_over_the_failure_limit_is_refused_pre_auth_on_every_worker(
    settings: Settings,
) -> None:
    merchant = new_merchant(settings)
    creds = create_api_credentials(settings, merchant, [VIEW])
    limited = {"auth_failure_limit": LIMIT, "auth_failure_window": WINDOW, "trusted_proxies": "127.0.0.0/8"}
    attacker, bystander = f"198.51.100.{uuid.uuid4().int % 250}", "198.51.100.251"
    redis = Redis.from_url(settings.redis_dsn)
    await redis.delete(failures_key(settings.redis_key_prefix, attacker))
    async with (
        open_layer(settings, **limited) as first_layer,
        open_layer(settings, **limited) as second_layer,
        serve(first_layer, ROUTES) as first,
        serve(second_layer, ROUTES) as second,
        aiohttp.ClientSession() as anonymous,
        signed_session(creds) as signed,
    ):
        await asyncio.wait_for(second_layer.broadcast.subscribed.wait(), 10)
        from_attacker = {"X-Forwarded-For": attacker}
        assert (await status(signed, second, **from_attacker))[0] == 200
        for _ in range(LIMIT):  # wrong credentials, all on the first worker
            code, body = await status(anonymous, first, **from_attacker, **{"X-Api-Key": "guess"})
            assert code == 401, body
        started = time.monotonic()

        async def refused_on_second() -> bool:
            code, body = await status(signed, second, **from_attacker)  # valid credentials now
            return code == 429 and body["error"]["reason"] == "auth_failures"

        await eventually(refused_on_second, timeout=1.0, interval=0.02)
        assert time.monotonic() - started < 1.0
        async with signed.get(f"{first}/core/v1/whoami", headers=from_attacker) as response:
            assert response.status == 429 and 1 <= int(response.headers["Retry-After"]) <= WINDOW
        # Refused before authentication: these are not counted again, and others are not affected.
        assert int(await redis.get(failures_key(settings.redis_key_prefix, attacker))) == LIMIT
        assert (await status(signed, first, **{"X-Forwarded-For": bystander}))[0] == 200

        async def let_in_again() -> bool:
            return (await status(signed, second, **from_attacker))[0] == 200

        await eventually(let_in_again, timeout=WINDOW + 2, interval=0.2)
    await redis.aclose()


async def test_good_requests_and_a_disabled_limit_count_nothing(settings: Settings) -> None:
    merchant = new_merchant(settings)
    creds = create_api_credentials(settings, merchant, [VIEW])
    address = f"203.0.113.{uuid.uuid4().int % 250}"
    redis = Redis.from_url(settings.redis_dsn)
    key = failures_key(settings.redis_key_prefix, address)
    await redis.delete(key)
    proxied = {"trusted_proxies": "127.0.0.0/8"}
    async with (
        open_layer(settings, auth_failure_limit=0, **proxied) as off,
        serve(off, ROUTES) as url,
        aiohttp.ClientSession() as anonymous,
        signed_session(creds) as signed,
    ):
        for _ in range(LIMIT + 2):
            assert (await status(anonymous, url, **{"X-Forwarded-For": address}))[0] == 401
        assert await redis.exists(key) == 0
    async with (
        open_layer(settings, auth_failure_limit=LIMIT, **proxied) as on,
        serve(on, ROUTES) as url,
        signed_session(creds) as signed,
    ):
        for _ in range(LIMIT + 2):
            assert (await status(signed, url, **{"X-Forwarded-For": address}))[0] == 200
        assert await redis.exists(key) == 0
    await redis.aclose()


async def test_a_resubscribed_worker_forgets_the_data_keys_it_cached(
    settings: Settings, tmp_path: Path
) -> None:
    """A shred broadcast while a worker's subscription is down is lost to it: when it subscribes
    again it empties its data-key cache, whatever the TTL."""
    private = PrivateRedis(tmp_path)
    private.start()
    merchant, customer = str(uuid.uuid4()), str(uuid.uuid4())
    try:
        on_private = {"redis_url": f"redis://127.0.0.1:{private.port}/0", "auth_cache_ttl": 600}
        async with open_layer(settings, **on_private) as layer:
            await asyncio.wait_for(layer.broadcast.subscribed.wait(), 10)
            token = await layer.data_keys.encrypt_email(merchant, customer, "ana@example.com")
            async with open_layer(settings) as eraser:  # on the shared Redis: its news cannot reach
                await eraser.data_keys.shred(merchant, customer)
            assert await layer.data_keys.decrypt_email(merchant, customer, token) == "ana@example.com"
            private.stop()
            await eventually(lambda: _not_set(layer.broadcast.subscribed), timeout=10, interval=0.05)
            private.start()
            await asyncio.wait_for(layer.broadcast.subscribed.wait(), 10)
            try:
                await layer.data_keys.decrypt_email(merchant, customer, token)
            except KeyShredded:
                pass
            else:
                raise AssertionError("the cached key outlived the lost subscription")
    finally:
        private.stop()


async def _not_set(event: asyncio.Event) -> bool:
    return not event.is_set()


async def test_grpc_calls_count_and_are_refused_the_same_way(settings: Settings) -> None:
    """The gRPC listener authenticates through the same layer: UNAUTHENTICATED counts, then a valid
    token from that address is RESOURCE_EXHAUSTED before it is read."""
    merchant = new_merchant(settings)
    address = f"192.0.2.{uuid.uuid4().int % 250}"
    redis = Redis.from_url(settings.redis_dsn)
    await redis.delete(failures_key(settings.redis_key_prefix, address))
    await redis.aclose()
    options = {"auth_failure_limit": 2, "auth_failure_window": 30, "trusted_proxies": "127.0.0.0/8"}
    async with open_layer(settings, **options) as layer:
        server = Server([CoreService(Components(settings))])  # refused calls never reach a handler
        install_grpc_security(server, lambda: layer)
        await server.start("127.0.0.1", 0)
        port = server._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        request = pb.GetCustomerRequest(merchant_id=merchant, customer_id=str(uuid.uuid4()))
        try:
            async with Channel("127.0.0.1", port) as channel:
                stub = CoreServiceStub(channel)

                async def status(token: str) -> Status:
                    metadata = {**grpc_metadata(token), "x-forwarded-for": address}
                    try:
                        await stub.GetCustomer(request, metadata=metadata)
                    except GRPCError as exc:
                        return exc.status
                    return Status.OK

                assert [await status("not-a-jwt") for _ in range(2)] == [Status.UNAUTHENTICATED] * 2
                assert await status(mint_jwt(merchant, [VIEW])) == Status.RESOURCE_EXHAUSTED
        finally:
            server.close()
            await server.wait_closed()
