"""The list use case (core_app/services/customer_list.py) and segment counts
(core_app/services/segments.py) through fakes."""

from __future__ import annotations

import uuid

import pytest

from core_app.domain.errors import ValidationFailed
from core_app.domain.segments import SEGMENTS
from core_app.security.errors import Forbidden, Unauthenticated
from core_app.security.principal import READ_PII, VIEW
from core_app.services.customer_list import ListDeps, list_customers
from core_app.services.segments import SegmentDeps, segment_counts
from tests.unit.fakes import FakeCustomerStore, FakeGuard, FakePiiAudit, FakeRemoteCounts, caller

MERCHANT, OTHER = str(uuid.uuid4()), str(uuid.uuid4())
CURSOR_KEY = b"k" * 32


def row(n: int, merchant_id: str = MERCHANT) -> dict:
    return {
        "id": f"{n:08d}-0000-4000-8000-000000000000",
        "merchant_id": merchant_id,
        "email": f"c{n}@example.com",
        "rfm_score": {},
        "metadata": {},
        "version": 1,
        "redacted": False,
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z",
    }


@pytest.fixture
def store() -> FakeCustomerStore:
    return FakeCustomerStore(listed=[row(n) for n in range(5)] + [row(9, OTHER)])


@pytest.fixture
def audit() -> FakePiiAudit:
    return FakePiiAudit()


@pytest.fixture
def deps(store: FakeCustomerStore, audit: FakePiiAudit) -> ListDeps:
    return ListDeps(store, FakeGuard(installed={MERCHANT, OTHER}), CURSOR_KEY, "hash-key", audit)


async def test_pages_follow_the_signed_cursor_to_the_end(deps: ListDeps) -> None:
    seen, cursor = [], None
    while True:
        raw = {"merchant_id": MERCHANT, "limit": "2", "cursor": cursor}
        page = await list_customers(deps, caller(MERCHANT, VIEW), raw, transport="rest")
        seen += [item["id"] for item in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [row(n)["id"] for n in range(5)]


async def test_emails_only_with_read_pii_and_each_read_audited(deps: ListDeps, audit: FakePiiAudit) -> None:
    plain = await list_customers(deps, caller(MERCHANT, VIEW), {"merchant_id": MERCHANT}, transport="rest")
    assert all("email" not in item for item in plain.items) and audit.reads == []
    pii = await list_customers(
        deps, caller(MERCHANT, VIEW, READ_PII), {"merchant_id": MERCHANT}, transport="grpc"
    )
    assert [item["email"] for item in pii.items][:2] == ["c0@example.com", "c1@example.com"]
    assert len(audit.reads) == 5 and {r.transport for r in audit.reads} == {"grpc"}


async def test_segments_use_the_thresholds_read_once_per_ttl(
    deps: ListDeps, store: FakeCustomerStore
) -> None:
    for _ in range(2):
        page = await list_customers(deps, caller(MERCHANT, VIEW), {"merchant_id": MERCHANT}, transport="rest")
    assert {item["segment"] for item in page.items} == {"unscored"}
    assert store.calls.count("thresholds") == 1


async def test_an_email_filter_is_hashed_never_sent_plain(deps: ListDeps, store: FakeCustomerStore) -> None:
    raw = {"merchant_id": MERCHANT, "email": "c1@example.com"}
    await list_customers(deps, caller(MERCHANT, VIEW), raw, transport="rest")
    assert "c1@example.com" not in store.calls[-1] and "email_hash=None" not in store.calls[-1]


async def test_list_refusals(deps: ListDeps) -> None:
    with pytest.raises(Forbidden):
        await list_customers(deps, caller(OTHER, VIEW), {"merchant_id": MERCHANT}, transport="rest")
    with pytest.raises(Forbidden):
        await list_customers(deps, caller(MERCHANT, READ_PII), {"merchant_id": MERCHANT}, transport="rest")
    with pytest.raises(Unauthenticated):
        await list_customers(deps, None, {"merchant_id": MERCHANT}, transport="rest")
    with pytest.raises(ValidationFailed) as refused:
        await list_customers(
            deps, caller(MERCHANT, VIEW), {"merchant_id": MERCHANT, "cursor": "x"}, transport="rest"
        )
    assert refused.value.field == "cursor"
    for empty in ("updated_since", "fields", "include"):  # an empty value is not an absent one
        with pytest.raises(ValidationFailed) as refused:
            await list_customers(
                deps, caller(MERCHANT, VIEW), {"merchant_id": MERCHANT, empty: ""}, transport="rest"
            )
        assert refused.value.field == empty


async def test_segment_counts_are_local_without_adminfeatures() -> None:
    store = FakeCustomerStore(counts={MERCHANT: {"loyal": 2, "new": 1}})
    counts = await segment_counts(
        SegmentDeps(store, FakeGuard(installed={MERCHANT})), caller(MERCHANT, VIEW), MERCHANT
    )
    assert (counts["source"], counts["total"]) == ("local", 3)
    assert [entry["segment"] for entry in counts["segments"]] == list(SEGMENTS)


async def test_segment_counts_prefer_adminfeatures_and_fall_back_when_it_does_not_answer() -> None:
    store = FakeCustomerStore(counts={MERCHANT: {"loyal": 2}})
    remote = FakeRemoteCounts({"champions": 7})
    deps = SegmentDeps(store, FakeGuard(installed={MERCHANT}), remote)
    assert (await segment_counts(deps, caller(MERCHANT, VIEW), MERCHANT))["source"] == "adminfeatures"
    remote.counts = None
    fallback = await segment_counts(deps, caller(MERCHANT, VIEW), MERCHANT)
    assert (fallback["source"], fallback["total"]) == ("local", 2) and remote.asked == [MERCHANT, MERCHANT]


async def test_segment_counts_refusals() -> None:
    deps = SegmentDeps(FakeCustomerStore(), FakeGuard(installed={MERCHANT}), FakeRemoteCounts({"loyal": 1}))
    with pytest.raises(Forbidden):
        await segment_counts(deps, caller(OTHER, VIEW), MERCHANT)
    with pytest.raises(ValidationFailed):
        await segment_counts(deps, caller(MERCHANT, VIEW), "not-a-uuid")
    assert deps.adminfeatures.asked == []  # type: ignore[union-attr]
