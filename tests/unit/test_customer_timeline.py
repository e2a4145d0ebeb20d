"""The customer timeline: entries built from each kind of change (pure), and the read use case through
fakes (pages newest first with a signed cursor, retention passed down, erasure, refusals)."""

from __future__ import annotations

import json
import uuid

import pytest

from core_app.domain.customer import CustomerState
from core_app.domain.errors import NotFound, ValidationFailed
from core_app.domain.events import GdprRedactionRequested, PointsUpdated, ReferralCreated, RfmUpdated
from core_app.domain.rfm import RfmScore
from core_app.domain.timeline import (
    KINDS,
    consumed_source,
    demo_entry,
    describe,
    event_entry,
    imported_entry,
    scrub,
)
from core_app.security.errors import SecurityError
from core_app.security.principal import VIEW
from core_app.services.customer_timeline import TimelineDeps, customer_timeline
from tests.unit.fakes import FakeGuard, FakeTimelineStore, caller

M, C = str(uuid.uuid4()), str(uuid.uuid4())
SOURCE = {"topic": "points.updated", "partition": 1, "offset": 41}


def state(**fields: object) -> CustomerState:
    return CustomerState(M, C, None, "h", **fields)  # type: ignore[arg-type]


def common(ms: int = 1_767_225_600_000) -> dict[str, object]:
    return {"event_id": str(uuid.uuid4()), "merchant_id": M, "customer_id": C, "occurred_at_ms": ms}


def reason(made: dict | None) -> str:
    assert made is not None
    return describe(made["kind"], made["change"], made["source"])


def test_points_entry_says_the_delta_and_the_reason_without_an_email() -> None:
    before = state(version=3, metadata={"points": {"balance": 120, "tier": "silver"}})
    event = PointsUpdated(
        **common(), balance=80, lifetime_earned=300, tier="bronze", reason="refund to a@b.com"
    )
    made = event_entry(before, state(version=4), event, SOURCE)
    assert made is not None
    assert made["version"] == 4 and made["kind"] == "points" and made["source"] == SOURCE
    assert reason(made) == "points 120 → 80 (-40): refund to [email removed]; tier silver → bronze"
    assert (made["change"]["balance_before"], made["change"]["balance"]) == (120, 80)
    assert made["at"] == 1_767_225_600_000 and made["event_id"] == event.event_id
    assert "a@b.com" not in json.dumps(made)


def test_points_entry_without_a_reason_says_so() -> None:
    event = PointsUpdated(**common(), balance=50, lifetime_earned=50, tier=None)
    made = event_entry(state(version=0), state(version=1), event, SOURCE)
    assert reason(made) == "points 0 → 50 (+50): no reason given by Points"


def test_rfm_and_referral_entries() -> None:
    first = RfmUpdated(**common(), score=RfmScore(30, 2, 120))
    made = event_entry(
        state(), state(version=1, rfm_score={"recency": 30, "frequency": 2, "monetary": 120}), first, SOURCE
    )
    assert (
        reason(made) == "first RFM score by RFM Analytics: recency 30 days, frequency 2 orders, monetary 120"
    )
    again = RfmUpdated(**common(), score=RfmScore(12, 2, 240))
    before = state(version=1, rfm_score={"recency": 30, "frequency": 2, "monetary": 120})
    after = state(version=2, rfm_score={"recency": 12, "frequency": 2, "monetary": 240})
    made = event_entry(before, after, again, SOURCE)
    assert made is not None and made["change"]["before"]["recency"] == 30
    assert reason(made) == (
        "RFM rescored by RFM Analytics: recency 30 → 12 days, frequency 2 orders (unchanged),"
        " monetary 120 → 240"
    )
    referral = ReferralCreated(
        **common(), referral_id=str(uuid.uuid4()), referral_code="ABC", total_referrals=3
    )
    made = event_entry(state(), state(version=5), referral, SOURCE)
    assert made is not None and made["kind"] == "referral"
    assert reason(made) == f"made referral {referral.referral_id} with code ABC; 3 in total"


def test_an_erasure_makes_no_entry_and_every_kind_is_known_to_the_schema() -> None:
    erasure = GdprRedactionRequested(**common(), request_id=str(uuid.uuid4()), requested_by="dpo")
    assert event_entry(state(), state(version=1), erasure, SOURCE) is None
    made = imported_entry("imp", "shopify", 7, 0)
    assert made["kind"] in KINDS and reason(made) == "imported from shopify (import imp, row 7)"
    assert reason(demo_entry(0)) == "created by core demo (sample data)"
    assert describe("something-new", {}, {}) == "something-new"


def test_a_forwarded_event_names_its_producers_record() -> None:
    assert consumed_source("rfm.updated", 2, 9, "rfm.updated/5/77") == {
        "topic": "rfm.updated",
        "partition": 5,
        "offset": 77,
    }
    assert consumed_source("rfm.updated", 2, 9, None) == {"topic": "rfm.updated", "partition": 2, "offset": 9}
    assert consumed_source("rfm.updated", 2, 9, "garbage") == {
        "topic": "rfm.updated",
        "partition": 2,
        "offset": 9,
    }
    assert scrub("x" * 600 + " a@b.c") == "x" * 500


def deps(store: FakeTimelineStore, guard: FakeGuard | None = None) -> TimelineDeps:
    return TimelineDeps(store, guard or FakeGuard(installed={M}), b"k" * 32, 30)


def entries(count: int) -> list[dict[str, object]]:
    change = {"balance_before": 0, "balance": 5, "reason": "order"}
    return [{"version": v, "kind": "points", "change": change, "source": {}} for v in range(count)]


async def test_pages_go_newest_first_and_the_cursor_is_bound_to_the_customer() -> None:
    store = FakeTimelineStore({(M, C): entries(5)})
    first = await customer_timeline(deps(store), caller(M, VIEW), M, C, limit="2")
    assert [e["version"] for e in first["entries"]] == [4, 3] and first["has_more"] is True
    assert first["entries"][0]["reason"] == "points 0 → 5 (+5): order"  # rendered when read
    assert first["redacted"] is False and first["retention_days"] == 30
    second = await customer_timeline(deps(store), caller(M, VIEW), M, C, limit=2, cursor=first["next_cursor"])
    third = await customer_timeline(deps(store), caller(M, VIEW), M, C, limit=2, cursor=second["next_cursor"])
    assert [e["version"] for e in second["entries"] + third["entries"]] == [2, 1, 0]
    assert third["has_more"] is False and third["next_cursor"] is None
    assert store.asked[-1] == {"before": 1, "limit": 3, "retention_days": 30}
    other = str(uuid.uuid4())
    store.entries_by_customer[(M, other)] = entries(1)
    with pytest.raises(ValidationFailed) as refused:
        await customer_timeline(deps(store), caller(M, VIEW), M, other, cursor=first["next_cursor"])
    assert refused.value.field == "cursor"


async def test_an_erased_customer_has_an_empty_timeline_and_an_unknown_one_is_not_found() -> None:
    store = FakeTimelineStore({(M, C): entries(3)}, erased_customers={(M, C)})
    page = await customer_timeline(deps(store), caller(M, VIEW), M, C)
    assert page["entries"] == [] and page["redacted"] is True and store.asked == []
    with pytest.raises(NotFound):
        await customer_timeline(deps(store), caller(M, VIEW), M, str(uuid.uuid4()))


async def test_refusals_name_the_field_and_other_merchants_are_forbidden() -> None:
    store = FakeTimelineStore({(M, C): entries(1)})
    for kwargs, field in [
        ({"limit": "0"}, "limit"),
        ({"limit": 251}, "limit"),
        ({"cursor": "x.y"}, "cursor"),
    ]:
        with pytest.raises(ValidationFailed) as refused:
            await customer_timeline(deps(store), caller(M, VIEW), M, C, **kwargs)  # type: ignore[arg-type]
        assert refused.value.field == field
    with pytest.raises(ValidationFailed) as refused:
        await customer_timeline(deps(store), caller(M, VIEW), M, "not-a-uuid")
    assert refused.value.field == "customer_id"
    other = str(uuid.uuid4())
    with pytest.raises(SecurityError):
        await customer_timeline(deps(store), caller(other, VIEW), M, C)
    with pytest.raises(SecurityError):
        await customer_timeline(deps(store), caller(M), M, C)  # no view permission


async def test_the_retention_purge_waits_for_a_pool_that_is_not_open_yet() -> None:
    from core_app.sink_timeline import RetentionPurge

    def not_open() -> object:
        raise RuntimeError("the runtime is not open yet")

    purge = RetentionPurge(days=30)
    assert await purge.maybe_run(not_open) == 0  # type: ignore[arg-type]
    assert purge.next_run == 0.0  # still due: the next step tries again
