"""GraphQL `customers(merchant_id, first, after, filter)`: a Relay-style connection over the list use
case (core_app/services/customer_list.py). Errors are mapped by views/graphql.py's `domain_errors`."""

from __future__ import annotations

import logging
from typing import Any

from graphql import FieldNode, FragmentSpreadNode, GraphQLResolveInfo, InlineFragmentNode, SelectionSetNode

from core_app.components import Components
from core_app.domain.customer_query import FIELDS, parse_include, project_metadata
from core_app.security.principal import Principal
from core_app.services import customer_list, segments
from core_app.services import customer_timeline as timeline
from views.customer_list import principal_of
from views.wiring import components_of

log = logging.getLogger(__name__)


def context_of(info: GraphQLResolveInfo) -> tuple[Components, Principal | None]:
    """The worker's components and the caller, from the request in the resolver's context."""
    request = info.context["request"]
    return components_of(request), principal_of(request)


def selected_names(info: GraphQLResolveInfo) -> set[str]:
    """Every field name selected under this field, through fragments: what the page must fetch."""
    names: set[str] = set()
    pending: list[SelectionSetNode | None] = [node.selection_set for node in info.field_nodes]
    seen_fragments: set[str] = set()
    while pending:
        selection_set = pending.pop()
        for selection in selection_set.selections if selection_set else ():
            if isinstance(selection, FieldNode):
                names.add(selection.name.value)
                pending.append(selection.selection_set)
            elif isinstance(selection, InlineFragmentNode):
                pending.append(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode) and selection.name.value not in seen_fragments:
                seen_fragments.add(selection.name.value)
                fragment = info.fragments.get(selection.name.value)
                pending.append(fragment.selection_set if fragment else None)
    return names


def _node(item: dict[str, Any]) -> dict[str, Any]:
    # Customer.email is non-null in the plan's schema: empty unless the caller may read it.
    return item | {"email": item.get("email") or "", "created_at": item.get("created_at") or ""}


async def customers(
    _root: Any,
    info: GraphQLResolveInfo,
    merchant_id: str,
    first: int | None = None,
    after: str | None = None,
    filter: dict[str, Any] | None = None,
) -> dict[str, Any]:
    wanted = selected_names(info)
    raw: dict[str, Any] = {
        **(filter or {}),
        "merchant_id": merchant_id,
        "limit": first,
        "cursor": after,
        "fields": [name for name in FIELDS if name in wanted or name == "id"],
    }
    components, principal = context_of(info)
    page = await customer_list.list_customers(components.customer_list, principal, raw, transport="graphql")
    edges = [{"cursor": page.cursor_after(item["id"]), "node": _node(item)} for item in page.items]
    return {
        "edges": edges,
        "pageInfo": {"hasNextPage": page.has_more, "endCursor": edges[-1]["cursor"] if edges else None},
    }


async def segment_counts(_root: Any, info: GraphQLResolveInfo, merchant_id: str) -> dict[str, Any]:
    components, principal = context_of(info)
    return await segments.segment_counts(components.segments, principal, merchant_id)


async def customer_timeline(
    _root: Any,
    info: GraphQLResolveInfo,
    merchant_id: str,
    customer_id: str,
    first: int | None = None,
    after: str | None = None,
) -> dict[str, Any]:
    components, principal = context_of(info)
    page = await timeline.customer_timeline(
        components.customer_timeline, principal, merchant_id, customer_id, limit=first, cursor=after
    )
    page["pageInfo"] = {"hasNextPage": page["has_more"], "endCursor": page["next_cursor"]}
    return page


def metadata(customer: dict[str, Any], _info: GraphQLResolveInfo, include: list[str] | None = None) -> Any:
    return project_metadata(customer.get("metadata"), parse_include(include))


async def settings_counts(settings: dict[str, Any], info: GraphQLResolveInfo) -> dict[str, Any] | None:
    """ProgramSettings.segment_counts: null when the counts cannot be read (the settings still answer)."""
    components, principal = context_of(info)
    try:
        return await segments.segment_counts(components.segments, principal, settings["merchant_id"])
    except Exception as exc:  # PostgreSQL away: as the REST view, the settings answer without counts
        log.warning("segment counts unreadable", extra={"error": str(exc)})
        return None
