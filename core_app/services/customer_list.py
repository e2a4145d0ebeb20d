"""List and search a merchant's customers: one use case behind REST, GraphQL and gRPC.

Pages come from PostgreSQL (the table state is partitioned by key and cannot answer a merchant-wide
range), keyset-ordered by id, with a signed cursor (core_app/domain/customer_query.py). Callers with
`customers:read_pii` get the decrypted email, and each such read is audited before it is answered.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cachetools import TTLCache

from core_app import read_source
from core_app.domain.customer_query import FIELDS, ListQuery, make_cursor, parse_list_query, project_metadata
from core_app.domain.email import email_hash
from core_app.domain.segments import segment_of
from core_app.security.crypto import kek_from_setting
from core_app.security.pii import PiiRead, may_read_pii
from core_app.security.principal import VIEW, Principal
from core_app.services.ports import CustomerStore, Guard, PiiAudit
from core_app.settings import Settings

THRESHOLDS_TTL = 2.0  # seconds a merchant's rfm_thresholds are reused between pages


@dataclass(frozen=True)
class ListDeps:
    store: CustomerStore
    guard: Guard
    cursor_key: bytes
    email_hash_key: str
    audit: PiiAudit
    thresholds: TTLCache[str, tuple[dict[str, Any] | None]] = field(
        default_factory=lambda: TTLCache(maxsize=10_000, ttl=THRESHOLDS_TTL)
    )


async def _thresholds(deps: ListDeps, merchant_id: str) -> dict[str, Any] | None:
    """The merchant's thresholds, read at most every THRESHOLDS_TTL seconds per worker."""
    cached = deps.thresholds.get(merchant_id)
    if cached is None:
        cached = deps.thresholds[merchant_id] = await deps.store.rfm_thresholds(merchant_id)
    return cached[0]


def cursor_key(settings: Settings) -> bytes:
    """Derived from KEY_ENCRYPTION_KEY, so every worker signs and checks the same cursors."""
    kek = kek_from_setting(settings.key_encryption_key.get_secret_value())
    return hmac.new(kek, b"core:customer-list-cursor:v1", hashlib.sha256).digest()


def build_deps(settings: Settings, store: CustomerStore, guard: Guard, audit: PiiAudit) -> ListDeps:
    return ListDeps(store, guard, cursor_key(settings), settings.email_hash_key.get_secret_value(), audit)


@dataclass(frozen=True)
class CustomerPage:
    query: ListQuery
    items: list[dict[str, Any]]
    has_more: bool
    key: bytes

    def cursor_after(self, customer_id: str) -> str:
        return make_cursor(self.key, self.query.merchant_id, self.query.filters.digest(), customer_id)

    @property
    def next_cursor(self) -> str | None:
        return self.cursor_after(self.items[-1]["id"]) if self.has_more else None

    def to_json(self) -> dict[str, Any]:
        return {"customers": self.items, "next_cursor": self.next_cursor, "has_more": self.has_more}


def _item(item: dict[str, Any], thresholds: dict[str, Any] | None, query: ListQuery) -> dict[str, Any]:
    fields = query.fields
    if "segment" in fields:
        item["segment"] = segment_of(item["rfm_score"], thresholds)
    if query.include is not None and "metadata" in item:
        item["metadata"] = project_metadata(item["metadata"], query.include)
    if len(fields) == len(FIELDS):
        return item
    return {name: value for name, value in item.items() if name in fields}


async def list_customers(
    deps: ListDeps, principal: Principal | None, raw: Mapping[str, Any], *, transport: str
) -> CustomerPage:
    """One page of the merchant's customers matching the filters (parameters as in the REST API)."""
    query = parse_list_query(raw, deps.cursor_key)
    principal = await deps.guard.guard(principal, query.merchant_id, VIEW)
    with_pii = "email" in query.fields and may_read_pii(principal)
    thresholds = None
    if query.filters.segment is not None or "segment" in query.fields:
        thresholds = await _thresholds(deps, query.merchant_id)
    hashed = email_hash(query.filters.email, deps.email_hash_key) if query.filters.email else None
    rows = await deps.store.page(query, email_hash=hashed, thresholds=thresholds, with_pii=with_pii)
    read_source.record("postgres")  # X-Core-Source / x-core-source, as for single reads
    items = [_item(row, thresholds, query) for row in rows[: query.limit]]
    if with_pii and principal is not None:
        reads = [
            PiiRead(query.merchant_id, item["id"], principal.subject, transport)
            for item in items
            if item.get("email") is not None
        ]
        await deps.audit.record(reads)
    return CustomerPage(query, items, len(rows) > query.limit, deps.cursor_key)
