"""What a single read adds to the table's view: the decrypted email for callers with
`customers:read_pii` (audited), and the customer's RFM segment.

PostgreSQL is the email's system of record (pgcrypto, D57); an erased customer's data key is a
tombstone from the moment of erasure, before the sink writes 'redacted', and either makes it
unreadable here.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from cachetools import TTLCache

from core_app.domain.segments import segment_of
from core_app.security.pii import PiiRead
from core_app.security.principal import Principal
from core_app.services.ports import CustomerStore, PiiAudit

log = logging.getLogger(__name__)

THRESHOLDS_TTL = 2.0  # seconds a merchant's rfm_thresholds are reused, as by the list (D174)
THRESHOLDS_DEADLINE = 0.25  # a settings read that takes longer leaves the read without a segment


class SegmentOfRead:
    """The segment of a read customer, from the merchant's thresholds cached per worker: a table read
    never waits on PostgreSQL more than THRESHOLDS_DEADLINE once per THRESHOLDS_TTL, and answers
    without a segment (None) rather than fail when it does not answer."""

    def __init__(self, store: CustomerStore) -> None:
        self.store = store
        self.cache: TTLCache[str, tuple[dict[str, Any] | None] | None] = TTLCache(
            maxsize=10_000, ttl=THRESHOLDS_TTL
        )

    async def segment_of(self, merchant_id: str, rfm_score: dict[str, Any]) -> str | None:
        if merchant_id in self.cache:
            found = self.cache[merchant_id]
        else:
            try:
                found = await asyncio.wait_for(self.store.rfm_thresholds(merchant_id), THRESHOLDS_DEADLINE)
            except Exception as exc:  # PostgreSQL away: the table still answers, without a segment
                log.warning(
                    "thresholds unreadable; read answered without a segment", extra={"error": str(exc)}
                )
                found = None
            self.cache[merchant_id] = found
        return segment_of(rfm_score, found[0]) if found is not None else None


async def attach_email(
    store: CustomerStore, audit: PiiAudit, principal: Principal, view: dict[str, Any], transport: str
) -> None:
    """Set `email` (None once erased, then `redacted` is true) and audit the read before it is answered."""
    row = await store.email_of(view["merchant_id"], view["id"])
    redacted = bool(view.get("redacted")) or bool(row and row.redacted)
    email = None if redacted or row is None else row.email
    view["email"] = email
    view["redacted"] = redacted
    if email is not None:
        await audit.record([PiiRead(view["merchant_id"], view["id"], principal.subject, transport)])
