"""Adapters of the customers' ports (core_app/services/ports.py): PostgreSQL rows and the Redis read
cache. The partition owner is core_app/owner_client.py."""

from __future__ import annotations

import json
import logging
from typing import Any

import aiopg
import orjson
import psycopg2.errors

from core_app import metrics
from core_app.db import fetch_one
from core_app.domain.customer import CustomerState
from core_app.domain.customer_query import ListQuery
from core_app.domain.errors import Conflict, NotFound
from core_app.domain.segments import SEGMENTS
from core_app.read_replicas import ReadRouter
from core_app.repository import change_email, fetch_customer, fetch_settings, insert_customer
from core_app.repository_lists import fetch_page
from core_app.runtime import Runtime
from core_app.services.ports import StoredEmail

log = logging.getLogger(__name__)

CUSTOMER_CACHE_TTL = 24 * 3600
_TAKEN = "another customer of this merchant has this email"

_EMAIL = """
SELECT CASE WHEN k.shredded_at IS NULL THEN core_decrypt_email(c.email) END AS email,
       (c.redacted_at IS NOT NULL OR k.shredded_at IS NOT NULL) AS redacted
  FROM customers c
  LEFT JOIN customer_data_keys k ON k.merchant_id = c.merchant_id AND k.customer_id = c.id
 WHERE c.merchant_id = %s AND c.id = %s
"""
_COUNTS = "SELECT segment, customers FROM customer_segment_counts WHERE merchant_id = %s"


class PgCustomerStore:
    """CustomerStore over core_app/repository*.py (callers that retry wrap it in infra_retry).

    Writes go to the primary `pool`; the fallback, email and list reads through `reads`, which may
    run them on a read replica (core_app/read_replicas.py, D220)."""

    def __init__(self, pool: aiopg.Pool, reads: ReadRouter | None = None) -> None:
        self.pool = pool
        self.reads = reads or ReadRouter(pool, [], _no_replica, max_lag=0, check_interval=1)

    async def fetch(self, merchant_id: str, customer_id: str) -> CustomerState | None:
        return await self.reads.run(merchant_id, lambda pool: fetch_customer(pool, merchant_id, customer_id))

    async def insert(
        self, merchant_id: str, customer_id: str, email: str, metadata: dict[str, Any]
    ) -> CustomerState:
        try:
            created = await insert_customer(self.pool, merchant_id, customer_id, email, metadata)
        except psycopg2.errors.UniqueViolation:
            raise Conflict("email", _TAKEN) from None
        except psycopg2.errors.ForeignKeyViolation:
            raise NotFound("merchant", merchant_id) from None
        await self.reads.wrote(merchant_id)
        return created

    async def change_email(self, merchant_id: str, customer_id: str, email: str) -> str:
        try:
            _, email_hash = await change_email(self.pool, merchant_id, customer_id, email)
        except psycopg2.errors.UniqueViolation:
            raise Conflict("email", _TAKEN) from None
        await self.reads.wrote(merchant_id)
        return str(email_hash)

    async def email_of(self, merchant_id: str, customer_id: str) -> StoredEmail | None:
        row = await self.reads.run(
            merchant_id, lambda pool: fetch_one(pool, _EMAIL, (merchant_id, customer_id))
        )
        return StoredEmail(row["email"], bool(row["redacted"])) if row is not None else None

    async def rfm_thresholds(self, merchant_id: str) -> tuple[dict[str, Any] | None]:
        settings = await fetch_settings(self.pool, merchant_id)
        return (settings["rfm_thresholds"] if settings else None,)

    async def page(
        self, query: ListQuery, *, email_hash: str | None, thresholds: dict[str, Any] | None, with_pii: bool
    ) -> list[dict[str, Any]]:
        return await self.reads.run(
            query.merchant_id,
            lambda pool: fetch_page(
                pool, query, email_hash=email_hash, thresholds=thresholds, with_pii=with_pii
            ),
        )

    async def segment_counts(self, merchant_id: str) -> dict[str, int]:
        """Every segment's count (0 when it has none)."""

        async def counts(pool: aiopg.Pool) -> dict[str, int]:
            async with pool.acquire() as conn, conn.cursor() as cur:
                await cur.execute(_COUNTS, (merchant_id,))
                return {segment: int(count) for segment, count in await cur.fetchall()}

        found = await self.reads.run(merchant_id, counts)
        return {segment: found.get(segment, 0) for segment in SEGMENTS}


async def _no_replica(dsn: str) -> aiopg.Pool:
    raise AssertionError("no read replica is configured")


def _json(view: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(view)
    except TypeError:  # integers beyond 64 bits in metadata
        return json.dumps(view).encode()


class RedisReadCache:
    """ReadCache on the worker's Redis; the sink deletes an entry after each persisted change."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def key(self, merchant_id: str, customer_id: str) -> str:
        return self.runtime.redis_key(f"customer:{merchant_id}:{customer_id}")

    async def get(self, merchant_id: str, customer_id: str) -> dict[str, Any] | None:
        try:
            cached = await self.runtime.redis.get(self.key(merchant_id, customer_id))
        except Exception as exc:  # a cache outage degrades to PostgreSQL, it never fails the read
            metrics.cache_errors.labels("get").inc()
            metrics.cache_lookup("customer", hit=False)
            log.warning("cache read failed", extra={"error": str(exc)})
            return None
        metrics.cache_lookup("customer", hit=cached is not None)
        return orjson.loads(cached) if cached is not None else None

    async def put(self, merchant_id: str, customer_id: str, view: dict[str, Any]) -> None:
        try:
            await self.runtime.redis.set(
                self.key(merchant_id, customer_id), _json(view), ex=CUSTOMER_CACHE_TTL
            )
        except Exception as exc:
            metrics.cache_errors.labels("set").inc()
            log.warning("cache write failed", extra={"error": str(exc)})
