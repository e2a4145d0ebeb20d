"""Customer use cases, shared by REST, GraphQL and gRPC.

Reads go table -> Redis (`customer:{merchant_id}:{customer_id}`, 24 h) -> PostgreSQL, and a
PostgreSQL hit is cached in Redis. The sink deletes the Redis entry after each persisted change.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from typing import Any

import orjson

from core_app import metrics, read_source
from core_app.app import app
from core_app.domain.customer import CustomerState, customer_key
from core_app.domain.errors import Conflict, NotFound, Unavailable
from core_app.domain.events import parse_uuid
from core_app.domain.profile import CustomerInput
from core_app.recovery import tables_serving, wait_serving
from core_app.repository import fetch_customer
from core_app.routing import partition_owner, same_worker, table_partition
from core_app.runtime import Runtime, get_runtime
from core_app.security import EDIT, RFM_SCORE, VIEW, guard
from core_app.security.layer import get_security
from core_app.security.principal import READ_PII
from core_app.security.shredding import KeyShredded
from core_app.services.commands import ask_owner
from core_app.services.customer_list import deps_for
from core_app.services.customer_pii import attach_email
from core_app.services.owners import owner_lookup
from core_app.stream_topics import customer_commands
from tables.customers import stored_customer

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
    return orjson.loads(cached) if cached is not None else None


def _json(view: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(view)
    except TypeError:  # integers beyond 64 bits in metadata
        return json.dumps(view).encode()


async def _to_cache(runtime: Runtime, key: str, view: dict[str, Any]) -> None:
    try:
        await runtime.redis.set(key, _json(view), ex=CUSTOMER_CACHE_TTL)
    except Exception as exc:
        metrics.cache_errors.labels("set").inc()
        log.warning("cache write failed", extra={"error": str(exc)})


def stored_view(stored: dict[str, Any]) -> dict[str, Any]:
    """customer_view of a stored state dict, without building the CustomerState (the hot read path).

    A unit test keeps it equal to `customer_view(CustomerState.from_dict(stored))`.
    """
    return {
        "id": stored["customer_id"],
        "merchant_id": stored["merchant_id"],
        "rfm_score": stored.get("rfm_score", {}),
        "metadata": stored.get("metadata", {}),
        "version": stored.get("version", 0),
        "redacted": stored.get("redacted_at") is not None,
        "created_at": stored.get("created_at"),
        "updated_at": stored.get("updated_at"),
    }


def local_view(
    merchant_id: str, customer_id: str, partition: int | None = None, *, active: bool = False
) -> dict[str, Any] | None:
    """This worker's table value (for reads, and the internal owner route)."""
    stored = stored_customer(merchant_id, customer_id, partition, active=active)
    return stored_view(stored) if stored is not None else None


_this_worker: dict[str, bool] = {}  # owner URL -> is it this worker (a handful of entries)


def _is_this_worker(owner: str, runtime: Runtime) -> bool:
    mine = _this_worker.get(owner)
    if mine is None:
        mine = _this_worker[owner] = same_worker(owner, runtime.settings.web_url)
    return mine


async def read_customer(merchant_id: str, customer_id: str) -> tuple[dict[str, Any], str]:
    """The customer's view and the source that answered: table, owner, redis or postgres.

    The key's table partition answers: this worker's when it holds it, else the owner's over the
    internal route. Redis and PostgreSQL answer only for a customer no table holds (none of its events
    reached the tables yet, or the broker lost them): they trail the tables by the sink's lag, so
    answering from them while the partition recovers or its owner is away could show a reader an
    older version than it already saw (D112). That case waits up to READ_RECOVERY_WAIT, then is 503.
    """
    runtime = get_runtime()
    view = await _table_tier(runtime, merchant_id, customer_id)
    if view is not None:
        return view
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


async def _table_tier(
    runtime: Runtime, merchant_id: str, customer_id: str
) -> tuple[dict[str, Any], str] | None:
    """The table's answer, None when no table holds the key; Unavailable while its partition cannot
    answer (recovering, or its owner away) for longer than READ_RECOVERY_WAIT."""
    partition = table_partition(app, "customers", customer_key(merchant_id, customer_id))
    deadline: float | None = None  # set on the first miss only: the common read never waits
    while True:
        owner = partition_owner(app, "customers", partition)
        if owner is None or _is_this_worker(owner, runtime):
            if tables_serving(app):
                view = local_view(merchant_id, customer_id, partition, active=owner is not None)
                return (view, "table") if view is not None else None
            why = "partition recovering"
        else:
            path = f"/internal/v1/customers/{merchant_id}/{customer_id}"
            outcome, view = await owner_lookup(runtime, owner, path)
            if view is not None:
                return view, "owner"
            if outcome == "absent":
                return None
            why = outcome
        now = asyncio.get_running_loop().time()
        if deadline is None:
            deadline = now + runtime.settings.read_recovery_wait
        remaining = deadline - now
        if remaining <= 0:
            metrics.reads_while_recovering.inc()
            raise Unavailable(f"customer {customer_id}: {why}; retry shortly")
        if why == "partition recovering":
            await wait_serving(app, min(remaining, 0.5))
        else:
            await asyncio.sleep(min(remaining, 0.2))


async def get_customer(merchant_id: Any, customer_id: Any, *, transport: str = "rest") -> dict[str, Any]:
    merchant_id = parse_uuid(merchant_id, "merchant_id")
    customer_id = parse_uuid(customer_id, "customer_id")
    principal = await guard(merchant_id, VIEW)
    view, source = await read_customer(merchant_id, customer_id)
    metrics.count_read(metrics.reads, source)
    read_source.record(source)
    view["source"] = source  # every read gives a dict of its own
    if principal is not None and READ_PII in principal.permissions:
        # The decrypted email, audited (core_app/services/customer_pii.py); absent otherwise.
        await attach_email(deps_for(get_runtime()), principal, view, transport)
    return view


async def get_customer_rfm(merchant_id: Any, customer_id: Any) -> dict[str, int]:
    merchant_id = parse_uuid(merchant_id, "merchant_id")
    customer_id = parse_uuid(customer_id, "customer_id")
    await guard(merchant_id, VIEW, flag=RFM_SCORE)
    view, source = await read_customer(merchant_id, customer_id)
    metrics.count_read(metrics.rfm_reads, source)
    read_source.record(source)
    if not view["rfm_score"]:
        raise NotFound("RFM score of customer", customer_id)
    return dict(view["rfm_score"])


async def seal_email(merchant_id: str, customer_id: str, email: str) -> str:
    """The email under the customer's own data key (D67): commands, table state and events carry only
    this, so erasing the key (GDPR) makes every copy in Kafka and RocksDB unreadable."""
    try:
        return await get_security().data_keys.encrypt_email(merchant_id, customer_id, email)
    except KeyShredded:
        raise Conflict("customer_id", "this customer was erased (GDPR) and takes no new email") from None


async def create_customer(merchant_id: Any, email: Any, metadata: Any) -> dict[str, Any]:
    merchant_id = parse_uuid(merchant_id, "merchant_id")
    await guard(merchant_id, EDIT)
    given = CustomerInput.parse(email, metadata, email_required=True)
    customer_id = str(uuid.uuid4())
    command = {"kind": "create", "merchant_id": merchant_id, "customer_id": customer_id}
    command |= {"email": await seal_email(merchant_id, customer_id, given.email), "metadata": given.metadata}
    return await ask_owner(customer_commands, customer_key(merchant_id, customer_id), command)


async def update_customer(merchant_id: Any, customer_id: Any, email: Any, metadata: Any) -> dict[str, Any]:
    merchant_id = parse_uuid(merchant_id, "merchant_id")
    customer_id = parse_uuid(customer_id, "customer_id")
    await guard(merchant_id, EDIT)
    given = CustomerInput.parse(email, metadata, email_required=False)
    command = {"kind": "update", "merchant_id": merchant_id, "customer_id": customer_id}
    sealed = await seal_email(merchant_id, customer_id, given.email) if given.email else None
    command |= {"email": sealed, "metadata": given.metadata, "requested_at_ms": int(time.time() * 1000)}
    return await ask_owner(customer_commands, customer_key(merchant_id, customer_id), command)
