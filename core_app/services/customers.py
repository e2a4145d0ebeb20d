"""Customer use cases, shared by REST, GraphQL and gRPC."""

from __future__ import annotations

from typing import Any

from core_app import metrics
from core_app.domain.customer import CustomerState
from core_app.domain.errors import NotFound
from core_app.domain.events import parse_uuid
from core_app.repository import fetch_customer
from core_app.runtime import get_runtime
from tables.customers import local_customer


def customer_view(state: CustomerState, source: str) -> dict[str, Any]:
    """The public shape of a customer: no email ciphertext or hash, both internal."""
    return {
        "id": state.customer_id,
        "merchant_id": state.merchant_id,
        "rfm_score": state.rfm_score,
        "metadata": state.metadata,
        "version": state.version,
        "redacted": state.redacted,
        "created_at": state.created_at,
        "updated_at": state.updated_at,
        "source": source,
    }


async def get_customer(merchant_id: Any, customer_id: Any) -> dict[str, Any]:
    merchant_id = parse_uuid(merchant_id, "merchant_id")
    customer_id = parse_uuid(customer_id, "customer_id")
    state = local_customer(merchant_id, customer_id)
    source = "table"
    if state is None:
        state = await fetch_customer(get_runtime().pool, merchant_id, customer_id)
        source = "postgres"
    if state is None:
        raise NotFound("customer", customer_id)
    metrics.reads.labels(source).inc()
    return customer_view(state, source)
