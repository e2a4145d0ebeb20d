"""GraphQL over HTTP and over WebSocket (`graphql-transport-ws`) on aiohttp.

graphql-server's aiohttp view implements the protocol (connection_init/ack, ping/pong, subscribe,
next, error, complete; closes 4400 bad message, 4401 subscribe before ack, 4403 init rejected,
4406 subprotocol, 4408 init timeout, 4409 duplicate id, 4429 second init) over graphql-core's
`subscribe()`. This adds our socket options and one fix; authentication on connection_init is
`core_app.security.ws.SecuredSubscriptions`, mixed in by views/graphql.py.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from graphql import GraphQLError
from graphql_server.aiohttp.views import GraphQLView
from graphql_server.exceptions import GraphQLValidationError
from graphql_server.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)

from views.live import live_socket, open_live


def unwrap(errors: list[GraphQLError]) -> list[GraphQLError]:
    """The errors a `GraphQLValidationError` stands for, in place of its bare "Validation failed"."""
    return [
        inner
        for error in errors
        for inner in (error.errors if isinstance(error, GraphQLValidationError) else [error])
    ]


class _Operation(Operation):  # type: ignore[type-arg]
    __slots__ = ()

    async def send_initial_errors(self, errors: list[GraphQLError]) -> None:
        await super().send_initial_errors(unwrap(errors))


class TransportWSHandler(BaseGraphQLTransportWSHandler):  # type: ignore[type-arg]
    """graphql-server 3.0.0 wraps the errors raised before a subscription's first event (a bad
    argument, a resolver error) in one GraphQLValidationError and sends only its message, so the
    client's `error` lost `extensions.code` and `field`. Its operations send the wrapped errors."""

    async def run_operation(self, operation: Operation) -> None:  # type: ignore[type-arg]
        operation.__class__ = _Operation  # same slots: only send_initial_errors differs
        await super().run_operation(operation)


class CoreGraphQLView(GraphQLView):
    graphql_transport_ws_handler_class = TransportWSHandler

    async def create_websocket_response(
        self, request: web.Request, subprotocol: str | None
    ) -> web.WebSocketResponse:
        ws = live_socket([subprotocol] if subprotocol else [])
        await open_live(request, ws)
        return ws

    async def get_context(self, request: web.Request, response: Any) -> dict[str, Any]:
        return {"request": request, "response": response}
