"""`gdpr_request.created` (AdminCore; Shopify's customers/redact too) -> REDACT: email and metadata
gone from the table, PostgreSQL (through the sink) and Redis, the data key shredded, an audit row,
a PII-free `customer.updated`; ACCESS: the customer's data export (agents/gdpr_hooks.py). Every
request is tracked with its deadline (D160)."""

from __future__ import annotations

from faust.types import StreamT

from agents.pipeline import batch_handler, consume
from core_app import batch_delivery, topics
from core_app.app import app
from core_app.domain.events import parse_gdpr_request
from core_app.stream_topics import gdpr_request_created


@app.agent(gdpr_request_created, name="gdpr-request-created")
async def gdpr_request_created_agent(stream: StreamT) -> None:
    await consume(stream, topics.GDPR_REQUEST_CREATED, parse_gdpr_request, app.components)


# Its records come in batches past the agent's stream (D234); the agent serves when that is off.
batch_delivery.route(
    topics.GDPR_REQUEST_CREATED,
    batch_handler(topics.GDPR_REQUEST_CREATED, parse_gdpr_request, lambda: app.components),
)
