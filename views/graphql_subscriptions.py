"""GraphQL subscriptions, fed by this worker's fan-out hub (updates from every worker).

`onCustomerUpdate(merchant_id)` yields a `Customer` per `customer.updated`; `onImportProgress(merchant_id,
import_id)` an `ImportLog` per progress message of that import. A client that falls more than
FANOUT_QUEUE_SIZE updates behind is dropped: its socket is closed with 4008, like the updates stream.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from graphql import FieldNode, GraphQLResolveInfo

from core_app.domain.errors import DomainError
from core_app.domain.events import parse_uuid
from core_app.fanout import CUSTOMER_UPDATED, IMPORT_PROGRESS, Update, UpdateFilter, get_hub
from core_app.security.principal import VIEW, Principal
from core_app.services.customers import CustomerService
from views.graphql_customers import context_of
from views.live import CLOSE_TOO_SLOW, TOO_SLOW_REASON, close_later

Payload = dict[str, Any]


async def _live(
    info: GraphQLResolveInfo, update_filter: UpdateFilter, to_payload: Callable[[Update], Awaitable[Payload]]
) -> AsyncIterator[Payload]:
    """The subscription's event stream. It joins the hub when iteration starts, so an operation that
    is cancelled before its first event leaves nothing behind, and leaves it however iteration ends."""
    request, ws = info.context["request"], info.context["response"]

    def on_drop() -> None:
        close_later(request, ws, CLOSE_TOO_SLOW, TOO_SLOW_REASON)

    subscription = get_hub().subscribe(update_filter, "graphql", on_drop)
    try:
        async for update in subscription:
            yield await to_payload(update)
    finally:
        subscription.close()


def selects(info: GraphQLResolveInfo, name: str) -> bool:
    """Whether the subscription's selection may include the field `name` (fragments: assume so)."""
    selection_set = info.field_nodes[0].selection_set
    if selection_set is None:
        return False
    return any(
        not isinstance(selection, FieldNode) or selection.name.value == name
        for selection in selection_set.selections
    )


def customer_payload(update: Update, created_at: str) -> Payload:
    """A `Customer` from a `customer.updated` message (Core never hands out the email: D32)."""
    return {
        "id": update["customer_id"],
        "merchant_id": update["merchant_id"],
        "email": "",
        "rfm_score": update.get("rfm_score") or {},
        "metadata": update.get("metadata") or {},
        "created_at": created_at,
        "updated_at": update.get("updated_at"),
    }


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def import_payload(update: Update) -> Payload:
    """An `ImportLog` from an `import.progress` message; `record_count` is the rows processed so far."""
    return {
        "import_id": update["import_id"],
        "merchant_id": update["merchant_id"],
        "source": update.get("source") or "",
        "status": update.get("status") or "",
        "record_count": _count(update.get("record_count", update.get("processed"))),
        "error_log": update.get("error_log"),
        "created_at": update.get("created_at") or "",
    }


async def _created_at(
    customers: CustomerService, principal: Principal | None, merchant_id: str, customer_id: str
) -> str:
    """`customer.updated` does not carry `created_at`: one read per customer per subscription."""
    try:
        view = await customers.get(principal, merchant_id, customer_id)
    except DomainError:
        return ""
    return str(view.get("created_at") or "")


async def on_customer_update(
    _root: Any, info: GraphQLResolveInfo, merchant_id: str
) -> AsyncIterator[Payload]:
    merchant_id = parse_uuid(merchant_id, "merchant_id")
    components, principal = context_of(info)
    await components.security.guard(principal, merchant_id, VIEW)
    get_hub()  # Unavailable while the worker starts: an error now rather than a silent stream
    with_created_at = selects(info, "created_at")
    created: dict[str, str] = {}

    async def to_payload(update: Update) -> Payload:
        customer_id = update["customer_id"]
        if with_created_at and customer_id not in created:
            created[customer_id] = await _created_at(
                components.customers, principal, update["merchant_id"], customer_id
            )
        return customer_payload(update, created.get(customer_id, ""))

    return _live(info, UpdateFilter(merchant_id, types=frozenset({CUSTOMER_UPDATED})), to_payload)


async def on_import_progress(
    _root: Any, info: GraphQLResolveInfo, merchant_id: str, import_id: str
) -> AsyncIterator[Payload]:
    merchant_id = parse_uuid(merchant_id, "merchant_id")
    import_id = parse_uuid(import_id, "import_id")
    components, principal = context_of(info)
    await components.security.guard(principal, merchant_id, VIEW)
    get_hub()

    async def to_payload(update: Update) -> Payload:
        return import_payload(update)

    update_filter = UpdateFilter(merchant_id, types=frozenset({IMPORT_PROGRESS}), import_id=import_id)
    return _live(info, update_filter, to_payload)


def event_payload(payload: Payload, _info: GraphQLResolveInfo, **_args: Any) -> Payload:
    """The value of a subscription field for one event is the event's payload itself."""
    return payload
