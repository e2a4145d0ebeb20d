"""GraphQL over HTTP and over WebSocket (`graphql-transport-ws`) on aiohttp.

graphql-server's aiohttp view implements the protocol (connection_init/ack, ping/pong, subscribe,
next, error, complete; closes 4400 bad message, 4401 subscribe before ack, 4403 init rejected,
4406 subprotocol, 4408 init timeout, 4409 duplicate id, 4429 second init) over graphql-core's
`subscribe()`. This adds our socket options, a cap on the request body (graphql-server reads it
past aiohttp's `client_max_size`), errors in the GraphQL shape where graphql-server answers plain text,
and one fix; authentication on connection_init is `core_app.security.ws.SecuredSubscriptions`, mixed
in by views/graphql.py.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from graphql import GraphQLError
from graphql_server.aiohttp.views import AiohttpHTTPRequestAdapter, GraphQLView
from graphql_server.exceptions import GraphQLValidationError
from graphql_server.http.exceptions import HTTPException
from graphql_server.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)

from core_app.security.graphql_limits import GraphQLRequestError, too_deep_variables
from views.graphql_fast import BODY_KEY
from views.graphql_logging import log_graphql_refusal
from views.live import live_socket, open_live
from views.refusals import code_of, error_response, log_refusal

DEFAULT_MAX_BODY_BYTES = 1024 * 1024


class BoundedRequestAdapter(AiohttpHTTPRequestAdapter):
    """Reads at most `max_bytes` of body: graphql-server reads the stream itself, past aiohttp's
    `client_max_size`, so without this a 10 MB body was read and parsed."""

    max_bytes = DEFAULT_MAX_BODY_BYTES

    async def get_body(self) -> str:
        already_read = self.request.get(BODY_KEY)
        if already_read is not None:  # by views/graphql_fast.py, which declined the request
            return already_read.decode()
        limit = self.max_bytes
        length = self.request.content_length
        if length is not None and length > limit:
            raise self.too_large()
        chunks, size = [], 0
        async for chunk in self.request.content.iter_any():
            size += len(chunk)
            if size > limit:
                raise self.too_large()
            chunks.append(chunk)
        return b"".join(chunks).decode()

    def too_large(self) -> GraphQLRequestError:
        message = f"request body is larger than {self.max_bytes} bytes (GRAPHQL_MAX_BODY_BYTES)"
        return GraphQLRequestError(413, message, "PAYLOAD_TOO_LARGE")


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

    async def handle_subscribe(self, message: Any) -> None:
        """Variables nested too deeply: an `error` for that operation, as for any refused request."""
        payload = message.get("payload") if isinstance(message, dict) else None
        variables = payload.get("variables") if isinstance(payload, dict) else None
        limit = getattr(self.view, "max_variables_depth", None)
        problem = too_deep_variables(variables, limit) if limit and self.connection_acknowledged else None
        if problem is None:
            await super().handle_subscribe(message)
            return
        error = GraphQLError(problem, extensions={"code": "BAD_USER_INPUT", "field": "variables"})
        log_graphql_refusal(error)
        await self.send_message({"id": message["id"], "type": "error", "payload": [error.formatted]})

    async def run_operation(self, operation: Operation) -> None:  # type: ignore[type-arg]
        operation.__class__ = _Operation  # same slots: only send_initial_errors differs
        await super().run_operation(operation)


class CoreGraphQLView(GraphQLView):
    graphql_transport_ws_handler_class = TransportWSHandler
    max_body_bytes = DEFAULT_MAX_BODY_BYTES

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        limit = self.max_body_bytes
        self.request_adapter_class = type("RequestAdapter", (BoundedRequestAdapter,), {"max_bytes": limit})

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        """graphql-server answers its own refusals (bad JSON, 405, ...) in plain text: JSON here."""
        try:
            return await self.run(request=request)
        except HTTPException as exc:
            if exc.status_code < 400:  # a CORS preflight (OPTIONS) is answered 200, empty
                return web.Response(status=exc.status_code)
            code = getattr(exc, "code", None) or code_of(exc.status_code)
            field = getattr(exc, "field", None)
            log_refusal(request, exc.status_code, code, field)
            response = error_response(request, exc.status_code, exc.reason, code, field)
            if exc.status_code == 405:
                response.headers["Allow"] = "GET, POST"
            return response

    async def create_websocket_response(
        self, request: web.Request, subprotocol: str | None
    ) -> web.WebSocketResponse:
        # A subscribe message is a request too: bounded like an HTTP body (aiohttp closes 1009 above).
        ws = live_socket([subprotocol] if subprotocol else [], max_msg_size=self.max_body_bytes)
        await open_live(request, ws)
        return ws

    async def get_context(self, request: web.Request, response: Any) -> dict[str, Any]:
        return {"request": request, "response": response}
