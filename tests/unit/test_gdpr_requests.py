"""GDPR request tracking on fakes (core_app/services/gdpr_requests.py): recorded once with the
30-day deadline, retried, reported when every attempt failed, never dropped; the deadline gauges."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY

from core_app.domain.errors import ValidationFailed
from core_app.domain.events import GdprAccessRequested, GdprRedactionRequested, parse_gdpr_request
from core_app.domain.gdpr import DEADLINE, GdprRequest, request_id
from core_app.services import gdpr_requests
from core_app.services.gdpr_metrics import oldest_open_age, requests_overdue
from tests.unit.fakes import FakeGdprRequests

M = str(uuid.uuid4())


def request(kind: str = "access", days_ago: float = 0) -> GdprRequest:
    received = datetime.now(UTC) - timedelta(days=days_ago)
    return GdprRequest(request_id("shopify", kind, str(uuid.uuid4())), kind, "shopify", M, received)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def no_sleep(seconds: float) -> None:
    return None


async def test_a_request_is_recorded_once_and_done_with_its_result() -> None:
    store, tracked = FakeGdprRequests(), request()
    before = sample("core_gdpr_requests_received_total", kind="access", source="shopify")
    done_before = sample("core_gdpr_requests_done_total", kind="access")

    async def work() -> dict[str, Any]:
        return {"export_id": "e-1"}

    assert await gdpr_requests.run_tracked(store, tracked, work, no_sleep) == {"export_id": "e-1"}
    await gdpr_requests.record(store, [tracked])  # a redelivery: not received twice
    assert store.rows[tracked.id]["status"] == "done" and store.rows[tracked.id]["result"] == {
        "export_id": "e-1"
    }
    assert sample("core_gdpr_requests_received_total", kind="access", source="shopify") == before + 1
    assert sample("core_gdpr_requests_done_total", kind="access") == done_before + 1
    assert tracked.deadline == tracked.received_at + DEADLINE == tracked.received_at + timedelta(days=30)


async def test_a_failing_request_is_retried_then_reported_never_dropped() -> None:
    store, tracked = FakeGdprRequests(), request("shop_redact")
    calls: list[int] = []
    failed_before = sample("core_gdpr_requests_failed_total", kind="shop_redact")

    async def work() -> dict[str, Any]:
        calls.append(1)
        raise RuntimeError("constraint violated")

    with pytest.raises(RuntimeError):
        await gdpr_requests.run_tracked(store, tracked, work, no_sleep)
    row = store.rows[tracked.id]
    assert len(calls) == gdpr_requests.ATTEMPTS and row["attempts"] == gdpr_requests.ATTEMPTS
    assert row["status"] == "failed" and row["error"] == "RuntimeError: constraint violated"
    assert sample("core_gdpr_requests_failed_total", kind="shop_redact") == failed_before + 1

    async def works_now() -> dict[str, Any]:  # `core dlq replay` brings the record back
        return {"purged": True}

    await gdpr_requests.run_tracked(store, tracked, works_now, no_sleep)
    assert store.rows[tracked.id]["status"] == "done"


async def test_a_second_attempt_that_succeeds_completes_the_request() -> None:
    store, tracked = FakeGdprRequests(), request()
    outcomes: list[Exception | dict[str, Any]] = [ValueError("first"), {"ok": True}]

    async def work() -> dict[str, Any]:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert await gdpr_requests.run_tracked(store, tracked, work, no_sleep) == {"ok": True}
    assert store.rows[tracked.id]["status"] == "done" and store.rows[tracked.id]["attempts"] == 2


async def test_the_gauges_show_the_oldest_open_request_and_the_overdue_ones() -> None:
    store = FakeGdprRequests()
    await gdpr_requests.record(store, [request(days_ago=31), request(days_ago=26), request(days_ago=1)])

    async def work() -> dict[str, Any]:
        return {}

    done = request(days_ago=40)
    await gdpr_requests.run_tracked(store, done, work, no_sleep)  # done: neither open nor overdue
    await gdpr_requests.refresh_gauges(store)
    assert requests_overdue._value.get() == 1
    assert 31 * 86400 - 60 < oldest_open_age._value.get() < 31 * 86400 + 60
    assert sample("core_gdpr_requests_open") == 3


def test_access_and_redact_requests_parse_and_other_types_name_the_field() -> None:
    common = {
        "event_id": str(uuid.uuid4()),
        "merchant_id": M,
        "customer_id": str(uuid.uuid4()),
        "request_id": str(uuid.uuid4()),
        "requested_by": "dpo@shop",
        "occurred_at": datetime(2026, 1, 1, tzinfo=UTC),
    }
    assert isinstance(parse_gdpr_request(common | {"request_type": "ACCESS"}), GdprAccessRequested)
    assert isinstance(parse_gdpr_request(common | {"request_type": "REDACT"}), GdprRedactionRequested)
    with pytest.raises(ValidationFailed) as caught:
        parse_gdpr_request(common | {"request_type": "EXPORT"})
    assert caught.value.field == "request_type"
