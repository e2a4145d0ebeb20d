"""GraphQL at /graphql: the plan's schema (schema.graphql, verbatim), resolved by the service layer.

Served by graphql-server's aiohttp view (queries, mutations, GraphiQL on GET, and the
graphql-transport-ws protocol for subscriptions, which views/graphql_subscriptions.py feeds).
Domain errors become GraphQL errors whose `extensions` carry a `code` and the `field` at fault.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from functools import wraps
from inspect import iscoroutinefunction
from typing import Any

from aiohttp import web
from graphql import GraphQLError, GraphQLSchema, build_schema
from graphql_server.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from prometheus_client import Histogram

from core_app.domain.errors import Conflict, DomainError, NotFound, ValidationFailed
from core_app.security.errors import SecurityError
from core_app.security.graphql_limits import LimitedQueries
from core_app.security.layer import SecurityLayer
from core_app.security.principal import current_principal
from core_app.security.ws import SecuredSubscriptions
from core_app.services.program_settings import ProgramSettingsService
from core_app.settings import REPO_ROOT, get_settings
from views import graphql_customers, graphql_logging
from views.customer_import import principal_of
from views.graphql_customers import context_of
from views.graphql_fast import QueryRunner, answer_checked_query
from views.graphql_logging import RefusedError, graphql_request, log_graphql_refusal
from views.graphql_projection import pure_resolver
from views.graphql_subscriptions import event_payload, on_customer_update, on_import_progress
from views.graphql_transport import CoreGraphQLView
from views.refusals import log_refusal
from views.wiring import components_of

SCHEMA_PATH = REPO_ROOT / "schema.graphql"
query_duration = Histogram("graphql_query_duration_seconds", "GraphQL request latency", ["operation_type"])
DURATIONS = {False: query_duration.labels("operation"), True: query_duration.labels("subscription")}

Resolver = Callable[..., Awaitable[Any]]


def refused(exc: DomainError | SecurityError, merchant_id: object) -> RefusedError:
    """The GraphQL error for a domain or security refusal, with `extensions.code` and the field."""
    if isinstance(exc, SecurityError):
        return RefusedError(exc.reason, exc.extensions, merchant_id)
    if isinstance(exc, ValidationFailed):
        return RefusedError(exc.reason, {"code": "BAD_USER_INPUT", "field": exc.field}, merchant_id)
    if isinstance(exc, NotFound):
        return RefusedError(str(exc), {"code": "NOT_FOUND"}, merchant_id)
    if isinstance(exc, Conflict):
        return RefusedError(exc.reason, {"code": "CONFLICT", "field": exc.field}, merchant_id)
    return RefusedError(str(exc), {"code": "UNAVAILABLE"}, merchant_id)


def domain_errors(resolver: Callable[..., Any]) -> Callable[..., Any]:
    if not iscoroutinefunction(resolver):

        @wraps(resolver)
        def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return resolver(*args, **kwargs)
            except (DomainError, SecurityError) as exc:
                raise refused(exc, kwargs.get("merchant_id")) from None

        return sync_wrapper

    @wraps(resolver)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return await resolver(*args, **kwargs)
        except (DomainError, SecurityError) as exc:
            raise refused(exc, kwargs.get("merchant_id")) from None

    return wrapper


def graphql_customer(view: dict[str, Any]) -> dict[str, Any]:
    # Core never hands out a plaintext email; the non-null field stays empty (docs/decisions.md D32).
    # Only callers with customers:read_pii get a decrypted email (D132).
    return view | {"email": view.get("email") or "", "created_at": view.get("created_at") or ""}


@domain_errors
async def get_customer(_root: Any, info: Any, merchant_id: str, customer_id: str) -> dict[str, Any]:
    components, principal = context_of(info)
    view = await components.customers.get(principal, merchant_id, customer_id, transport="graphql")
    return graphql_customer(view)


@domain_errors
async def get_customer_rfm(_root: Any, info: Any, merchant_id: str, customer_id: str) -> dict[str, int]:
    components, principal = context_of(info)
    return await components.customers.rfm(principal, merchant_id, customer_id)


@domain_errors
async def create_customer(_root: Any, info: Any, merchant_id: str, input: dict[str, Any]) -> dict[str, Any]:
    components, principal = context_of(info)
    view = await components.customers.create(
        principal, merchant_id, input["email"], input["metadata"], transport="graphql"
    )
    return graphql_customer(view)


@domain_errors
async def update_customer(
    _root: Any,
    info: Any,
    merchant_id: str,
    customer_id: str,
    input: dict[str, Any],
) -> dict[str, Any]:
    components, principal = context_of(info)
    customers = components.customers
    view = await customers.update(
        principal, merchant_id, customer_id, input["email"], input["metadata"], transport="graphql"
    )
    return graphql_customer(view)


def _program_settings() -> ProgramSettingsService:
    request = graphql_request.get()
    assert request is not None, "resolvers run inside the /graphql handler"
    return components_of(request).program_settings


@domain_errors
async def get_program_settings(_root: Any, _info: Any, merchant_id: str) -> dict[str, Any]:
    return await _program_settings().get(current_principal.get(), merchant_id)


@domain_errors
async def update_program_settings(
    _root: Any, _info: Any, merchant_id: str, input: dict[str, Any]
) -> dict[str, Any]:
    return await _program_settings().update(
        current_principal.get(), merchant_id, input["rfm_thresholds"], input["loyalty_config"]
    )


@domain_errors
async def import_customers(
    _root: Any, info: Any, merchant_id: str, source: str, file_url: str
) -> dict[str, Any]:
    request = info.context["request"]
    service = components_of(request).customer_import
    return await service.start_import(principal_of(request), merchant_id, source, file_url)


@domain_errors
async def get_import_logs(
    _root: Any, info: Any, merchant_id: str, status: str | None = None
) -> list[dict[str, Any]]:
    request = info.context["request"]
    service = components_of(request).customer_import
    return await service.list_import_logs(principal_of(request), merchant_id, status)


async def not_served_yet(_root: Any, info: Any, **_kwargs: Any) -> Any:
    raise GraphQLError(f"{info.field_name} is not served yet", extensions={"code": "NOT_IMPLEMENTED"})


def _json_scalar(schema: GraphQLSchema) -> None:
    from graphql import value_from_ast_untyped

    scalar = schema.type_map["JSON"]
    scalar.serialize = lambda value: value  # type: ignore[attr-defined]
    scalar.parse_value = lambda value: value  # type: ignore[attr-defined]
    scalar.parse_literal = lambda node, variables=None: value_from_ast_untyped(node, variables)  # type: ignore[attr-defined]


def build_graphql_schema() -> GraphQLSchema:
    schema = build_schema(SCHEMA_PATH.read_text())
    _json_scalar(schema)
    resolvers = {
        "Query": {
            "getCustomer": get_customer,
            "getCustomerRFM": get_customer_rfm,
            "getProgramSettings": get_program_settings,
            "getImportLogs": get_import_logs,
            "customers": domain_errors(graphql_customers.customers),
            "segmentCounts": domain_errors(graphql_customers.segment_counts),
            "customerTimeline": domain_errors(graphql_customers.customer_timeline),
        },
        "Mutation": {
            "createCustomer": create_customer,
            "updateCustomer": update_customer,
            "updateProgramSettings": update_program_settings,
            "importCustomers": import_customers,
        },
    }
    for type_name in ("Query", "Mutation"):
        for name, field in schema.type_map[type_name].fields.items():  # type: ignore[attr-defined]
            field.resolve = resolvers[type_name].get(name, not_served_yet)
    # The settings view carries the segment counts (AdminFeatures', else local; D173), when selected.
    schema.type_map["ProgramSettings"].fields["segment_counts"].resolve = graphql_customers.settings_counts  # type: ignore[attr-defined]
    # `metadata(include: [...])`: the metadata keys to return, as REST's `include=` (Segment's traits).
    metadata = schema.type_map["Customer"].fields["metadata"]  # type: ignore[attr-defined]
    metadata.resolve = pure_resolver(domain_errors(graphql_customers.metadata))
    streams = {"onCustomerUpdate": on_customer_update, "onImportProgress": on_import_progress}
    for name, field in schema.type_map["Subscription"].fields.items():  # type: ignore[attr-defined]
        field.subscribe = domain_errors(streams[name])
        field.resolve = event_payload
    return schema


class LimitedGraphQLView(SecuredSubscriptions, LimitedQueries, CoreGraphQLView):
    """Depth, field-count and size caps on every operation (core_app/security/graphql_limits.py);
    WebSocket connections authenticate on connection_init (core_app/security/ws.py)."""

    max_depth = get_settings().graphql_max_depth
    max_fields = get_settings().graphql_max_fields
    max_bytes = get_settings().graphql_max_query_bytes
    max_body_bytes = get_settings().graphql_max_body_bytes
    max_variables_depth = get_settings().graphql_max_variables_depth

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.query_runner = QueryRunner(self.schema)

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        """A plain POSTed query of a checked document takes the short path (views/graphql_fast.py)."""
        answer = await answer_checked_query(self, request)
        return answer if answer is not None else await super().__call__(request)

    def refused_connection(self, request: web.Request, exc: SecurityError) -> None:
        log_refusal(request, exc.http_status, exc.code)

    def security_layer(self, request: web.Request) -> SecurityLayer:
        return components_of(request).security

    def refused_document(self, errors: list[GraphQLError]) -> None:
        for error in errors:
            log_graphql_refusal(error)


def graphql_handler(
    init_timeout: float | None = None,
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The /graphql handler; `init_timeout` (seconds) defaults to GRAPHQL_WS_INIT_TIMEOUT."""
    timeout = init_timeout if init_timeout is not None else get_settings().graphql_ws_init_timeout
    graphql_logging.install()
    view = LimitedGraphQLView(
        schema=build_graphql_schema(),
        graphql_ide="graphiql",
        subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),  # not the legacy Apollo `graphql-ws`
        connection_init_wait_timeout=timedelta(seconds=timeout),
    )

    async def handle(request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        token = graphql_request.set(request)
        try:
            return await view(request)
        finally:
            graphql_request.reset(token)
            websocket = request.headers.get("Upgrade", "").lower() == "websocket"
            DURATIONS[websocket].observe(time.perf_counter() - started)

    return handle
