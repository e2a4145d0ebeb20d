"""GraphQL refusals as one INFO/WARNING line each, not ERROR with a traceback.

graphql-server logs every error of a result at ERROR on `graphql_server.execution`, with the
traceback of its original exception, whether a resolver refused bad input or crashed. A filter on
that logger keeps faults as they are and turns refusals (BAD_USER_INPUT, NOT_FOUND, FORBIDDEN, a
variable of the wrong type, ...) into one line from views/refusals.py with the code, field, merchant
and request id (docs/decisions.md D151).
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from typing import Any

from aiohttp import web
from graphql import GraphQLError

from core_app.domain.errors import DomainError
from core_app.security.errors import SecurityError
from views.refusals import log_refusal

LIBRARY_LOGGER = "graphql_server.execution"
# The HTTP request (or WebSocket upgrade) being served: set by the /graphql handler; a subscription's
# tasks inherit it.
graphql_request: ContextVar[web.Request | None] = ContextVar("graphql_request", default=None)


class RefusedError(GraphQLError):
    """A resolver's refusal: the GraphQL error a client sees, and the merchant for the log line."""

    def __init__(self, message: str, extensions: dict[str, Any], merchant_id: object = None) -> None:
        super().__init__(message, extensions=extensions)
        self.merchant_id = merchant_id


def is_refusal(error: GraphQLError) -> bool:
    """Whether an error is the caller's (bad input, refused access), not a fault of ours: graphql-core's
    own request errors have no original exception; resolvers refuse with these types."""
    original = error.original_error
    return original is None or isinstance(original, GraphQLError | SecurityError | DomainError)


def log_graphql_refusal(error: GraphQLError) -> None:
    extensions = error.extensions or {}
    code = str(extensions.get("code") or "GRAPHQL_VALIDATION_FAILED")
    field = extensions.get("field")
    merchant = getattr(error.original_error, "merchant_id", None)
    log_refusal(graphql_request.get(), 200, code, str(field) if field else None, merchant)


class RefusalFilter(logging.Filter):
    """On graphql-server's logger: a refusal is logged by us instead; a fault passes unchanged."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.msg
        if not isinstance(error, GraphQLError) or not is_refusal(error):
            return True
        log_graphql_refusal(error)
        return False


def install() -> None:
    logger = logging.getLogger(LIBRARY_LOGGER)
    if not any(isinstance(f, RefusalFilter) for f in logger.filters):
        logger.addFilter(RefusalFilter())
