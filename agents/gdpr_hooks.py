"""What the event pipeline does with `gdpr_request.created` besides erasing (D160, D162): every
request is tracked with its 30-day deadline, a REDACT is done once it is applied (or found applied),
and an ACCESS request is served by building the customer's data export. An access request that
fails every attempt is dead-lettered on its own (`gdpr_failed`, replayable with `core dlq replay`)
and stays open in `gdpr_requests`, where the deadline alert sees it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from faust.types import EventT

from agents.dead_letter import dead_letter_event
from core_app.domain.events import GdprAccessRequested, GdprRedactionRequested
from core_app.domain.gdpr import GdprRequest, error_text
from core_app.services import gdpr_requests
from core_app.services.gdpr_deps import GdprDeps
from core_app.services.gdpr_export import build_export
from core_app.services.ports import DeadLetters

GdprEvent = GdprAccessRequested | GdprRedactionRequested


def request_of(event: GdprEvent) -> GdprRequest:
    """The tracked request of an event: AdminCore's request id (Shopify's REDACTs carry the id the
    webhook recorded), received when the producer says it happened."""
    return GdprRequest(
        event.request_id,
        "access" if isinstance(event, GdprAccessRequested) else "redact",
        "shopify" if event.requested_by.startswith("shopify:") else "admincore",
        event.merchant_id,
        datetime.fromtimestamp(event.occurred_at_ms / 1000, UTC),
        customer_id=event.customer_id,
        external_id=event.request_id,
    )


class GdprHooks:
    def __init__(self, deps: GdprDeps, dead_letters: DeadLetters) -> None:
        self.deps = deps
        self.dead_letters = dead_letters

    async def received(self, events: list[Any]) -> None:
        await gdpr_requests.record(self.deps.requests, [request_of(event) for event in events])

    async def redacted(self, events: list[GdprRedactionRequested]) -> None:
        for event in events:
            result = {"customer_id": event.customer_id, "erased": True}
            await gdpr_requests.finish(self.deps.requests, request_of(event), result)

    async def serve_access(self, raw: EventT, event: GdprAccessRequested, topic: str) -> None:
        request = request_of(event)

        async def export() -> dict[str, Any]:
            return await build_export(self.deps, request)

        try:
            await gdpr_requests.run_tracked(self.deps.requests, request, export)
        except Exception as exc:  # reported by run_tracked; the record goes to the DLQ, never dropped
            await dead_letter_event(self.dead_letters, raw, "gdpr_failed", error_text(exc), topic)
