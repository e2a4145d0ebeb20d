"""Merchants: `core merchant create|list|show` (a real subprocess), the service's install,
reinstall and uninstall, and the token kept envelope-encrypted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

import aiopg
import pytest

from core_app.domain.errors import Conflict, ValidationFailed
from core_app.security.crypto import kek_from_setting
from core_app.services import merchants
from core_app.settings import Settings
from tests.support.db import pg


def shop() -> str:
    return f"shop-{uuid.uuid4().hex[:10]}.myshopify.com"


def core(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"CORE_DB_NAME": settings.core_db_name, "CORE_ENV": "test", "LOG_JSON": "false"}
    return subprocess.run(
        [sys.executable, "-m", "core_app", *args], env=env, capture_output=True, text=True, timeout=60
    )


def audit_actions(settings: Settings, merchant_id: str) -> list[tuple[str, str]]:
    with pg(settings) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT action, actor FROM audit_logs WHERE merchant_id = %s ORDER BY created_at", (merchant_id,)
        )
        return cur.fetchall()


def test_the_merchant_commands_create_list_and_show_and_are_audited(settings: Settings) -> None:
    domain = shop()
    made = core(settings, "merchant", "create", "--shop", domain, "--name", "متجر 🎉", "--actor", "ops")
    assert made.returncode == 0, made.stderr
    merchant = json.loads(made.stdout)
    assert merchant["shop_domain"] == domain and merchant["name"] == "متجر 🎉"
    assert merchant["status"] == "installed" and merchant["has_token"] is False
    uuid.UUID(merchant["id"])

    shown = core(settings, "merchant", "show", domain, "--actor", "ops")
    assert shown.returncode == 0 and json.loads(shown.stdout)["id"] == merchant["id"]
    listed = core(settings, "merchant", "list", "--limit", "1000")
    assert merchant["id"] in {m["id"] for m in json.loads(listed.stdout)}
    again = core(settings, "merchant", "create", "--shop", domain)  # refusals: exit 1, one line
    assert (
        again.returncode == 1
        and again.stderr.strip() == f"core merchant create: shop: {domain} is already a merchant"
    )
    assert audit_actions(settings, merchant["id"]) == [
        ("merchant.created", "cli:ops"),
        ("merchant.viewed", "cli:ops"),
    ]


async def test_show_finds_by_id_or_shop_and_refuses_unknown_ones(pool: aiopg.Pool) -> None:
    from core_app.domain.errors import NotFound

    made = await merchants.create_merchant(pool, shop(), None, "t")
    assert (await merchants.show_merchant(pool, made["id"], "t"))["shop_domain"] == made["shop_domain"]
    assert (await merchants.show_merchant(pool, made["shop_domain"], "t"))["id"] == made["id"]
    with pytest.raises(NotFound):
        await merchants.show_merchant(pool, str(uuid.uuid4()), "t")
    with pytest.raises(ValidationFailed):
        await merchants.list_merchants(pool, "t", status="deleted")


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "Shop.myshopify.com",
        "x.myshopify.com.evil.com",
        "x.myshopify.com:443",
        "-x.myshopify.com",
        "a@x.myshopify.com",
        "x.myshopify.com/",
        "x.myshopify.com.",
        "x..myshopify.com",
        "\uff58.myshopify.com",  # fullwidth x
    ],
)
async def test_create_refuses_a_shop_that_is_not_a_permanent_domain(pool: aiopg.Pool, bad: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        await merchants.create_merchant(pool, bad, None, "test")
    assert refused.value.field == "shop"


async def test_install_seals_the_token_and_reinstall_keeps_the_merchant(
    pool: aiopg.Pool, settings: Settings
) -> None:
    kek = kek_from_setting(settings.key_encryption_key.get_secret_value())
    domain = shop()
    first, reactivated = await merchants.install(pool, kek, domain, "shpat_first", ["read_customers"], "t")
    assert not reactivated and first["has_token"] and first["scopes"] == ["read_customers"]
    assert await merchants.access_token(pool, kek, first["id"]) == "shpat_first"
    with pg(settings) as conn, conn.cursor() as cur:
        cur.execute("SELECT token_key_wrapped, token_sealed FROM merchants WHERE id = %s", (first["id"],))
        wrapped, sealed = cur.fetchone()
    assert b"shpat_first" not in bytes(wrapped) + bytes(sealed)

    # an uninstall delivered late (triggered before the install) changes nothing
    stale = datetime.now(UTC).replace(tzinfo=None) - timedelta(hours=1)
    assert await merchants.uninstall(pool, domain, "t", triggered_at=stale) is None
    gone = await merchants.uninstall(pool, domain, "t")
    assert gone is not None and gone["status"] == "uninstalled" and not gone["has_token"]
    assert await merchants.access_token(pool, kek, first["id"]) is None

    back, reactivated = await merchants.install(pool, kek, domain, "shpat_second", ["read_orders"], "t")
    assert reactivated and back["id"] == first["id"] and back["status"] == "installed"
    assert back["uninstalled_at"] is None and back["scopes"] == ["read_orders"]
    assert await merchants.access_token(pool, kek, first["id"]) == "shpat_second"
    actions = [a for a, _ in audit_actions(settings, first["id"])]
    assert actions == ["merchant.installed", "merchant.uninstalled", "merchant.reinstalled"]


async def test_a_token_copied_onto_another_merchant_does_not_open(
    pool: aiopg.Pool, settings: Settings
) -> None:
    kek = kek_from_setting(settings.key_encryption_key.get_secret_value())
    one, _ = await merchants.install(pool, kek, shop(), "shpat_one", [], "t")
    two, _ = await merchants.install(pool, kek, shop(), "shpat_two", [], "t")
    with pg(settings) as conn, conn.cursor() as cur:
        cur.execute(
            "UPDATE merchants SET (token_key_wrapped, token_sealed) ="
            " (SELECT token_key_wrapped, token_sealed FROM merchants WHERE id = %s) WHERE id = %s",
            (one["id"], two["id"]),
        )
    from core_app.security.crypto import DecryptionFailed

    with pytest.raises(DecryptionFailed):
        await merchants.access_token(pool, kek, two["id"])


async def test_a_duplicate_create_is_a_conflict_on_shop(pool: aiopg.Pool) -> None:
    domain = shop()
    await merchants.create_merchant(pool, domain, None, "t")
    with pytest.raises(Conflict) as taken:
        await merchants.create_merchant(pool, domain, None, "t")
    assert taken.value.field == "shop"
