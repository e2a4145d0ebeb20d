"""The short path for the common GraphQL request: a query POSTed as JSON whose text already passed
the checks (CheckedDocuments).

graphql-server's request handling (content-type and body parsing through `email.message`, the
request data objects, its JSON encoding) cost several times the execution of a one-field query
(docs/benchmarks.md, reads (c2)). Such a request is answered here instead: the body parsed with
orjson, the checked document executed by graphql-core with `PlannedExecutionContext`, the errors
handed to graphql-server's logger (so refusals are logged as before, views/graphql_logging.py), and
the answer graphql-server would give, encoded with orjson. Anything else (GET, another content
type, a body without a length or over the cap, bad JSON, variables nested too deep, a mutation, a
document not yet checked, several operations) declines and takes graphql-server's path, with the
body it has read kept on the request (`BODY_KEY`) for it.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from aiohttp import web
from graphql import (
    DocumentNode,
    ExecutionResult,
    FragmentDefinitionNode,
    GraphQLError,
    GraphQLOutputType,
    GraphQLScalarType,
    GraphQLSchema,
    NamedTypeNode,
    NonNullTypeNode,
    OperationDefinitionNode,
    OperationType,
    default_field_resolver,
    default_type_resolver,
)
from graphql import execute as graphql_execute
from graphql.execution import ExecutionContext
from graphql.execution.execute import CollectedErrors
from graphql.language import FieldNode
from graphql.pyutils import AwaitableOrValue, Path, Undefined
from graphql_server.runtime import process_errors
from prometheus_client import Counter

from core_app.security.graphql_limits import too_deep_variables
from views.graphql_projection import ByNode, GiveUp, planned_completions

short_path_answers = Counter(
    "core_graphql_short_path_total", "GraphQL requests answered by the short path (views/graphql_fast.py)"
)
BODY_KEY = "core.graphql_body"  # the raw body, once read here, for graphql-server's adapter
MAX_FAST_BODY_BYTES = 64 * 1024


class PlannedExecutionContext(ExecutionContext):
    """graphql-core's execution, with planned completions (views/graphql_projection.py) and no task
    for a selection set of one field (graphql-core gathers even one awaitable, which schedules it
    as a task)."""

    plans = planned_completions()

    def execute_fields(
        self,
        parent_type: Any,
        source_value: Any,
        path: Path | None,
        fields: dict[str, list[FieldNode]],
    ) -> AwaitableOrValue[dict[str, Any]]:
        if len(fields) != 1:
            return super().execute_fields(parent_type, source_value, path, fields)
        ((key, field_nodes),) = fields.items()
        result = self.execute_field(parent_type, source_value, field_nodes, Path(path, key, parent_type.name))
        if result is Undefined:
            return {}
        if not self.is_awaitable(result):
            return {key: result}

        async def one_field() -> dict[str, Any]:
            return {key: await result}

        return one_field()

    def complete_value(
        self,
        return_type: GraphQLOutputType,
        field_nodes: list[FieldNode],
        info: Any,
        path: Path,
        result: Any,
    ) -> AwaitableOrValue[Any]:
        if len(field_nodes) == 1 and field_nodes[0].selection_set is not None:
            completion = self.plans.get(field_nodes[0], return_type)
            if completion is not None and not self.is_awaitable(result):
                try:
                    return completion(self, result, path)
                except GiveUp:
                    pass
        return super().complete_value(return_type, field_nodes, info, path, result)


PLAIN_SCALARS = frozenset({"ID", "String", "Int", "Float", "Boolean"})
PlainVariable = tuple[str, GraphQLScalarType, bool]  # name, type, non-null


def plain_variables(operation: OperationDefinitionNode, schema: GraphQLSchema) -> list[PlainVariable] | None:
    """The operation's variables if each is a built-in scalar, nullable or not, with no default:
    what a client's query almost always declares. None otherwise."""
    found: list[PlainVariable] = []
    for definition in operation.variable_definitions:
        node, non_null = definition.type, isinstance(definition.type, NonNullTypeNode)
        named = node.type if isinstance(node, NonNullTypeNode) else node
        if definition.default_value is not None or not isinstance(named, NamedTypeNode):
            return None
        scalar = schema.type_map.get(named.name.value)
        if named.name.value not in PLAIN_SCALARS or not isinstance(scalar, GraphQLScalarType):
            return None
        found.append((definition.variable.name.value, scalar, non_null))
    return found


def coerce_plain(declared: list[PlainVariable], given: dict[str, Any]) -> dict[str, Any] | None:
    """graphql-core's variable coercion for plain variables, or None where it would refuse a value
    (graphql-core then refuses it, with its own message)."""
    coerced: dict[str, Any] = {}
    for name, scalar, non_null in declared:
        if name not in given:
            if non_null:
                return None
            continue
        value = given[name]
        if value is None:
            if non_null:
                return None
            coerced[name] = None
            continue
        try:
            coerced[name] = scalar.parse_value(value)
        except Exception:
            return None
        if coerced[name] is Undefined:
            return None
    return coerced


async def run_planned(context: PlannedExecutionContext) -> ExecutionResult:
    """graphql-core's `execute` from a built context (as its `execute` does after `build`)."""
    errors = context.collected_errors
    try:
        data = context.execute_operation(context.operation, None)
        if context.is_awaitable(data):
            data = await data  # type: ignore[misc]
    except GraphQLError as error:
        errors.add(error, None)
        data = None
    return context.build_response(data, errors.errors)  # type: ignore[arg-type]


Shape = tuple[OperationDefinitionNode, dict[str, FragmentDefinitionNode]] | None


def shape_of(document: DocumentNode) -> Shape:
    """The document's only operation, if a query, and its fragments; None for anything else."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if len(operations) != 1 or operations[0].operation != OperationType.QUERY:
        return None
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    return operations[0], fragments


class QueryRunner:
    """Runs checked documents of one query: through a context built here when the variables are
    plain (graphql-core's `build` coerces them through the type AST on every request), else through
    graphql-core's `execute`; both with planned completions."""

    def __init__(self, schema: GraphQLSchema) -> None:
        self.schema = schema
        self.shapes: ByNode[Shape] = ByNode(lambda document, _none: shape_of(document))
        self.variables: ByNode[list[PlainVariable] | None] = ByNode(
            lambda operation, _none: plain_variables(operation, schema)
        )

    async def run(
        self, document: DocumentNode, context_value: Any, given: Any, operation_name: str | None
    ) -> ExecutionResult | None:
        """The result, or None if the document is not one query (named `operation_name`, if given)."""
        shape = self.shapes.get(document)
        if shape is None:
            return None
        operation, fragments = shape
        if operation_name is not None and (operation.name is None or operation.name.value != operation_name):
            return None
        declared = self.variables.get(operation)
        coerced = coerce_plain(declared, given or {}) if declared is not None else None
        if coerced is None:
            result = graphql_execute(
                self.schema,
                document,
                context_value=context_value,
                variable_values=given,
                execution_context_class=PlannedExecutionContext,
            )
            return result if isinstance(result, ExecutionResult) else await result
        context = PlannedExecutionContext(
            self.schema,
            fragments,
            None,
            context_value,
            operation,
            coerced,
            default_field_resolver,
            default_type_resolver,
            default_field_resolver,
            CollectedErrors(),
            None,
            None,
        )
        return await run_planned(context)


def _request_data(body: bytes, max_variables_depth: int) -> dict[str, Any] | None:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("query"), str):
        return None
    variables, name, extensions = data.get("variables"), data.get("operationName"), data.get("extensions")
    if not (variables is None or isinstance(variables, dict)) or not (name is None or isinstance(name, str)):
        return None
    if not (extensions is None or isinstance(extensions, dict)):
        return None
    if too_deep_variables(variables, max_variables_depth) is not None:
        return None
    return data


def _encode(answer: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(answer)
    except TypeError:  # what orjson refuses (e.g. non-string keys in JSON data), json writes
        return json.dumps(answer).encode()


async def answer_checked_query(view: Any, request: web.Request) -> web.Response | None:
    """The answer to a plain POSTed query of a checked document, or None to let graphql-server
    handle the request."""
    length = request.content_length
    if request.method != "POST" or request.content_type != "application/json" or length is None:
        return None
    if length > min(MAX_FAST_BODY_BYTES, view.max_body_bytes):
        return None
    body = await request.read()
    request[BODY_KEY] = body
    data = _request_data(body, view.max_variables_depth)
    if data is None:
        return None
    document = view.checked_documents.get(data["query"])
    if document is None:
        return None
    sub_response = web.Response()  # as graphql-server's: a resolver may set headers or a status
    context_value = await view.get_context(request, sub_response)
    runner = view.query_runner
    result = await runner.run(document, context_value, data.get("variables"), data.get("operationName"))
    if result is None:
        return None
    answer: dict[str, Any] = {"data": result.data}
    if result.errors:
        process_errors(result.errors)
        answer["errors"] = [error.formatted for error in result.errors]
    short_path_answers.inc()
    sub_response.body = _encode(answer)
    sub_response.content_type = "application/json"
    return sub_response
