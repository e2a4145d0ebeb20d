"""The security layer's state in real Redis and PostgreSQL: rate limit, allow-list, replay, API keys,
data keys (crypto-shredding), flags, and the audit rows operators' changes leave."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio import Redis

from core_app.migrate import migrate_redis_keys
from core_app.security.api_keys import new_api_key
from core_app.security.cli import change_allowlist, create_api_key, set_flag
from core_app.security.crypto import kek_from_setting
from core_app.security.errors import Forbidden, RateLimited, SecurityUnavailable, Unauthenticated
from core_app.security.flags import RFM_SCORE, SETTINGS_UPDATE
from core_app.security.gate import Gate, allowlist_key, rate_key, replay_key
from core_app.security.principal import EDIT, VIEW
from core_app.security.shredding import KeyShredded
from core_app.settings import Settings
from tests.support.db import pg
from tests.support.events import new_merchant
from tests.support.processes import free_port
from tests.support.security import open_layer


async def admit(
    gate: Gate,
    merchant: str,
    endpoint: str,
    client_ip: str | None,
    *,
    replay_id: str | None = None,
    replay_ttl: int = 0,
) -> None:
    """One request through the gate as the transports do: the verdict, then its enforcement."""
    gate.enforce(await gate.admission(merchant, endpoint, client_ip, replay_id, replay_ttl))


def audit_rows(settings: Settings, action: str, entity_id: str) -> list[tuple]:
    with pg(settings) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT actor, merchant_id::text, details FROM audit_logs WHERE action = %s AND entity_id = %s",
            (action, entity_id),
        )
        return cur.fetchall()


@pytest.fixture
async def redis_pair(settings: Settings):
    """Two Redis clients, as two workers would have."""
    first, second = Redis.from_url(settings.redis_dsn), Redis.from_url(settings.redis_dsn)
    yield first, second
    await first.aclose()
    await second.aclose()


async def test_101st_request_in_a_second_is_refused_across_two_workers(
    settings: Settings, redis_pair
) -> None:
    gates = [Gate(r, prefix=settings.redis_key_prefix, limit=100) for r in redis_pair]
    merchant = str(uuid.uuid4())
    started = time.monotonic()
    await asyncio.gather(*(admit(gates[i % 2], merchant, "GET:/core/v1/customers", None) for i in range(100)))
    with pytest.raises(RateLimited) as refused:
        await admit(gates[1], merchant, "GET:/core/v1/customers", None)
    assert time.monotonic() - started < 1.0, "the 100 requests must fit in one second for this test"
    assert refused.value.retry_after >= 1 and refused.value.http_status == 429
    # other endpoints and other merchants have their own counters
    await admit(gates[0], merchant, "POST:/core/v1/customers", None)
    await admit(gates[0], str(uuid.uuid4()), "GET:/core/v1/customers", None)
    ttl = await redis_pair[0].ttl(settings.redis_key_prefix + rate_key(merchant, "GET:/core/v1/customers"))
    assert 0 < ttl <= 60
    await asyncio.sleep(1.05)  # the window slides: admitted again
    await admit(gates[1], merchant, "GET:/core/v1/customers", None)


async def test_replayed_signature_is_refused_once_seen(settings: Settings, redis_pair) -> None:
    gate = Gate(redis_pair[0], prefix=settings.redis_key_prefix)
    merchant, replay = str(uuid.uuid4()), f"lnk_x:{uuid.uuid4().hex}"
    await admit(gate, merchant, "e", None, replay_id=replay, replay_ttl=330)
    with pytest.raises(Unauthenticated, match="replay"):
        await admit(
            Gate(redis_pair[1], prefix=settings.redis_key_prefix),
            merchant,
            "e",
            None,
            replay_id=replay,
            replay_ttl=330,
        )


async def test_admissions_batched_into_one_call_are_still_checked_one_by_one(
    settings: Settings, redis_pair
) -> None:
    """Concurrent requests share script calls (Gate batches them); each is still counted, checked for
    replay and allow-listed on its own, in arrival order."""
    gate = Gate(redis_pair[0], prefix=settings.redis_key_prefix, limit=100)
    merchant, replay = str(uuid.uuid4()), f"lnk_x:{uuid.uuid4().hex}"
    outcomes = await asyncio.gather(
        *(admit(gate, merchant, "GET:/core/v1/customers", None) for _ in range(150)),
        return_exceptions=True,
    )
    assert outcomes[:100] == [None] * 100
    assert all(isinstance(o, RateLimited) for o in outcomes[100:])
    first, second = await asyncio.gather(
        admit(gate, merchant, "other", None, replay_id=replay, replay_ttl=330),
        admit(gate, merchant, "other", None, replay_id=replay, replay_ttl=330),
        return_exceptions=True,
    )
    assert first is None and isinstance(second, Unauthenticated)
    limited = f"lnk_x:{uuid.uuid4().hex}"  # a refused request does not use up its signature
    with pytest.raises(RateLimited):
        await admit(gate, merchant, "GET:/core/v1/customers", None, replay_id=limited, replay_ttl=330)
    assert await redis_pair[0].exists(settings.redis_key_prefix + replay_key(merchant, limited)) == 0
    await admit(gate, merchant, "another", None, replay_id=limited, replay_ttl=330)
    assert await redis_pair[0].exists(settings.redis_key_prefix + replay_key(merchant, limited)) == 1
    listed = str(uuid.uuid4())
    await redis_pair[0].sadd(settings.redis_key_prefix + allowlist_key(listed), "203.0.113.5")
    try:
        allowed, refused = await asyncio.gather(
            admit(gate, listed, "e", "203.0.113.5"),
            admit(gate, listed, "e", "198.51.100.7"),
            return_exceptions=True,
        )
        assert allowed is None and isinstance(refused, Forbidden)
    finally:
        await redis_pair[0].delete(settings.redis_key_prefix + allowlist_key(listed))


async def test_allow_list_changes_apply_at_once_and_are_audited(settings: Settings, redis_pair) -> None:
    gate = Gate(redis_pair[0], prefix=settings.redis_key_prefix)
    merchant = new_merchant(settings)
    await admit(gate, merchant, "e", "198.51.100.7")  # no list: everyone
    members = change_allowlist(settings, merchant, "add", ["203.0.113.5", "::ffff:198.51.100.9"], "cli:test")
    assert members == {"203.0.113.5", "198.51.100.9"}
    # Configuration, not cache: no TTL, so volatile-lru never evicts it and it never lapses (D181).
    assert await redis_pair[0].ttl(settings.redis_key_prefix + allowlist_key(merchant)) == -1
    with pytest.raises(Forbidden, match="allow-list"):
        await admit(gate, merchant, "e", "198.51.100.7")
    with pytest.raises(Forbidden):
        await admit(gate, merchant, "e", None)  # unknown address while a list is set
    await admit(gate, merchant, "e", "198.51.100.9")
    await gate.ip_allowed(merchant, "203.0.113.5")
    change_allowlist(settings, merchant, "clear", [], "cli:test")
    await admit(gate, merchant, "e", "198.51.100.7")
    assert len(audit_rows(settings, "ip_allowlist_add", merchant)) == 1
    assert len(audit_rows(settings, "ip_allowlist_clear", merchant)) == 1


@pytest.mark.parametrize(("mode", "refused"), [("closed", True), ("open", False)])
async def test_redis_down_fails_closed_or_open_as_configured(mode: str, refused: bool) -> None:
    dead = Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.2, socket_timeout=0.2)
    gate = Gate(dead, fail_mode=mode)
    try:
        if refused:
            with pytest.raises(SecurityUnavailable):
                await admit(gate, "m", "e", None)
        else:
            await admit(gate, "m", "e", None)
    finally:
        await dead.aclose()


async def test_api_keys_hold_no_usable_secret_and_can_be_revoked(settings: Settings) -> None:
    merchant = new_merchant(settings)
    key_id, secret = create_api_key(settings, merchant, [VIEW], "cli:test")
    assert audit_rows(settings, "api_key_created", key_id)
    with pg(settings) as conn, conn.cursor() as cur:
        cur.execute("SELECT secret_wrapped FROM api_keys WHERE key_id = %s", (key_id,))
        [(wrapped,)] = cur.fetchall()
    assert secret.encode() not in bytes(wrapped)
    async with open_layer(settings) as layer:
        found = await layer.api_keys.lookup(key_id)
        assert found is not None and found.secret == secret and found.merchant_id == merchant
        assert found.principal.permissions == {VIEW}
        assert await layer.api_keys.lookup("lnk_" + "0" * 24) is None
        assert await layer.api_keys.lookup("'; DROP TABLE api_keys; --") is None
        with pg(settings) as conn, conn.cursor() as cur:
            cur.execute("UPDATE api_keys SET revoked_at = now() WHERE key_id = %s", (key_id,))
        assert await layer.api_keys.lookup(key_id) is not None  # cached for AUTH_CACHE_TTL
        layer.api_keys.forget(key_id)
        assert await layer.api_keys.lookup(key_id) is None


async def test_expired_api_key_is_refused(settings: Settings) -> None:
    merchant = new_merchant(settings)
    kek = kek_from_setting(settings.key_encryption_key.get_secret_value())
    with pg(settings) as conn, conn.cursor() as cur:
        past = datetime.now(UTC).replace(tzinfo=None) - timedelta(seconds=5)
        future = past + timedelta(hours=1)
        expired, _ = new_api_key(cur, kek, merchant, [EDIT], "expired", past)
        valid, _ = new_api_key(cur, kek, merchant, [EDIT], "valid", future)
    async with open_layer(settings) as layer:
        assert await layer.api_keys.lookup(expired) is None
        assert await layer.api_keys.lookup(valid) is not None


async def test_shredding_makes_every_copy_unreadable_and_is_final(settings: Settings) -> None:
    merchant, customer = str(uuid.uuid4()), str(uuid.uuid4())
    async with open_layer(settings) as layer, open_layer(settings, auth_cache_ttl=600) as other_worker:
        await asyncio.wait_for(other_worker.broadcast.subscribed.wait(), 10)
        token = await layer.data_keys.encrypt_email(merchant, customer, "ana@example.com")
        assert "ana" not in token and token.startswith("ce1:")
        assert await layer.data_keys.encrypt_email(merchant, customer, "ana@example.com") != token
        assert await other_worker.data_keys.decrypt_email(merchant, customer, token) == "ana@example.com"
        with pg(settings) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT wrapped_key FROM customer_data_keys WHERE merchant_id = %s AND customer_id = %s",
                (merchant, customer),
            )
            [(wrapped,)] = cur.fetchall()
            assert wrapped is not None and len(bytes(wrapped)) == 1 + 12 + 32 + 16

        assert await layer.data_keys.shred(merchant, customer) is True
        assert await layer.data_keys.shred(merchant, customer) is False  # idempotent
        with pytest.raises(KeyShredded):
            await layer.data_keys.decrypt_email(merchant, customer, token)
        with pytest.raises(KeyShredded):  # no new key for an erased customer
            await layer.data_keys.encrypt_email(merchant, customer, "ana@example.com")
        # The other worker dropped its cached key on the shred's broadcast (D184), TTL or not.
        await asyncio.sleep(0.2)
        with pytest.raises(KeyShredded):
            await other_worker.data_keys.decrypt_email(merchant, customer, token)
        with pg(settings) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT wrapped_key, shredded_at FROM customer_data_keys"
                " WHERE merchant_id = %s AND customer_id = %s",
                (merchant, customer),
            )
            [(wrapped, shredded_at)] = cur.fetchall()
        assert wrapped is None and shredded_at is not None


async def test_shredding_a_customer_never_seen_leaves_a_tombstone(settings: Settings) -> None:
    merchant, customer = str(uuid.uuid4()), str(uuid.uuid4())
    async with open_layer(settings) as layer:
        assert await layer.data_keys.shred(merchant, customer) is False
        with pytest.raises(KeyShredded):
            await layer.data_keys.encrypt_email(merchant, customer, "x@example.com")


async def test_flags_change_at_once_and_the_change_is_audited(settings: Settings) -> None:
    merchant = new_merchant(settings)
    async with open_layer(settings) as layer:
        assert await layer.flags.enabled(merchant, RFM_SCORE)
        set_flag(settings, merchant, RFM_SCORE, False, "cli:ops")
        assert not await layer.flags.enabled(merchant, RFM_SCORE)
        assert await layer.flags.enabled(merchant, SETTINGS_UPDATE)
        set_flag(settings, merchant, RFM_SCORE, True, "cli:ops")
        assert await layer.flags.enabled(merchant, RFM_SCORE)
    rows = audit_rows(settings, "feature_flag_toggled", RFM_SCORE)
    mine = [r for r in rows if r[1] == merchant]
    assert [r[2]["on"] for r in mine] == [False, True] and mine[0][0] == "cli:ops"


async def test_core_migrate_moves_allow_lists_to_their_tagged_names_and_drops_the_ttl(
    settings: Settings, redis_pair
) -> None:
    redis, prefix = redis_pair[0], settings.redis_key_prefix
    legacy_merchant, tagged_merchant = str(uuid.uuid4()), str(uuid.uuid4())
    legacy = f"{prefix}ip_whitelist:{legacy_merchant}"  # the name before D180
    await redis.sadd(legacy, "203.0.113.5", "203.0.113.6")
    await redis.expire(legacy, 7 * 24 * 3600)
    await redis.sadd(prefix + allowlist_key(tagged_merchant), "198.51.100.1")
    await redis.expire(prefix + allowlist_key(tagged_merchant), 7 * 24 * 3600)
    migrate_redis_keys(settings)
    migrate_redis_keys(settings)  # idempotent
    assert await redis.exists(legacy) == 0
    moved = prefix + allowlist_key(legacy_merchant)
    assert await redis.smembers(moved) == {b"203.0.113.5", b"203.0.113.6"}
    assert await redis.ttl(moved) == -1 and await redis.ttl(prefix + allowlist_key(tagged_merchant)) == -1
    gate = Gate(redis, prefix=prefix)
    with pytest.raises(Forbidden):
        await admit(gate, legacy_merchant, "e", "198.51.100.7")
    await redis.delete(moved, prefix + allowlist_key(tagged_merchant))
