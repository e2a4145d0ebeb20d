"""Customer use cases, shared by REST, GraphQL and gRPC.

Reads go table -> Redis (`customer:{merchant_id}:{customer_id}`, 24 h) -> PostgreSQL, and a
PostgreSQL hit is cached in Redis. The sink deletes the Redis entry after each persisted change.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any

from agents.topics import customer_commands
from core_app import metrics, read_source
from core_app.app import app
from core_app.domain.customer import CustomerState, customer_key
from core_app.domain.errors import NotFound
from core_app.domain.events import parse_uuid
from core_app.domain.profile import CustomerInput
from core_app.repository import fetch_customer
from core_app.routing import owner_url, same_worker
from core_app.runtime import Runtime, get_runtime
from core_app.services.commands import ask_owner
from core_app.services.owners import owner_get
from tables.customers import local_customer

log = logging.getLogger(__name__)

CUSTOMER_CACHE_TTL = 24 * 3600


def customer_view(state: CustomerState) -> dict[str, Any]:
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
    }


def cache_key(runtime: Runtime, merchant_id: str, customer_id: str) -> str:
    return runtime.redis_key(f"customer:{merchant_id}:{customer_id}")


async def _from_cache(runtime: Runtime, key: str) -> dict[str, Any] | None:
    try:
        cached = await runtime.redis.get(key)
    except Exception as exc:  # a cache outage degrades to PostgreSQL, it never fails the read
        metrics.cache_errors.labels("get").inc()
        metrics.cache_lookup("customer", hit=False)
        log.warning("cache read failed", extra={"error": str(exc)})
        return None
    metrics.cache_lookup("customer", hit=cached is not None)
    return json.loads(cached) if cached is not None else None


async def _to_cache(runtime: Runtime, key: str, view: dict[str, Any]) -> None:
    try:
        await runtime.redis.set(key, json.dumps(view), ex=CUSTOMER_CACHE_TTL)
    except Exception as exc:
        metrics.cache_errors.labels("set").inc()
        log.warning("cache write failed", extra={"error": str(exc)})


def local_view(merchant_id: str, customer_id: str) -> dict[str, Any] | None:
    """This worker's table value, for the internal owner route."""
    state = local_customer(merchant_id, customer_id)
    return customer_view(state) if state is not None else None


async def read_customer(merchant_id: str, customer_id: str) -> tuple[dict[str, Any], str]:
    """The customer's view and the source that answered: table, owner, redis or postgres.

    The local table answers when this worker holds the key's partition; otherwise the owner worker
    is asked over the internal route. Either can miss a customer that no event has touched yet.
    """
    runtime = get_runtime()
    owner = owner_url(app, "customers", customer_key(merchant_id, customer_id))
    if owner is None or same_worker(owner, runtime.settings.web_url):
        view = local_view(merchant_id, customer_id)
        if view is not None:
            return view, "table"
    else:
        view = await owner_get(runtime, owner, f"/internal/v1/customers/{merchant_id}/{customer_id}")
        if view is not None:
            return view, "owner"
    key = cache_key(runtime, merchant_id, customer_id)
    cached = await _from_cache(runtime, key)
    if cached is not None:
        return cached, "redis"
    state = await fetch_customer(runtime.pool, merchant_id, customer_id)
    if state is None:
        raise NotFound("customer", customer_id)
    view = customer_view(state)
    await _to_cache(runtime, key, view)
    return view, "postgres"


async def get_customer(merchant_id: Any, customer_id: Any) -> dict[str, Any]:
    merchant_id = parse_uuid(merchant_id, "merchant_id")
    customer_id = parse_uuid(customer_id, "customer_id")
    view, source = await read_customer(merchant_id, customer_id)
    metrics.reads.labels(source).inc()
    read_source.record(source)
    return view | {"source": source}


async def get_customer_rfm(merchant_id: Any, customer_id: Any) -> dict[str, int]:
    merchant_id = parse_uuid(merchant_id, "merchant_id")
    customer_id = parse_uuid(customer_id, "customer_id")
    view, source = await read_customer(merchant_id, customer_id)
    metrics.rfm_reads.labels(source).inc()
    read_source.record(source)
    if not view["rfm_score"]:
        raise NotFound("RFM score of customer", customer_id)
    return dict(view["rfm_score"])


async def create_customer(merchant_id: Any, email: Any, metadata: Any) -> dict[str, Any]:
    merchant_id = parse_uuid(merchant_id, "merchant_id")
    given = CustomerInput.parse(email, metadata, email_required=True)
    customer_id = str(uuid.uuid4())
    command = {"kind": "create", "merchant_id": merchant_id, "customer_id": customer_id}
    command |= {"email": given.email, "metadata": given.metadata}
    return await ask_owner(customer_commands, customer_key(merchant_id, customer_id), command)


async def update_customer(merchant_id: Any, customer_id: Any, email: Any, metadata: Any) -> dict[str, Any]:
    merchant_id = parse_uuid(merchant_id, "merchant_id")
    customer_id = parse_uuid(customer_id, "customer_id")
    given = CustomerInput.parse(email, metadata, email_required=False)
    command = {"kind": "update", "merchant_id": merchant_id, "customer_id": customer_id}
    command |= {"email": given.email, "metadata": given.metadata, "requested_at_ms": int(time.time() * 1000)}
    return await ask_owner(customer_commands, customer_key(merchant_id, customer_id), command)
