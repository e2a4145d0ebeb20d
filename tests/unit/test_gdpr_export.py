"""GDPR data exports on fakes (core_app/services/gdpr_export.py): what the document holds (and
never holds), how it is sealed, who may read it, the audit of each read, and an erased customer."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from core_app import topics
from core_app.domain.errors import NotFound, Unavailable, ValidationFailed
from core_app.domain.gdpr import GdprRequest, export_id_for, request_id
from core_app.security.errors import Forbidden
from core_app.security.principal import FULL, READ_PII, VIEW
from core_app.services.gdpr_export import build_export, read_export
from tests.unit.fakes import (
    FakeAuditTrail,
    FakeCustomerStore,
    FakeGuard,
    caller,
    customer_state,
    gdpr_deps,
)

M, OTHER_M = str(uuid.uuid4()), str(uuid.uuid4())
C, OTHER_C = str(uuid.uuid4()), str(uuid.uuid4())
IMPORT, OTHER_IMPORT = str(uuid.uuid4()), str(uuid.uuid4())
METADATA = {
    "points": {"balance": 120, "lifetime_earned": 300, "tier": "gold"},
    "referrals": {"total": 2, "code": "ANN2"},
    "imports": {"shopify": {"import_id": IMPORT, "total_orders": 4}},
}


def world() -> tuple[Any, FakeCustomerStore]:
    store = FakeCustomerStore(merchants={M, OTHER_M})
    store.rows[(M, C)] = customer_state(
        M, C, rfm_score={"recency": 3, "frequency": 2, "monetary": 1}, metadata=METADATA
    )
    store.emails[(M, C)] = "ann@example.com"
    store.rows[(M, OTHER_C)] = customer_state(M, OTHER_C, metadata={"points": {"balance": 9, "tier": "tin"}})
    store.emails[(M, OTHER_C)] = "bob@example.com"
    deps = gdpr_deps(store=store, guard=FakeGuard(installed={M, OTHER_M}))
    deps.exports.logs[M] = [
        {"import_id": IMPORT, "source": "shopify", "status": "completed"},
        {"import_id": OTHER_IMPORT, "source": "custom", "status": "completed"},
    ]
    deps.exports.audits[(M, C)] = [{"action": "customer.pii_read", "actor": "jwt:ops"}]
    deps.exports.audits[(M, OTHER_C)] = [{"action": "gdpr.redact", "actor": "bob-only"}]
    return deps, store


def access(customer_id: str | None = C, merchant_id: str | None = M) -> GdprRequest:
    rid = request_id("admincore", "access", str(uuid.uuid4()))
    return GdprRequest(rid, "access", "admincore", merchant_id, datetime.now(UTC), customer_id=customer_id)


async def read(deps: Any, export_id: str, *permissions: str, merchant_id: str = M) -> dict[str, Any]:
    return await read_export(deps, caller(merchant_id, *permissions), merchant_id, export_id)


async def test_the_export_holds_everything_listed_and_nothing_of_another_customer() -> None:
    deps, _ = world()
    request = access()
    result = await build_export(deps, request)
    assert result == {"export_id": export_id_for(request.id), "found": True}
    document = await read(deps, result["export_id"], VIEW, READ_PII)
    assert document["customer"]["email"] == "ann@example.com" and document["customer"]["id"] == C
    assert document["rfm"] == {"recency": 3, "frequency": 2, "monetary": 1}
    assert document["points"]["balance"] == 120 and document["tier"] == "gold"
    assert document["referrals"] == {"total": 2, "code": "ANN2"}
    assert [log["import_id"] for log in document["import_logs"]] == [IMPORT]
    assert [entry["actor"] for entry in document["audit"]] == ["jwt:ops"]
    text = json.dumps(document)
    for foreign in ("bob@example.com", OTHER_C, OTHER_IMPORT, "bob-only", "tin"):
        assert foreign not in text


async def test_it_is_sealed_under_the_customers_key_and_announced_without_pii() -> None:
    deps, _ = world()
    result = await build_export(deps, access())
    saved = deps.exports.saved[result["export_id"]]
    assert saved.sealed_with == "customer_key" and "ann@example.com" not in saved.sealed
    [(key, ready)] = deps.publish.on(topics.GDPR_EXPORT_READY)
    assert key == M and ready["customer_id"] == C and ready["found"] is True
    assert ready["path"] == f"/core/v1/gdpr/exports/{result['export_id']}"
    assert "ann@example.com" not in json.dumps(ready, default=str)


async def test_a_customer_erased_after_the_export_makes_it_unreadable() -> None:
    deps, _ = world()
    result = await build_export(deps, access())
    await deps.data_keys.shred(M, C)
    with pytest.raises(NotFound):
        await read(deps, result["export_id"], VIEW, READ_PII)


async def test_after_an_erasure_a_new_export_finds_nothing_readable() -> None:
    deps, store = world()
    store.rows[(M, C)] = customer_state(
        M, C, email="redacted", email_hash=None, redacted_at="2026-01-02T00:00:00Z"
    )
    store.shredded.add((M, C))
    await deps.data_keys.shred(M, C)
    result = await build_export(deps, access())
    document = await read(deps, result["export_id"], VIEW, READ_PII)
    assert document["customer"] == {"id": C, "redacted": True}
    assert document["rfm"] is None and document["points"] is None and document["import_logs"] == []
    assert document["audit"] == [] and "ann@example.com" not in json.dumps(document)
    assert deps.exports.saved[result["export_id"]].sealed_with == "kek"


async def test_no_matching_customer_gives_an_export_that_says_so() -> None:
    deps, _ = world()
    result = await build_export(deps, access(customer_id=None))
    document = await read(deps, result["export_id"], VIEW, READ_PII)
    assert result["found"] is False and document["found"] is False and document["customer"] is None
    unknown = await build_export(deps, access(customer_id=str(uuid.uuid4())))
    assert unknown["found"] is False


async def test_reading_needs_the_pii_scope_and_the_merchant_and_is_audited() -> None:
    deps, _ = world()
    export_id = (await build_export(deps, access()))["export_id"]
    with pytest.raises(Forbidden):
        await read(deps, export_id, FULL)  # admin:full does not imply customers:read_pii
    with pytest.raises(Forbidden):
        await read_export(deps, caller(OTHER_M, VIEW, READ_PII), M, export_id)
    with pytest.raises(NotFound):
        await read(deps, export_id, VIEW, READ_PII, merchant_id=OTHER_M)  # not that merchant's export
    assert deps.audit.rows == []
    await read(deps, export_id, VIEW, READ_PII)
    [row] = deps.audit.rows
    assert row["action"] == "gdpr.export_read" and row["entity_id"] == export_id
    assert row["details"]["customer_id"] == C


async def test_a_read_whose_audit_fails_returns_nothing() -> None:
    class Broken(FakeAuditTrail):
        async def write(self, **row: Any) -> None:
            raise ConnectionError("pg down")

    deps, _ = world()
    export_id = (await build_export(deps, access()))["export_id"]
    deps.audit = Broken()
    with pytest.raises(Unavailable):
        await read(deps, export_id, VIEW, READ_PII)


@pytest.mark.parametrize(
    ("merchant", "export", "field"),
    [("x", "5f0e0c8a-3d7b-4b8e-9a41-6c2d1e0f9a01", "merchant_id"), ("merchant", "x", "export_id")],
    ids=["merchant_id", "export_id"],  # the same in every pytest-xdist process (D204)
)
async def test_bad_ids_are_400_naming_the_field(merchant: str, export: str, field: str) -> None:
    merchant = M if merchant == "merchant" else merchant
    deps, _ = world()
    with pytest.raises(ValidationFailed) as caught:
        await read_export(deps, caller(M, VIEW, READ_PII), merchant, export)
    assert caught.value.field == field


async def test_the_same_request_rebuilds_the_same_export() -> None:
    deps, _ = world()
    request = access()
    first, second = await build_export(deps, request), await build_export(deps, request)
    assert first["export_id"] == second["export_id"] and len(deps.exports.saved) == 1
