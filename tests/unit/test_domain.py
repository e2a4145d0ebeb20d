from datetime import UTC, datetime

import pytest

from core_app.domain.customer import CustomerState, apply_rfm, customer_key
from core_app.domain.email import email_hash, normalize_email
from core_app.domain.errors import ValidationFailed
from core_app.domain.events import RfmUpdated
from core_app.domain.pii import sanitize_metadata
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


@pytest.mark.parametrize("bad", ["", "no-at-sign", "a@b", "two@@x.io", "sp ace@x.io", "x" * 250 + "@x.io"])
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


def test_apply_rfm_moves_forward_only() -> None:
    state = CustomerState(merchant_id=M, customer_id=C, email_hash=None)
    score = RfmScore(5, 6, 7)
    newer = apply_rfm(state, score, occurred_at_ms=2_000, now_iso="t1")
    assert newer is not None
    assert newer.rfm_score == {"recency": 5, "frequency": 6, "monetary": 7}
    assert newer.version == 1
    assert newer.rfm_as_of == 2_000
    assert apply_rfm(newer, RfmScore(1, 1, 1), occurred_at_ms=1_000, now_iso="t2") is None
    assert apply_rfm(newer, RfmScore(1, 1, 1), occurred_at_ms=2_000, now_iso="t2") is None


def test_state_round_trips_through_dict() -> None:
    state = CustomerState(M, C, "ab" * 32, {"recency": 1}, {"tier": "gold"}, 3, 10, "a", "b")
    assert CustomerState.from_dict(state.to_dict()) == state
    assert state.key == customer_key(M, C) == f"{M}:{C}"


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
