"""RFM segment counts per merchant: read from `customer_segment_counts`, which statement triggers on
`customers` and `program_settings` keep exact (migrations/0018_segment_counts.sql, D134), or from
AdminFeatures when ADMINFEATURES_GRPC_TARGET is set (D135)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from core_app.domain.events import parse_uuid
from core_app.domain.segments import SEGMENTS
from core_app.security.principal import VIEW, Principal
from core_app.services.ports import CustomerStore, Guard, RemoteSegmentCounts
from core_app.services.program_settings import ProgramSettingsService

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SegmentDeps:
    store: CustomerStore
    guard: Guard
    adminfeatures: RemoteSegmentCounts | None = None


def counts_view(merchant_id: str, counts: dict[str, int], source: str) -> dict[str, Any]:
    return {
        "merchant_id": merchant_id,
        "segments": [{"segment": name, "customers": counts.get(name, 0)} for name in SEGMENTS],
        "total": sum(counts.values()),
        "source": source,
    }


async def segment_counts(deps: SegmentDeps, principal: Principal | None, merchant_id: Any) -> dict[str, Any]:
    """AdminFeatures' counts when it is configured and answers in time; the local counts otherwise."""
    merchant_id = parse_uuid(merchant_id, "merchant_id")
    await deps.guard.guard(principal, merchant_id, VIEW)
    if deps.adminfeatures is not None:
        remote = await deps.adminfeatures.segment_counts(merchant_id)
        if remote is not None:
            return counts_view(merchant_id, remote, "adminfeatures")
    return counts_view(merchant_id, await deps.store.segment_counts(merchant_id), "local")


async def settings_with_counts(
    settings: ProgramSettingsService, deps: SegmentDeps, principal: Principal | None, merchant_id: Any
) -> dict[str, Any]:
    """The settings view (D173): the merchant's program settings with its segment counts, from
    AdminFeatures `GetRFMSegmentCounts` when configured (degrading to the local counts, D135). Counts
    that cannot be read at all (PostgreSQL away) leave `segment_counts` null, not the view failed."""
    found, counts = await asyncio.gather(
        settings.get(principal, merchant_id),
        segment_counts(deps, principal, merchant_id),
        return_exceptions=True,
    )
    if isinstance(found, BaseException):
        raise found
    if isinstance(counts, BaseException):
        if not isinstance(counts, Exception):
            raise counts
        log.warning("segment counts unreadable; settings answered without them", extra={"error": str(counts)})
        counts = None
    return found | {"segment_counts": counts}
