"""Caps on GraphQL documents: size, tokens, selection depth and total selected fields.

`limit_rules(max_depth, max_fields)` are graphql-core validation rules (fragments expanded, so a
fragment spread many times counts many times). `LimitedQueries` is a mixin for graphql-server's
view: it parses with token limits, validates with the spec rules plus these, and hands the checked
document on. The WebSocket module should run `check_document` on `subscribe` payloads the same way.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from graphql import (
    ASTValidationRule,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    parse,
    specified_rules,
    validate,
)
from graphql_server.http.exceptions import HTTPException

from core_app.domain.json_depth import deeper_than, nesting_message, too_deep_member

MAX_TOKENS_PER_BYTE = 1  # a token is at least one byte, so the byte cap bounds the token count too


def _walk(
    selection_set: SelectionSetNode | None,
    fragments: dict[str, FragmentDefinitionNode],
    depth: int,
    seen: frozenset[str],
) -> tuple[int, int]:
    """(deepest field level, number of fields) under a selection set."""
    if selection_set is None:
        return depth, 0
    deepest, count = depth, 0
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            sub_depth, sub_count = _walk(selection.selection_set, fragments, depth + 1, seen)
            deepest, count = max(deepest, sub_depth), count + 1 + sub_count
        elif isinstance(selection, InlineFragmentNode):
            sub_depth, sub_count = _walk(selection.selection_set, fragments, depth, seen)
            deepest, count = max(deepest, sub_depth), count + sub_count
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            fragment = fragments.get(name)
            if fragment is None or name in seen:  # unknown or cyclic: the spec rules report it
                continue
            sub_depth, sub_count = _walk(fragment.selection_set, fragments, depth, seen | {name})
            deepest, count = max(deepest, sub_depth), count + sub_count
    return deepest, count


def measure(document: DocumentNode) -> list[tuple[str, int, int]]:
    """(operation name, depth, fields) of each operation in the document."""
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    found = []
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            depth, fields = _walk(definition.selection_set, fragments, 0, frozenset())
            found.append((definition.name.value if definition.name else "anonymous", depth, fields))
    return found


def limit_rules(max_depth: int, max_fields: int) -> tuple[type[ASTValidationRule], ...]:
    class QueryLimitRule(ASTValidationRule):
        def enter_document(self, node: DocumentNode, *_args: Any) -> None:
            for name, depth, fields in measure(node):
                if depth > max_depth:
                    self.report_error(
                        GraphQLError(
                            f"operation {name} is {depth} levels deep; the limit is {max_depth}",
                            extensions={"code": "QUERY_TOO_DEEP"},
                        )
                    )
                if fields > max_fields:
                    self.report_error(
                        GraphQLError(
                            f"operation {name} selects {fields} fields; the limit is {max_fields}",
                            extensions={"code": "QUERY_TOO_COMPLEX"},
                        )
                    )

    return (QueryLimitRule,)


def check_document(
    schema: GraphQLSchema, query: str, *, max_depth: int, max_fields: int, max_bytes: int
) -> tuple[DocumentNode | None, list[GraphQLError]]:
    """Parse and validate with every limit; (document, []) or (None, errors)."""
    if len(query.encode()) > max_bytes:
        too_big = GraphQLError(
            f"query is larger than {max_bytes} bytes", extensions={"code": "QUERY_TOO_LARGE"}
        )
        return None, [too_big]
    try:
        document = parse(query, max_tokens=max_bytes * MAX_TOKENS_PER_BYTE)
    except GraphQLError as exc:
        return None, [exc]
    rules: Iterable[type[ASTValidationRule]] = (*specified_rules, *limit_rules(max_depth, max_fields))
    errors = validate(schema, document, tuple(rules))
    return (None, errors) if errors else (document, [])


class CheckedDocuments:
    """Documents that passed `check_document`, by query text, the least recently used dropped past
    `size`. Clients send the same few queries over and over, and parsing plus validating one cost
    about ten times what running it does (docs/benchmarks.md, reads (c2)). The check depends only on
    the text, the schema and the limits, which are fixed per view; refused texts are not kept."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._documents: OrderedDict[str, DocumentNode] = OrderedDict()

    def get(self, query: str) -> DocumentNode | None:
        document = self._documents.get(query)
        if document is not None:
            self._documents.move_to_end(query)
        return document

    def keep(self, query: str, document: DocumentNode) -> None:
        self._documents[query] = document
        self._documents.move_to_end(query)
        while len(self._documents) > self.size:
            self._documents.popitem(last=False)

    def __len__(self) -> int:
        return len(self._documents)


class GraphQLRequestError(HTTPException):
    """A request graphql-server cannot run, with the GraphQL error code and the field at fault
    (answered in the GraphQL error shape by views/graphql_transport.py)."""

    def __init__(self, status: int, message: str, code: str, field: str | None = None) -> None:
        super().__init__(status, message)
        self.code = code
        self.field = field


def too_deep_variables(variables: object, max_depth: int) -> str | None:
    """The message for `variables` nested deeper than `max_depth` levels, or None."""
    if variables is not None and deeper_than(variables, max_depth):
        return f"variables {nesting_message(max_depth)}"
    return None


class LimitedQueries:
    """Mixin for graphql_server's GraphQLView (put it first in the bases)."""

    schema: GraphQLSchema
    max_depth = 8
    max_fields = 200
    max_bytes = 20_000
    max_variables_depth = 40

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.checked_documents = CheckedDocuments()  # the view's own: its schema and limits

    def decode_json(self, data: str | bytes) -> object:
        """JSON nested deeper than the parser goes is bad JSON (a WebSocket message: close 4400)."""
        try:
            return super().decode_json(data)  # type: ignore[misc]
        except RecursionError:
            raise json.JSONDecodeError("nested too deeply", "", 0) from None

    def parse_json(self, data: str | bytes) -> object:
        """An HTTP body (or GET parameter): a 400 naming the member nested too deeply, if one is."""
        try:
            return super().decode_json(data)  # type: ignore[misc]
        except RecursionError:
            text = data.decode(errors="replace") if isinstance(data, bytes) else data
            member = too_deep_member(text, self.max_variables_depth) or "body"
            message = f"{member} {nesting_message(self.max_variables_depth)}"
            raise GraphQLRequestError(400, message, "BAD_USER_INPUT", member) from None
        except ValueError:
            raise GraphQLRequestError(400, "Unable to parse request body as JSON", "BAD_REQUEST") from None

    async def get_graphql_request_data(
        self, request: Any, context: Any, data: dict[str, Any], protocol: str
    ) -> Any:
        """Variables are bounded in depth (their size by GRAPHQL_MAX_BODY_BYTES). WebSocket subscribe
        messages are checked by the graphql-transport-ws handler, which answers an `error` message."""
        if protocol != "subscription" and isinstance(data, dict):
            message = too_deep_variables(data.get("variables"), self.max_variables_depth)
            if message is not None:
                raise GraphQLRequestError(400, message, "BAD_USER_INPUT", "variables")
        return await super().get_graphql_request_data(request, context, data, protocol)  # type: ignore[misc]

    def refused_document(self, errors: list[GraphQLError]) -> None:
        """Called with the errors of a document refused by the caps (the view logs them)."""

    async def execute_operation(
        self, request_adapter: Any, request_data: Any, *args: Any, **kwargs: Any
    ) -> Any:
        from graphql_server.exceptions import GraphQLValidationError

        if request_data.document is None and isinstance(request_data.query, str):
            checked = self.checked_documents
            document = checked.get(request_data.query)
            if document is None:
                document, errors = check_document(
                    self.schema,
                    request_data.query,
                    max_depth=self.max_depth,
                    max_fields=self.max_fields,
                    max_bytes=self.max_bytes,
                )
                if document is None:
                    self.refused_document(errors)
                    raise GraphQLValidationError(errors)
                checked.keep(request_data.query, document)
            request_data.document = document
        return await super().execute_operation(request_adapter, request_data, *args, **kwargs)  # type: ignore[misc]
