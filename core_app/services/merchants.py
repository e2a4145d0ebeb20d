"""Merchant use cases: create (development), list, show, install, uninstall, and the stored token.

Every function takes its dependencies (the aiopg pool, the key-encryption key) explicitly, so the CLI
(`core merchant`), the install flow (views/shopify.py) and the webhook agent call the same code.
Each change and each operator read writes an `audit_logs` row. The offline token never leaves this
module unencrypted except through `access_token`, and no view of a merchant holds it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import aiopg
import psycopg2.errors
import psycopg2.extras

from core_app.domain.errors import Conflict, NotFound, ValidationFailed
from core_app.domain.events import parse_uuid
from core_app.domain.shopify import parse_shop
from core_app.repository import iso
from core_app.security.audit import write_audit_async
from core_app.security.envelope import open_secret, seal_secret

TOKEN_PURPOSE = "shopify_token"
MAX_NAME = 255
MAX_LIST = 1000
_COLUMNS = """id::text AS id, shop_domain, name, status, scopes, installed_at, uninstalled_at,
    created_at, updated_at, token_sealed IS NOT NULL AS has_token"""


def merchant_view(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "shop_domain": row["shop_domain"],
        "name": row["name"],
        "status": row["status"],
        "scopes": list(row["scopes"] or []),
        "has_token": bool(row["has_token"]),
        "installed_at": iso(row["installed_at"]),
        "uninstalled_at": iso(row["uninstalled_at"]),
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
    }


async def _one(pool: aiopg.Pool, sql: str, params: Sequence[Any]) -> dict[str, Any] | None:
    async with pool.acquire() as conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
        await cur.execute(sql, params)
        row = await cur.fetchone()
    return dict(row) if row is not None else None


async def _audit(pool: aiopg.Pool, merchant_id: str | None, actor: str, action: str, **details: Any) -> None:
    await write_audit_async(
        pool,
        merchant_id=merchant_id,
        actor=actor,
        action=action,
        entity_type="merchant",
        entity_id=merchant_id,
        details=details,
    )


def _name(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_NAME:
        raise ValidationFailed("name", f"must be 1 to {MAX_NAME} characters")
    return value.strip()


async def create_merchant(pool: aiopg.Pool, shop: object, name: object, actor: str) -> dict[str, Any]:
    """A new installed merchant without a token (development and tests; installs use `install`)."""
    shop_domain, display = parse_shop(shop), _name(name)
    try:
        row = await _one(
            pool,
            f"INSERT INTO merchants (id, shop_domain, name, installed_at) VALUES (%s, %s, %s, now())"
            f" RETURNING {_COLUMNS}",
            (str(uuid.uuid4()), shop_domain, display),
        )
    except psycopg2.errors.UniqueViolation:
        raise Conflict("shop", f"{shop_domain} is already a merchant") from None
    assert row is not None
    await _audit(pool, row["id"], actor, "merchant.created", shop_domain=shop_domain)
    return merchant_view(row)


async def find_merchant(pool: aiopg.Pool, ref: object) -> dict[str, Any] | None:
    """By id (a UUID) or by shop domain; no audit (internal lookups)."""
    if isinstance(ref, str) and ref.endswith(".myshopify.com"):
        row = await _one(pool, f"SELECT {_COLUMNS} FROM merchants WHERE shop_domain = %s", (parse_shop(ref),))
    else:
        merchant_id = parse_uuid(ref, "merchant")
        row = await _one(pool, f"SELECT {_COLUMNS} FROM merchants WHERE id = %s", (merchant_id,))
    return merchant_view(row) if row is not None else None


async def show_merchant(pool: aiopg.Pool, ref: object, actor: str) -> dict[str, Any]:
    merchant = await find_merchant(pool, ref)
    if merchant is None:
        raise NotFound("merchant", str(ref))
    await _audit(pool, merchant["id"], actor, "merchant.viewed")
    return merchant


async def list_merchants(
    pool: aiopg.Pool, actor: str, status: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    if status not in (None, "installed", "uninstalled"):
        raise ValidationFailed("status", "must be installed or uninstalled")
    if not 1 <= limit <= MAX_LIST:
        raise ValidationFailed("limit", f"must be between 1 and {MAX_LIST}")
    async with pool.acquire() as conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
        await cur.execute(
            f"SELECT {_COLUMNS} FROM merchants WHERE (%s::text IS NULL OR status = %s)"
            " ORDER BY created_at, shop_domain LIMIT %s",
            (status, status, limit),
        )
        rows = await cur.fetchall()
    await _audit(pool, None, actor, "merchant.listed", status=status, count=len(rows))
    return [merchant_view(dict(row)) for row in rows]


async def install(
    pool: aiopg.Pool, kek: bytes, shop: str, token: str, scopes: Sequence[str], actor: str
) -> tuple[dict[str, Any], bool]:
    """Create the merchant, or reactivate it with its data intact; returns (merchant, reactivated)."""
    shop_domain = parse_shop(shop)
    merchant_id = str(uuid.uuid4())
    existing = await _one(pool, "SELECT id::text AS id FROM merchants WHERE shop_domain = %s", (shop_domain,))
    if existing is not None:
        merchant_id = existing["id"]
    wrapped, sealed = seal_secret(kek, TOKEN_PURPOSE, merchant_id, token)
    row = await _one(
        pool,
        "INSERT INTO merchants"
        " (id, shop_domain, status, installed_at, scopes, token_key_wrapped, token_sealed)"
        " VALUES (%s, %s, 'installed', now(), %s, %s, %s)"
        " ON CONFLICT (shop_domain) DO UPDATE SET status = 'installed', installed_at = now(),"
        " uninstalled_at = NULL, scopes = EXCLUDED.scopes, token_key_wrapped = EXCLUDED.token_key_wrapped,"
        " token_sealed = EXCLUDED.token_sealed, updated_at = now()"
        f" RETURNING {_COLUMNS}, (xmax <> 0) AS existed",
        (merchant_id, shop_domain, list(scopes), wrapped, sealed),
    )
    assert row is not None
    if row["id"] != merchant_id:  # a concurrent install created it first: reseal under its id
        return await install(pool, kek, shop, token, scopes, actor)
    reactivated = bool(row["existed"])
    action = "merchant.reinstalled" if reactivated else "merchant.installed"
    await _audit(pool, row["id"], actor, action, shop_domain=shop_domain, scopes=list(scopes))
    return merchant_view(row), reactivated


async def uninstall(
    pool: aiopg.Pool, shop: str, actor: str, triggered_at: datetime | None = None
) -> dict[str, Any] | None:
    """Mark the merchant uninstalled and discard its token. None: unknown shop, or the uninstall
    predates the latest install (a stale delivery after a reinstall)."""
    row = await _one(
        pool,
        "UPDATE merchants SET status = 'uninstalled', uninstalled_at = now(), token_key_wrapped = NULL,"
        " token_sealed = NULL, updated_at = now()"
        " WHERE shop_domain = %s AND (%s::timestamp IS NULL OR installed_at IS NULL OR installed_at <= %s)"
        f" RETURNING {_COLUMNS}",
        (parse_shop(shop), triggered_at, triggered_at),
    )
    if row is None:
        return None
    await _audit(pool, row["id"], actor, "merchant.uninstalled", shop_domain=row["shop_domain"])
    return merchant_view(row)


async def access_token(pool: aiopg.Pool, kek: bytes, merchant_id: str) -> str | None:
    """The merchant's offline token, or None when it is not installed (or never was through OAuth)."""
    row = await _one(
        pool,
        "SELECT token_key_wrapped, token_sealed FROM merchants WHERE id = %s AND status = 'installed'",
        (merchant_id,),
    )
    if row is None or row["token_sealed"] is None:
        return None
    return open_secret(kek, TOKEN_PURPOSE, merchant_id, row["token_key_wrapped"], row["token_sealed"])


# A Shopify customer id as the webhooks (`metadata.shopify`) or an import of Shopify's export
# (`metadata.imports.shopify_api|shopify`) recorded it; `@>` is served by the metadata GIN index.
_BY_SHOPIFY_ID = """
SELECT id::text FROM customers
 WHERE merchant_id = %(m)s AND redacted_at IS NULL
   AND (metadata @> jsonb_build_object('shopify', jsonb_build_object('external_id', %(id)s::text))
        OR metadata @> jsonb_build_object('imports', jsonb_build_object(
               'shopify_api', jsonb_build_object('external_id', %(id)s::text)))
        OR metadata @> jsonb_build_object('imports', jsonb_build_object(
               'shopify', jsonb_build_object('external_id', %(id)s::text))))
 ORDER BY created_at LIMIT 1
"""


class PgMerchantStore:
    """The MerchantStore port (core_app/services/ports.py) on PostgreSQL: the functions above plus
    the customer lookups of the Shopify webhooks."""

    def __init__(self, pool: aiopg.Pool, kek: bytes) -> None:
        self.pool, self.kek = pool, kek

    async def find(self, ref: str) -> dict[str, Any] | None:
        return await find_merchant(self.pool, ref)

    async def install(
        self, shop: str, token: str, scopes: Sequence[str], actor: str
    ) -> tuple[dict[str, Any], bool]:
        return await install(self.pool, self.kek, shop, token, scopes, actor)

    async def uninstall(
        self, shop: str, actor: str, triggered_at: datetime | None = None
    ) -> dict[str, Any] | None:
        return await uninstall(self.pool, shop, actor, triggered_at=triggered_at)

    async def customer_by_email(self, merchant_id: str, email: str) -> str | None:
        async with self.pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(
                "SELECT id::text FROM customers WHERE merchant_id = %s AND email_hash ="
                " encode(hmac(lower(btrim(%s)), current_setting('core.email_hash_key'), 'sha256'), 'hex')",
                (merchant_id, email),
            )
            row = await cur.fetchone()
        return row[0] if row else None

    async def customer_by_shopify_id(self, merchant_id: str, shopify_id: str) -> str | None:
        async with self.pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(_BY_SHOPIFY_ID, {"m": merchant_id, "id": shopify_id})
            row = await cur.fetchone()
        return row[0] if row else None

    async def audit(
        self,
        merchant_id: str | None,
        actor: str,
        action: str,
        entity: tuple[str, str],
        details: dict[str, Any],
    ) -> None:
        entity_type, entity_id = entity
        await write_audit_async(
            self.pool,
            merchant_id=merchant_id,
            actor=actor,
            action=action,
            entity_type=entity_type,
            entity_id=entity_id,
            details=details,
        )
