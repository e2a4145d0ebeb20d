"""Operator and admin use cases on `core.dlq` (core_app/services/dead_letters.py, admin_dlq.py) and
the health use cases (core_app/services/health.py), through the fakes."""

from __future__ import annotations

import uuid

import pytest

from core_app import topics
from core_app.domain.errors import NotFound, ValidationFailed
from core_app.security.errors import Forbidden
from core_app.security.principal import EDIT, FULL
from core_app.services.admin_dlq import AdminDeadLetters
from core_app.services.dead_letters import DeadLetter, DeadLetterService, Filters
from core_app.services.health import HealthService
from tests.unit.fakes import (
    FakeAuditTrail,
    FakeDeadLetterTopic,
    FakeGuard,
    FakeHealthProbe,
    FakeReadiness,
    FakeReplayLog,
    caller,
)

MERCHANT = str(uuid.uuid4())


def letter(
    partition: int, offset: int, source: str = topics.RFM_UPDATED, merchant: str = MERCHANT
) -> DeadLetter:
    headers = (
        ("source_topic", source.encode()),
        ("error_kind", b"invalid"),
        ("reason", b"bad score"),
        ("trace_id", b"t-1"),
    )
    return DeadLetter(partition, offset, 1_700_000_000_000, f"{merchant}:c-{offset}".encode(), b"v", headers)


def dlq(*letters: DeadLetter) -> tuple[DeadLetterService, FakeDeadLetterTopic, FakeReplayLog]:
    topic, log = FakeDeadLetterTopic(list(letters)), FakeReplayLog()
    return DeadLetterService(topic, log, partitions=12), topic, log


async def test_list_filters_by_topic_and_reason() -> None:
    service, _, _ = dlq(letter(0, 1), letter(1, 2, topics.POINTS_UPDATED))
    found = await service.list(Filters(topic=topics.POINTS_UPDATED, reason="invalid"))
    assert [item.ref for item in found] == ["1:2"]
    assert await service.list(Filters(reason="unknown_schema")) == []


async def test_find_by_partition_and_offset_or_by_offset_alone() -> None:
    service, _, _ = dlq(letter(0, 5), letter(3, 5), letter(3, 6))
    assert [item.ref for item in await service.find("3:5")] == ["3:5"]
    assert [item.ref for item in await service.find("5")] == ["0:5", "3:5"]
    assert await service.find("9:9") == []


async def test_replay_reinjects_to_the_rekey_topic_once_and_records_who() -> None:
    service, topic, log = dlq(letter(0, 1), letter(0, 2, "core-customers-changelog"))
    assert await service.replay(Filters(), "ops") == {"matched": 1, "replayed": 1, "already_replayed": 0}
    [record] = topic.reinjected
    headers = dict(record["headers"])
    assert record["topic"] == topics.REKEYED and headers["source_topic"] == topics.RFM_UPDATED.encode()
    assert headers["trace_id"] == b"t-1" and "error_kind" not in headers  # the producer's header travels
    assert headers["replayed_from"] == f"{topics.DEAD_LETTER}/0/1".encode()
    assert log.done == {(0, 1): "ops"}
    assert await service.replay(Filters(), "ops") == {"matched": 1, "replayed": 0, "already_replayed": 1}
    assert len(topic.reinjected) == 1


def admin(*letters: DeadLetter) -> tuple[AdminDeadLetters, FakeAuditTrail]:
    service, _, _ = dlq(*letters)
    audit = FakeAuditTrail()
    return AdminDeadLetters(service, FakeGuard(installed={MERCHANT}), audit), audit


async def test_admin_lists_only_the_callers_merchant_and_audits() -> None:
    other = str(uuid.uuid4())
    listing, audit = admin(letter(0, 1), letter(0, 2, merchant=other))
    found = await listing.list(caller(MERCHANT, FULL), MERCHANT, limit="10")
    assert [item["ref"] for item in found] == ["0:1"] and found[0]["reason"] == "bad score"
    [row] = audit.rows
    assert row["action"] == "dlq.list" and row["actor"] == f"jwt:user@{MERCHANT}"
    assert row["details"]["listed"] == 1


async def test_admin_list_needs_full_permission_on_an_installed_merchant() -> None:
    listing, audit = admin(letter(0, 1))
    with pytest.raises(Forbidden):
        await listing.list(caller(MERCHANT, EDIT), MERCHANT)
    other = str(uuid.uuid4())
    with pytest.raises(NotFound):
        await listing.list(caller(other, FULL), other)
    assert audit.rows == []


@pytest.mark.parametrize(("field", "kwargs"), [("limit", {"limit": "0"}), ("since", {"since": "yesterday"})])
async def test_admin_list_refuses_bad_filters(field: str, kwargs: dict[str, str]) -> None:
    listing, _ = admin()
    with pytest.raises(ValidationFailed) as caught:
        await listing.list(caller(MERCHANT, FULL), MERCHANT, **kwargs)
    assert caught.value.field == field


async def test_health_is_up_or_names_what_is_down() -> None:
    probe = FakeHealthProbe()
    service = HealthService(probe, FakeReadiness())
    assert await service.health() == (True, {"status": "UP"})
    probe.checks["redis"] = "DOWN: ConnectionError"
    up, body = await service.health()
    assert not up and body["down"] == ["redis"] and body["status"] == "DOWN"


async def test_ready_lists_the_checks_when_not_ready() -> None:
    readiness = FakeReadiness()
    service = HealthService(FakeHealthProbe(), readiness)
    assert await service.ready() == (True, {"ready": True})
    readiness.checks["tables"] = False
    assert await service.ready() == (False, {"ready": False, "checks": readiness.checks})
