"""Completing a resolved object without graphql-core's per-field machinery.

graphql-core completes a value field by field: a resolve info, an argument dict, a path and a
`complete_value` call for every leaf, which made up most of a GraphQL read's cost
(docs/benchmarks.md, reads (c2)). For a plain selection set (fields only: no fragments, no
directives, no `__typename`) the work is the same on every request of a document, so it is planned
once per field node: read each field from the dict, serialize each leaf, recurse into objects and
lists. The plan only covers the answer where nothing goes wrong; on anything else (a null in a
non-null field, a value a scalar refuses, a source that is not a dict, a resolver that raises) it
gives up and graphql-core completes the value from the start, with its own errors and paths. That
is sound because a plan only ever calls side-effect free code: a field's default resolver, or a
synchronous resolver marked `pure_resolver` (a projection of the parent, e.g. `metadata(include:)`).
"""

from __future__ import annotations

from collections.abc import Callable
from inspect import iscoroutinefunction
from typing import Any, Generic, TypeVar

from graphql import (
    FieldNode,
    GraphQLField,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    Undefined,
    is_leaf_type,
)
from graphql.execution import ExecutionContext
from graphql.execution.values import get_argument_values
from graphql.pyutils import Path

PURE = "__core_pure_resolver__"
Made = TypeVar("Made")
CACHE_SIZE = 4096

# (the execution context, the value, the value's path) -> the completed value, or GiveUp.
Completion = Callable[[ExecutionContext, Any, Path], Any]


class GiveUp(Exception):
    """The plan cannot complete this value; graphql-core completes it instead."""


def pure_resolver(resolver: Callable[..., Any]) -> Callable[..., Any]:
    """Marks a synchronous field resolver that only projects its parent (no I/O, no side effect),
    so a plan may call it and, if it gives up, graphql-core may call it again."""
    setattr(resolver, PURE, True)
    return resolver


def _plan_leaf(serialize: Callable[[Any], Any]) -> Completion:
    def leaf(_context: ExecutionContext, value: Any, _path: Path) -> Any:
        if value is None or value is Undefined:
            return None
        if isinstance(value, Exception):
            raise GiveUp
        try:
            serialized = serialize(value)
        except Exception:
            raise GiveUp from None
        if serialized is None or serialized is Undefined:
            raise GiveUp
        return serialized

    return leaf


def _plan_non_null(inner: Completion) -> Completion:
    def non_null(context: ExecutionContext, value: Any, path: Path) -> Any:
        completed = inner(context, value, path)
        if completed is None:
            raise GiveUp
        return completed

    return non_null


def _plan_list(inner: Completion) -> Completion:
    def items(context: ExecutionContext, value: Any, path: Path) -> Any:
        if value is None or value is Undefined:
            return None
        if not isinstance(value, list | tuple):
            raise GiveUp
        return [inner(context, item, path.add_key(index)) for index, item in enumerate(value)]

    return items


def plan_type(return_type: GraphQLOutputType, node: FieldNode) -> Completion | None:
    """The completion of `node`'s value of `return_type`, or None where a plan does not apply."""
    if isinstance(return_type, GraphQLNonNull):
        inner = plan_type(return_type.of_type, node)
        return _plan_non_null(inner) if inner is not None else None
    if isinstance(return_type, GraphQLList):
        inner = plan_type(return_type.of_type, node)
        return _plan_list(inner) if inner is not None else None
    if is_leaf_type(return_type):
        return _plan_leaf(return_type.serialize)  # type: ignore[attr-defined]
    if isinstance(return_type, GraphQLObjectType):
        return plan_object(return_type, node)
    return None  # interfaces and unions resolve a runtime type: graphql-core's


def _plain_field(parent: GraphQLObjectType, node: object) -> tuple[str, GraphQLField, Completion] | None:
    if not isinstance(node, FieldNode) or node.directives:
        return None
    name = node.name.value
    field = parent.fields.get(name)
    if field is None or name.startswith("__"):
        return None
    resolve = field.resolve
    if resolve is not None and (iscoroutinefunction(resolve) or not getattr(resolve, PURE, False)):
        return None
    completion = plan_type(field.type, node)
    return (name, field, completion) if completion is not None else None


def plan_object(object_type: GraphQLObjectType, node: FieldNode) -> Completion | None:
    """The completion of a dict by `node`'s selection set, if every selection is a plain field."""
    if node.selection_set is None or object_type.is_type_of is not None:
        return None
    planned: list[tuple[str, str, GraphQLField, FieldNode, Completion]] = []
    for selection in node.selection_set.selections:
        found = _plain_field(object_type, selection)
        if found is None:
            return None
        field_node: FieldNode = selection  # type: ignore[assignment]
        key = field_node.alias.value if field_node.alias else found[0]
        if any(key == other[0] for other in planned):
            return None  # graphql-core merges repeated keys; rare, so not planned
        planned.append((key, *found[:2], field_node, found[2]))
    type_name = object_type.name

    def complete(context: ExecutionContext, value: Any, path: Path) -> Any:
        if value is None or value is Undefined:
            return None
        if type(value) is not dict:
            raise GiveUp
        completed = {}
        for key, name, field, field_node, completion in planned:
            field_path = Path(path, key, type_name)
            if field.resolve is None:
                found = value.get(name)
                if callable(found):
                    raise GiveUp
            else:
                found = _call_pure(context, field, field_node, object_type, field_path, value)
            completed[key] = completion(context, found, field_path)
        return completed

    return complete


def _call_pure(
    context: ExecutionContext,
    field: GraphQLField,
    node: FieldNode,
    parent: GraphQLObjectType,
    path: Path,
    source: dict[str, Any],
) -> Any:
    info = context.build_resolve_info(field, [node], parent, path)
    try:
        found = field.resolve(source, info, **get_argument_values(field, node, context.variable_values))  # type: ignore[misc]
    except Exception:
        raise GiveUp from None
    if context.is_awaitable(found):
        raise GiveUp
    return found


class ByNode(Generic[Made]):
    """Values made once per AST node (and per type, where given). Keyed by the node's id with the
    node kept alongside: a node held here cannot be collected, so its id cannot be reused by another
    while its entry lives."""

    def __init__(self, make: Callable[[Any, Any], Made], size: int = CACHE_SIZE) -> None:
        self.make = make
        self.size = size
        self._made: dict[int, tuple[Any, Any, Made]] = {}

    def get(self, node: Any, of_type: Any = None) -> Made:
        entry = self._made.get(id(node))
        if entry is not None and entry[0] is node and entry[1] is of_type:
            return entry[2]
        if len(self._made) >= self.size:
            self._made.clear()  # documents come and go with the checked-document LRU
        made = self.make(node, of_type)
        self._made[id(node)] = (node, of_type, made)
        return made


def planned_completions() -> ByNode[Completion | None]:
    """Plans by field node and return type."""
    return ByNode(lambda node, return_type: plan_type(return_type, node))
