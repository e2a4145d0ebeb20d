"""The service on a real Redis Cluster of three masters (REDIS_CLUSTER=true, D180): admission (allow-
list, replay, rate limit) for many merchants at once, whose keys live in different slots; the HTTP
pipeline with signed requests; the failed-authentication limit and the shred broadcast over cluster
pub/sub; the customer and settings caches and the sink's invalidation; the Shopify bucket. Then every
key the run left is checked for a TTL: `volatile-lru` evicts only keys that have one (D181)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from core_app.components import Components
from core_app.program_settings_store import RedisProgramSettingsCache
from core_app.redis_client import slot_of
from core_app.runtime import Runtime, open_runtime
from core_app.security import VIEW
from core_app.security.errors import Forbidden, RateLimited, Unauthenticated
from core_app.security.gate import Gate, allowlist_key
from core_app.security.shredding import KeyShredded
from core_app.services.shopify_pull import RestBucket
from core_app.settings import Settings
from core_app.sink import PostgresSink
from core_app.sink_sql import CUSTOMERS, SPECS
from tests.support.auth import create_api_credentials, signed_session
from tests.support.events import new_merchant
from tests.support.processes import eventually
from tests.support.redis_cluster import RedisClusterProcesses
from tests.support.security import ROUTES, open_layer, serve

LIMIT = 5
# Keys that are configuration, not cache: no TTL on purpose, so volatile-lru never evicts them (D181).
CONFIGURATION = ("ip_whitelist:", "feature_flags:")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterProcesses]:
    nodes = RedisClusterProcesses(Path(tmp_path_factory.mktemp("redis-cluster")))
    nodes.start()
    yield nodes
    nodes.stop()


@pytest.fixture(scope="module")
def on_cluster(settings: Settings, cluster: RedisClusterProcesses, registry_url: str) -> Settings:
    return settings.model_copy(
        update={
            "redis_cluster": True,
            "redis_url": cluster.url,
            "redis_key_prefix": f"cluster:{uuid.uuid4().hex[:6]}:",
            "schema_registry_url": registry_url,
            "rate_limit_per_second": LIMIT,
        }
    )


@pytest.fixture(scope="module")
async def runtime(on_cluster: Settings) -> AsyncIterator[Runtime]:
    opened = await open_runtime(on_cluster)  # the worker's own path: open_redis -> RedisCluster
    yield opened
    await opened.close()


def slot_count(keys: list[str]) -> int:
    return len({slot_of(key) for key in keys})


async def test_admission_for_many_merchants_in_one_batch(runtime: Runtime, on_cluster: Settings) -> None:
    gate = Gate(runtime.redis, prefix=on_cluster.redis_key_prefix, limit=LIMIT)
    assert gate.cluster
    merchants = [str(uuid.uuid4()) for _ in range(12)]
    assert slot_count([gate.key(allowlist_key(m)) for m in merchants]) > 1  # so the batch spans slots
    listed = merchants[0]
    await runtime.redis.sadd(gate.key(allowlist_key(listed)), "203.0.113.5")

    async def verdict(merchant: str, ip: str, replay: str | None = None) -> str:
        try:
            gate.enforce(
                await gate.admission(merchant, "GET:/core/v1/customers", ip, replay, 330 if replay else 0)
            )
        except RateLimited:
            return "limited"
        except Forbidden:
            return "forbidden"
        except Unauthenticated:
            return "replayed"
        return "admitted"

    # All at once: the requests reach the gate in one turn of the loop, so one batch over 12 merchants.
    answers = await asyncio.gather(
        *(verdict(m, "203.0.113.5") for m in merchants[1:] for _ in range(LIMIT + 2)),
        verdict(listed, "203.0.113.5"),
        verdict(listed, "198.51.100.7"),
        verdict(merchants[1], "203.0.113.9", replay="key:nonce-1"),
    )
    per_merchant = [answers[i * (LIMIT + 2) : (i + 1) * (LIMIT + 2)] for i in range(len(merchants) - 1)]
    for got in per_merchant:
        assert got == ["admitted"] * LIMIT + ["limited"] * 2
    assert answers[-3:] == ["admitted", "forbidden", "limited"]  # merchants[1]'s window is full
    assert await verdict(merchants[-1], "203.0.113.5", replay="k:n") == "limited"
    other = str(uuid.uuid4())
    assert await verdict(other, "203.0.113.5", replay="k:n") == "admitted"
    assert await verdict(other, "203.0.113.5", replay="k:n") == "replayed"
    await gate.ip_allowed(listed, "203.0.113.5")
    with pytest.raises(Forbidden):
        await gate.ip_allowed(listed, "198.51.100.7")


async def test_signed_requests_the_failure_limit_and_the_shred_broadcast(
    settings: Settings, on_cluster: Settings
) -> None:
    merchant = new_merchant(settings)
    creds = create_api_credentials(settings, merchant, [VIEW])
    options = {"auth_failure_limit": 2, "auth_failure_window": 30, "trusted_proxies": "127.0.0.0/8"}
    cluster_settings = on_cluster.model_copy(update={"auth_cache_ttl": 600})
    async with (
        open_layer(cluster_settings, **options) as first,
        open_layer(cluster_settings, **options) as second,
        serve(first, ROUTES) as url,
        signed_session(creds) as signed,
        aiohttp.ClientSession() as anonymous,
    ):
        await asyncio.wait_for(second.broadcast.subscribed.wait(), 10)
        statuses = []
        for _ in range(LIMIT + 1):
            async with signed.get(f"{url}/core/v1/whoami") as response:
                statuses.append(response.status)
        assert statuses == [200] * LIMIT + [429]

        attacker = {"X-Forwarded-For": "198.51.100.66"}
        for _ in range(2):
            async with anonymous.get(f"{url}/core/v1/whoami", headers=attacker) as response:
                assert response.status == 401

        async def blocked_on_second() -> bool:
            try:
                second.auth_failures.check("198.51.100.66")
            except RateLimited:
                return True
            return False

        await eventually(blocked_on_second, timeout=1.0, interval=0.02)

        customer = str(uuid.uuid4())
        token = await first.data_keys.encrypt_email(merchant, customer, "ana@example.com")
        assert await second.data_keys.decrypt_email(merchant, customer, token) == "ana@example.com"
        await first.data_keys.shred(merchant, customer)

        async def shredded_on_second() -> bool:
            try:
                await second.data_keys.decrypt_email(merchant, customer, token)
            except KeyShredded:
                return True
            return False

        await eventually(shredded_on_second, timeout=1.0, interval=0.02)


async def test_caches_the_sink_invalidation_and_the_shopify_bucket(
    runtime: Runtime, on_cluster: Settings
) -> None:
    assert (await runtime.is_ready())["redis"]
    components = Components.of(runtime)
    merchants = [str(uuid.uuid4()) for _ in range(6)]
    customers = [(m, str(uuid.uuid4())) for m in merchants for _ in range(3)]
    for merchant, customer in customers:
        await components.read_cache.put(merchant, customer, {"id": customer, "rfm_score": {"r": 1}})
    for merchant, customer in customers:
        assert (await components.read_cache.get(merchant, customer)) == {
            "id": customer,
            "rfm_score": {"r": 1},
        }
    settings_cache = RedisProgramSettingsCache(runtime.redis, on_cluster.redis_key_prefix)
    await settings_cache.put(merchants[0], {"merchant_id": merchants[0], "points_per_dollar": 3})
    assert (await settings_cache.get(merchants[0]))["points_per_dollar"] == 3

    # The sink deletes one batch's entries with one DEL over many slots (split per slot by the client).
    sink = PostgresSink(on_cluster, SPECS, resources=components.sink_resources, dead_letters=None)  # type: ignore[arg-type]
    keys = [runtime.redis_key(f"customer:{m}:{c}") for m, c in customers]
    assert slot_count(keys) > 1
    await sink._invalidate_cache(CUSTOMERS, [{"merchant_id": m, "customer_id": c} for m, c in customers])
    for merchant, customer in customers:
        assert await components.read_cache.get(merchant, customer) is None
    await components.read_cache.put(*customers[0], {"id": customers[0][1]})  # left for the TTL check

    bucket = RestBucket(components.shopify, "cluster-shop.myshopify.com", capacity=10)
    for _ in range(3):
        await bucket.take()
    await bucket.observe("9/10")
    assert bucket.stats.waited == 0
    await components.close_shopify()


async def test_every_key_left_carries_a_ttl_but_configuration(runtime: Runtime, on_cluster: Settings) -> None:
    """Runs after the others in this module: whatever they left must expire on its own, or be one of
    the configuration keys (allow-lists, flags) that volatile-lru must never evict."""
    prefix = on_cluster.redis_key_prefix
    seen: dict[str, int] = {}
    async for raw in runtime.redis.scan_iter(match=f"{prefix}*", count=1000):
        key = raw.decode()
        seen[key] = await runtime.redis.ttl(key)
    assert seen, "the tests above left no key to check"
    untimed = {key for key, ttl in seen.items() if ttl < 0}
    assert {key for key in untimed if not key.removeprefix(prefix).startswith(CONFIGURATION)} == set()
    kinds = {key.removeprefix(prefix).split(":")[0] for key in seen}
    assert {"customer", "settings", "rate_limit", "replay", "auth_failures", "shopify"} <= kinds, kinds
