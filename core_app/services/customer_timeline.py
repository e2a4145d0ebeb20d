"""A customer's timeline: the changes applied to it, newest first, cursor-paged (REST and GraphQL).

Entries come from PostgreSQL (`customer_timeline`, written by the sink with the rows they explain and
by imports with the rows they insert; docs/decisions.md D170). Only entries recorded within
TIMELINE_RETENTION_DAYS are served, even before the sink's purge deletes older ones; an erased
customer's timeline is empty from the moment its data key is shredded (D171).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from core_app.domain.customer_query import cursor_position, make_cursor
from core_app.domain.errors import NotFound, ValidationFailed
from core_app.domain.events import parse_uuid
from core_app.domain.timeline import describe
from core_app.security.crypto import kek_from_setting
from core_app.security.principal import VIEW, Principal
from core_app.services.ports import Guard, TimelineStore
from core_app.settings import Settings

DEFAULT_LIMIT = 50
MAX_LIMIT = 250


@dataclass(frozen=True)
class TimelineDeps:
    store: TimelineStore
    guard: Guard
    cursor_key: bytes
    retention_days: int


def timeline_cursor_key(settings: Settings) -> bytes:
    """Derived from KEY_ENCRYPTION_KEY, apart from the list's key: neither cursor opens the other."""
    kek = kek_from_setting(settings.key_encryption_key.get_secret_value())
    return hmac.new(kek, b"core:customer-timeline-cursor:v1", hashlib.sha256).digest()


def build_deps(settings: Settings, store: TimelineStore, guard: Guard) -> TimelineDeps:
    return TimelineDeps(store, guard, timeline_cursor_key(settings), settings.timeline_retention_days)


def _limit(raw: Any) -> int:
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    if isinstance(raw, str) and raw.isdigit():
        raw = int(raw)
    if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= MAX_LIMIT:
        raise ValidationFailed("limit", f"must be an integer between 1 and {MAX_LIMIT}")
    return raw


def _before(deps: TimelineDeps, cursor: Any, merchant_id: str, customer_id: str) -> int | None:
    if cursor is None or cursor == "":
        return None
    if not isinstance(cursor, str):
        raise ValidationFailed("cursor", "must be a string")
    version = cursor_position(deps.cursor_key, cursor, merchant_id, f"timeline:{customer_id}")
    if isinstance(version, bool) or not isinstance(version, int):
        raise ValidationFailed("cursor", "is not a timeline cursor")
    return version


async def customer_timeline(
    deps: TimelineDeps,
    principal: Principal | None,
    merchant_id: Any,
    customer_id: Any,
    *,
    limit: Any = None,
    cursor: Any = None,
) -> dict[str, Any]:
    """One page of the customer's timeline, newest change first."""
    merchant_id = parse_uuid(merchant_id, "merchant_id")
    customer_id = parse_uuid(customer_id, "customer_id")
    size = _limit(limit)
    before = _before(deps, cursor, merchant_id, customer_id)
    await deps.guard.guard(principal, merchant_id, VIEW)
    erased = await deps.store.erased(merchant_id, customer_id)
    if erased is None:
        raise NotFound("customer", customer_id)
    rows = (
        []
        if erased
        else await deps.store.entries(
            merchant_id, customer_id, before=before, limit=size + 1, retention_days=deps.retention_days
        )
    )
    entries = [row | {"reason": describe(row["kind"], row["change"], row["source"])} for row in rows[:size]]
    has_more = len(rows) > size
    next_cursor = (
        make_cursor(deps.cursor_key, merchant_id, f"timeline:{customer_id}", entries[-1]["version"])
        if has_more
        else None
    )
    return {
        "merchant_id": merchant_id,
        "customer_id": customer_id,
        "redacted": erased,
        "retention_days": deps.retention_days,
        "entries": entries,
        "next_cursor": next_cursor,
        "has_more": has_more,
    }
