import uuid
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from core_app.domain.customer import CustomerState, customer_key
from core_app.domain.email import email_hash, normalize_email
from core_app.domain.errors import ValidationFailed
from core_app.domain.events import (
    GdprRedactionRequested,
    Outcome,
    PointsUpdated,
    ReferralCreated,
    RfmUpdated,
    apply_event,
)
from core_app.domain.pii import sanitize_metadata
from core_app.domain.profile import CustomerInput
from core_app.domain.rfm import RfmScore

M = "6f1c2c3e-1111-4a55-9a55-000000000001"
C = "6f1c2c3e-2222-4a55-9a55-000000000002"


def test_sanitize_removes_pii_at_every_depth_case_insensitively() -> None:
    raw = {
        "first_name": "John",
        "Phone": "+1 555",
        "last_purchase": "2025-07-01",
        "points": {"balance": 10, "email": "j@x.io"},
        "history": [{"mobile": "1", "tier": "gold"}, "plain"],
    }
    assert sanitize_metadata(raw) == {
        "last_purchase": "2025-07-01",
        "points": {"balance": 10},
        "history": [{"tier": "gold"}, "plain"],
    }
    assert raw["first_name"] == "John"  # input untouched


def test_email_normalised_and_hashed_with_key() -> None:
    assert normalize_email("  Foo@Example.COM ") == "foo@example.com"
    assert email_hash("Foo@Example.com", "k" * 32) == email_hash("foo@example.com ", "k" * 32)
    assert email_hash("foo@example.com", "k" * 32) != email_hash("foo@example.com", "j" * 32)
    assert len(email_hash("foo@example.com", "k" * 32)) == 64


@pytest.mark.parametrize(
    "bad",
    ["", "no-at-sign", "a@b", "two@@x.io", "sp ace@x.io", "x" * 250 + "@x.io", "nul\x00@x.io", "\udc00@x.io"],
)
def test_bad_email_is_rejected_naming_the_field(bad: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        normalize_email(bad, field="input.email")
    assert caught.value.field == "input.email"


def test_rfm_score_validation_names_the_component() -> None:
    assert RfmScore.parse({"recency": 1, "frequency": 2, "monetary": 3}).to_dict() == {
        "recency": 1,
        "frequency": 2,
        "monetary": 3,
    }
    with pytest.raises(ValidationFailed) as caught:
        RfmScore.parse({"recency": -1, "frequency": 2, "monetary": 3})
    assert caught.value.field == "rfm_score.recency"
    with pytest.raises(ValidationFailed) as caught:
        RfmScore.parse({"recency": 1, "frequency": True, "monetary": 3})
    assert caught.value.field == "rfm_score.frequency"
    with pytest.raises(ValidationFailed):
        RfmScore.parse([1, 2, 3])


def state(**changes) -> CustomerState:
    base = CustomerState(merchant_id=M, customer_id=C, email="aes256:abc", email_hash="ab" * 32)
    return replace(base, **changes)


def rfm(score: tuple[int, int, int], at: int) -> RfmUpdated:
    return RfmUpdated(str(uuid.uuid4()), M, C, at, RfmScore(*score))


def test_rfm_moves_forward_only() -> None:
    newer = apply_event(state(), rfm((5, 6, 7), 2_000), "t1").state
    assert newer is not None
    assert newer.rfm_score == {"recency": 5, "frequency": 6, "monetary": 7}
    assert newer.version == 1
    assert newer.applied_as_of == {"rfm": 2_000}
    assert apply_event(newer, rfm((1, 1, 1), 1_000), "t2") == Outcome(None, "stale")
    assert apply_event(newer, rfm((1, 1, 1), 2_000), "t2") == Outcome(None, "stale")


def test_sources_are_versioned_independently() -> None:
    after_rfm = apply_event(state(), rfm((1, 2, 3), 5_000), "t").state
    points = PointsUpdated(str(uuid.uuid4()), M, C, 1_000, balance=40, lifetime_earned=90, tier="gold")
    after_points = apply_event(after_rfm, points, "t").state
    assert after_points is not None
    assert after_points.version == 2
    assert after_points.metadata["points"] == {
        "balance": 40,
        "lifetime_earned": 90,
        "tier": "gold",
        "as_of": "1970-01-01T00:00:01.000Z",
    }
    assert after_points.rfm_score == {"recency": 1, "frequency": 2, "monetary": 3}


def test_merges_keep_other_metadata_and_strip_pii() -> None:
    dirty = state(metadata={"first_name": "Jo", "vip": True, "contact": {"phone": "1"}})
    referral = ReferralCreated(str(uuid.uuid4()), M, C, 10, str(uuid.uuid4()), "JO10", total_referrals=3)
    merged = apply_event(dirty, referral, "t").state
    assert merged is not None
    assert merged.metadata["vip"] is True
    assert merged.metadata["contact"] == {}
    assert "first_name" not in merged.metadata
    assert merged.metadata["referrals"]["total"] == 3


def test_redaction_erases_email_and_metadata_and_freezes_the_customer() -> None:
    request = GdprRedactionRequested(str(uuid.uuid4()), M, C, 10, str(uuid.uuid4()), "dpo@shop")
    redacted = apply_event(state(metadata={"tier": "gold"}), request, "t9").state
    assert redacted is not None
    assert (redacted.email, redacted.email_hash, redacted.metadata) == ("redacted", None, {})
    assert redacted.redacted_at == "t9"
    assert apply_event(redacted, rfm((1, 1, 1), 99), "t") == Outcome(None, "redacted")
    assert apply_event(redacted, request, "t") == Outcome(None, "redacted")


def test_state_round_trips_through_dict() -> None:
    full = state(rfm_score={"recency": 1}, metadata={"tier": "gold"}, version=3, applied_as_of={"rfm": 9})
    assert CustomerState.from_dict(full.to_dict()) == full
    assert full.key == customer_key(M, C) == f"{M}:{C}"


def test_rfm_event_parses_avro_record() -> None:
    record = {
        "event_id": "6f1c2c3e-3333-4a55-9a55-000000000003",
        "merchant_id": M,
        "customer_id": C,
        "rfm_score": {"recency": 1, "frequency": 2, "monetary": 3},
        "occurred_at": datetime(2026, 1, 1, tzinfo=UTC),
    }
    event = RfmUpdated.parse(record)
    assert event.key == f"{M}:{C}"
    assert event.occurred_at_ms == 1767225600000
    with pytest.raises(ValidationFailed) as caught:
        RfmUpdated.parse({**record, "merchant_id": "not-a-uuid"})
    assert caught.value.field == "merchant_id"


@pytest.mark.parametrize(
    ("parser", "record", "field"),
    [
        (PointsUpdated.parse, {"balance": -1, "lifetime_earned": 0}, "balance"),
        (PointsUpdated.parse, {"balance": "10", "lifetime_earned": 0}, "balance"),
        (ReferralCreated.parse, {"referral_id": "x", "total_referrals": 1}, "referral_id"),
        (
            GdprRedactionRequested.parse,
            {"request_type": "ACCESS", "request_id": str(uuid.uuid4())},
            "request_type",
        ),
    ],
)
def test_event_validation_names_the_field(parser, record: dict, field: str) -> None:
    common = {
        "event_id": str(uuid.uuid4()),
        "merchant_id": M,
        "customer_id": C,
        "occurred_at": datetime(2026, 1, 1, tzinfo=UTC),
    }
    with pytest.raises(ValidationFailed) as caught:
        parser(common | record)
    assert caught.value.field == field


@pytest.mark.parametrize(
    "bad", [{"a": "x\x00y"}, {"k\x00": 1}, {"a": ["\udc00"]}, {"nested": {"b": "\ud800"}}]
)
def test_metadata_postgres_cannot_store_is_a_validation_error(bad: dict) -> None:
    from core_app.domain.profile import validate_metadata

    with pytest.raises(ValidationFailed) as caught:
        validate_metadata(bad)
    assert caught.value.field == "metadata"


@pytest.mark.parametrize(
    "metadata",
    [
        {"big": 2**64},  # the table's JSON codec takes 64-bit integers only (found by schemathesis)
        {"nested": [{"small": -(2**63) - 1}]},
        {"inf": float("inf")},
        {"huge_float": -1.8e196},  # jsonb would print it as a 197-digit integer
        {"nan": float("nan")},
        {"nul": "a\x00b"},
    ],
)
def test_metadata_that_cannot_be_stored_is_refused_naming_the_field(metadata: dict) -> None:
    with pytest.raises(ValidationFailed) as refused:
        CustomerInput.parse("ana@example.com", metadata, email_required=True)
    assert refused.value.field == "metadata"


def test_metadata_at_the_64_bit_edges_is_kept() -> None:
    given = CustomerInput.parse("ana@example.com", {"a": 2**63 - 1, "b": -(2**63), "c": 1.5}, True)
    assert given.metadata == {"a": 2**63 - 1, "b": -(2**63), "c": 1.5}


def test_ids_are_canonical_only_as_uuid_writes_them_and_the_memo_stays_bounded() -> None:
    from core_app.domain import events

    written = str(uuid.uuid4())
    for _ in range(2):  # the second time from the memo
        assert events.is_canonical_uuid(written)
        assert events.parse_uuid(written, "customer_id") == written
    assert events.parse_uuid(written.upper(), "customer_id") == written  # normalised, not memoised
    assert not events.is_canonical_uuid(written.upper())
    assert not events.is_canonical_uuid(written.replace("-", ""))
    with pytest.raises(ValidationFailed):
        events.parse_uuid("not-a-uuid", "customer_id")
    for _ in range(events.CANONICAL_MEMO_SIZE + 10):
        events.is_canonical_uuid(str(uuid.uuid4()))
    assert len(events._canonical_seen) <= events.CANONICAL_MEMO_SIZE


def test_too_deep_member_names_the_first_member_past_the_limit_without_parsing() -> None:
    from core_app.domain.json_depth import too_deep_member

    deep = '{"a":' * 2000 + "1" + "}" * 2000  # far deeper than json.loads goes
    assert too_deep_member('{"email": "x", "metadata": ' + deep + "}", 32) == "metadata"
    assert too_deep_member('{"s": "{[{[", "ok": [[1]], "deep": ' + deep + "}", 32) == "deep"
    assert too_deep_member('{"m": ' + '{"a":' * 32 + "1" + "}" * 32 + "}", 32) is None  # 32 levels: fine
    assert too_deep_member('{"m": ' + '{"a":' * 33 + "1" + "}" * 33 + "}", 32) == "m"
    assert too_deep_member('{"a@b.c": ' + deep + "}", 32) is None  # not a field name: never echoed
    assert too_deep_member("[" * 100 + "]" * 100, 32) is None  # not an object
    assert too_deep_member('{"k\\u0061y": ' + deep + "}", 32) == "kay"  # escapes decoded
