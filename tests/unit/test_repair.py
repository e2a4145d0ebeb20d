"""Merging copies of a customer split across partitions (core_app/domain/repair.py)."""

from dataclasses import replace

import pytest

from core_app.domain.customer import CustomerState
from core_app.domain.repair import merge_copies, needs_repair

M = "6f1c2c3e-1111-4a55-9a55-000000000001"
C = "6f1c2c3e-2222-4a55-9a55-000000000002"
BASE = CustomerState(M, C, email="ce1:sealed", email_hash="h1", created_at="2026-01-01T00:00:00.000Z")


def copy(version: int, **as_of: int) -> CustomerState:
    return replace(BASE, version=version, applied_as_of=dict(as_of))


def test_each_source_comes_from_the_copy_that_applied_its_newest_event() -> None:
    owner = replace(
        copy(2, rfm=500, points=100),
        rfm_score={"recency": 5, "frequency": 5, "monetary": 5},
        metadata={"points": {"balance": 1}, "note": "owner"},
    )
    stray = replace(
        copy(11, rfm=300, points=900, referral=50),
        email=None,  # a copy loaded from PostgreSQL holds no sealed email
        rfm_score={"recency": 3, "frequency": 3, "monetary": 3},
        metadata={"points": {"balance": 9}, "referrals": {"total": 2}, "note": "stray"},
    )
    merged = merge_copies([owner, stray])
    assert merged.rfm_score == {"recency": 5, "frequency": 5, "monetary": 5}
    assert merged.metadata == {"points": {"balance": 9}, "referrals": {"total": 2}, "note": "owner"}
    assert merged.applied_as_of == {"rfm": 500, "points": 900, "referral": 50}
    assert merged.version == 12  # above every copy: the sink's version guard takes it
    assert merged.email == "ce1:sealed"


def test_a_redaction_in_any_copy_wins() -> None:
    owner = replace(copy(3, rfm=500), metadata={"points": {"balance": 1}})
    redacted = replace(copy(2, gdpr=400), redacted_at="2026-01-02T00:00:00.000Z", email="redacted")
    merged = merge_copies([owner, redacted])
    assert merged.redacted and merged.metadata == {} and merged.email == "redacted"
    assert merged.email_hash is None and merged.version == 4


def test_merging_nothing_is_an_error() -> None:
    with pytest.raises(ValueError):
        merge_copies([])


def test_repair_is_needed_only_when_the_owner_misses_something() -> None:
    owner = copy(5, rfm=500, points=100)
    assert not needs_repair(owner, [copy(9, rfm=300)], None)  # an older stray copy changes nothing
    assert needs_repair(owner, [copy(2, points=200)], None)  # a stray copy has newer points
    assert needs_repair(owner, [], copy(11, rfm=500, points=100))  # PostgreSQL's version is ahead
    assert not needs_repair(owner, [], copy(4, rfm=400))  # PostgreSQL merely behind: sink lag
    assert needs_repair(None, [copy(1, rfm=1)], None)  # only strays hold the key
    merged = merge_copies([owner, copy(2, points=200), copy(11, rfm=1)])
    assert not needs_repair(merged, [copy(2, points=200)], copy(11, rfm=1))  # repaired: idempotent
