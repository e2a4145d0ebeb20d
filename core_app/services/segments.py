"""RFM segment counts per merchant: read from `customer_segment_counts`, which statement triggers on
`customers` and `program_settings` keep exact (migrations/0018_segment_counts.sql, D134), or from
AdminFeatures when ADMINFEATURES_GRPC_TARGET is set (D135)."""

from __future__ import annotations

from typing import Any

import aiopg

from core_app.adminfeatures import AdminFeaturesClient, adminfeatures_for
from core_app.domain.events import parse_uuid
from core_app.domain.segments import SEGMENTS
from core_app.security import VIEW, guard
from core_app.settings import Settings

_COUNTS = "SELECT segment, customers FROM customer_segment_counts WHERE merchant_id = %s"


async def local_counts(pool: aiopg.Pool, merchant_id: str) -> dict[str, int]:
    """Every segment's count (0 when it has none), without an authorization check (callers guard)."""
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(_COUNTS, (merchant_id,))
        found = {segment: int(count) for segment, count in await cur.fetchall()}
    return {segment: found.get(segment, 0) for segment in SEGMENTS}


def counts_view(merchant_id: str, counts: dict[str, int], source: str) -> dict[str, Any]:
    return {
        "merchant_id": merchant_id,
        "segments": [{"segment": name, "customers": counts.get(name, 0)} for name in SEGMENTS],
        "total": sum(counts.values()),
        "source": source,
    }


async def segment_counts(
    pool: aiopg.Pool, merchant_id: Any, adminfeatures: AdminFeaturesClient | None = None
) -> dict[str, Any]:
    """AdminFeatures' counts when it is configured and answers in time; the local counts otherwise."""
    merchant_id = parse_uuid(merchant_id, "merchant_id")
    await guard(merchant_id, VIEW)
    if adminfeatures is not None:
        remote = await adminfeatures.segment_counts(merchant_id)
        if remote is not None:
            return counts_view(merchant_id, remote, "adminfeatures")
    return counts_view(merchant_id, await local_counts(pool, merchant_id), "local")


def adminfeatures_of(settings: Settings) -> AdminFeaturesClient | None:
    return adminfeatures_for(settings.adminfeatures_grpc_target, settings.adminfeatures_grpc_timeout)
