"""`gdpr_request.created` ACCESS through the event pipeline on fakes (agents/pipeline.py,
agents/gdpr_hooks.py): served as a data export instead of dead-lettered as invalid, tracked, and
dead-lettered on its own (`gdpr_failed`) when every attempt fails."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from agents.gdpr_hooks import GdprHooks
from agents.pipeline import PipelineDeps, process_batch
from agents.repartition import own_partition
from core_app import topics
from core_app.domain.events import parse_gdpr_request
from core_app.services import gdpr_requests
from core_app.settings import Settings
from tests.unit.fakes import (
    FakeCodec,
    FakeCustomerStore,
    FakeDataKeys,
    FakeDeadLetters,
    FakeEvent,
    FakeMessage,
    customer_state,
    gdpr_deps,
)

M, C = str(uuid.uuid4()), str(uuid.uuid4())
KEY = f"{M}:{C}"


def access_event(request_id: str, offset: int = 3) -> FakeEvent:
    record = {
        "event_id": str(uuid.uuid4()),
        "merchant_id": M,
        "customer_id": C,
        "request_id": request_id,
        "request_type": "ACCESS",
        "requested_by": "dpo@admincore",
        "occurred_at": 1_700_000_000_000,
    }
    message = FakeMessage(
        topics.GDPR_REQUEST_CREATED, own_partition(KEY), offset, KEY, json.dumps(record).encode()
    )
    return FakeEvent(message)


def pipeline(gdpr: Any) -> tuple[PipelineDeps, FakeDeadLetters]:
    letters, fake = FakeDeadLetters(), None
    deps = PipelineDeps(
        FakeCodec(), letters, FakeDataKeys(), fake, fake, Settings(), GdprHooks(gdpr, letters)
    )  # type: ignore[arg-type]
    return deps, letters


async def test_an_access_request_is_served_as_an_export_and_tracked() -> None:
    store = FakeCustomerStore(merchants={M})
    store.rows[(M, C)] = customer_state(M, C, metadata={"points": {"balance": 5, "tier": "silver"}})
    store.emails[(M, C)] = "ann@example.com"
    gdpr = gdpr_deps(store=store)
    deps, letters = pipeline(gdpr)
    request_id = str(uuid.uuid4())
    await process_batch(deps, [access_event(request_id)], topics.GDPR_REQUEST_CREATED, parse_gdpr_request)  # type: ignore[list-item]
    assert letters.sent == []
    row = gdpr.requests.rows[request_id]
    assert (
        row["status"] == "done" and row["request"].source == "admincore" and row["request"].kind == "access"
    )
    [(key, ready)] = gdpr.publish.on(topics.GDPR_EXPORT_READY)
    assert key == M and ready["export_id"] == row["result"]["export_id"] and ready["found"] is True


async def test_an_access_request_that_keeps_failing_is_dead_lettered_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(gdpr_requests, "BACKOFF_SECONDS", 0.0)

    class Broken(FakeCustomerStore):
        async def email_of(self, merchant_id: str, customer_id: str) -> Any:
            raise RuntimeError("pgcrypto key missing")

    store = Broken(merchants={M})
    store.rows[(M, C)] = customer_state(M, C)
    gdpr = gdpr_deps(store=store)
    deps, letters = pipeline(gdpr)
    request_id = str(uuid.uuid4())
    await process_batch(
        deps, [access_event(request_id, offset=9)], topics.GDPR_REQUEST_CREATED, parse_gdpr_request
    )  # type: ignore[list-item]
    [(record, kind, reason)] = letters.sent
    assert (kind, record.offset) == ("gdpr_failed", 9) and "pgcrypto key missing" in reason
    assert gdpr.requests.rows[request_id]["status"] == "failed"
