"""The short GraphQL path (views/graphql_fast.py, views/graphql_projection.py) answers exactly what
graphql-core's own execution answers: the same data and the same errors, for generated documents
(plain and not, with aliases, fragments, directives, pure and async resolvers) over generated
values (missing fields, nulls in non-null fields, values a scalar refuses, resolvers that raise)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from graphql import build_schema, execute, parse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from views.graphql_fast import QueryRunner
from views.graphql_projection import GiveUp, plan_type, pure_resolver

SCHEMA = build_schema(
    """
    scalar JSON
    enum Tier { GOLD SILVER }
    type Item { name: String! qty: Int tier: Tier }
    type Thing {
      id: ID!
      label: String
      count: Int!
      ratio: Float
      flag: Boolean
      tags: [String!]
      data: JSON
      items: [Item!]!
      child: Thing
      shout(suffix: String): String
      later: String
    }
    type Query { thing(id: ID!, n: Int): Thing  things: [Thing!] }
    """
)


def _shout(source: dict[str, Any], _info: Any, suffix: str | None = None) -> str:
    if suffix == "boom":
        raise ValueError("no shouting")
    return f"{source.get('label')}{suffix or '!'}"


async def _later(source: dict[str, Any], _info: Any) -> Any:
    return source.get("label")


SCHEMA.type_map["JSON"].serialize = lambda value: value  # type: ignore[attr-defined]  # as schema.graphql's
SCHEMA.type_map["Thing"].fields["shout"].resolve = pure_resolver(_shout)  # type: ignore[attr-defined]
SCHEMA.type_map["Thing"].fields["later"].resolve = _later  # type: ignore[attr-defined]


def _called(_info: Any, **_args: Any) -> str:
    return "called"  # graphql-core's default resolver calls a callable it finds in the dict


ANY_VALUE = st.one_of(
    st.none(),
    st.just(_called),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=False),
    st.text(max_size=3),
    st.sampled_from(["GOLD", "SILVER", "BRONZE"]),
    st.lists(st.one_of(st.none(), st.text(max_size=2), st.integers(0, 3)), max_size=3),
)


def usually(valid: st.SearchStrategy[Any], odd: st.SearchStrategy[Any] = ANY_VALUE) -> st.SearchStrategy[Any]:
    """Mostly a value of the field's type, sometimes anything (or nothing): the happy path is the
    common one, and every way off it is still drawn."""
    return st.integers(0, 9).flatmap(lambda roll: odd if roll == 0 else valid)


ITEM = st.fixed_dictionaries(
    {
        "name": usually(st.text(max_size=3)),
        "qty": usually(st.one_of(st.none(), st.integers(-5, 5))),
        "tier": usually(st.sampled_from(["GOLD", "SILVER", None])),
    }
)
LEAF_VALUES = {
    "id": usually(st.one_of(st.text(min_size=1, max_size=3), st.integers(0, 99))),
    "label": usually(st.one_of(st.none(), st.text(max_size=3))),
    "count": usually(st.integers(-(2**31), 2**31 - 1)),
    "ratio": usually(
        st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False), st.integers(0, 9))
    ),
    "flag": usually(st.one_of(st.none(), st.booleans())),
    "tags": usually(st.one_of(st.none(), st.lists(st.text(max_size=2), max_size=3))),
    "data": ANY_VALUE,
    "items": usually(st.lists(usually(ITEM, st.none()), max_size=3)),
}
THING = st.recursive(
    st.fixed_dictionaries(LEAF_VALUES),
    lambda children: st.fixed_dictionaries(LEAF_VALUES | {"child": usually(children, st.none())}),
    max_leaves=3,
)
ROOT = usually(THING, st.one_of(st.none(), st.just(ValueError("down")), ANY_VALUE))

PLAIN = [
    "id",
    "data",
    "label",
    "count",
    "ratio",
    "flag",
    "tags",
    "shout",
    'shout(suffix: "?")',
    "shout(suffix: $s)",
]
UNPLANNED = ["later", "__typename", 'shout(suffix: "boom")', "label @include(if: $flag)", "...parts"]
ITEMS = st.lists(st.sampled_from(["name", "qty", "tier", "q: qty"]), min_size=1, max_size=3)


@st.composite
def selection(draw: st.DrawFn, depth: int = 0) -> str:
    fields = draw(st.lists(st.sampled_from(PLAIN), min_size=1, max_size=4))
    parts = [f"{draw(st.sampled_from(['', '', 'a: ', 'b: ']))}{field}" for field in fields]
    if draw(st.booleans()):
        parts.append("items { " + " ".join(draw(ITEMS)) + " }")
    if depth < 2 and draw(st.booleans()):
        parts.append("child " + draw(selection(depth + 1)))
    if draw(st.integers(0, 4)) == 0:
        parts.append(draw(st.sampled_from(UNPLANNED)))
    return "{ " + " ".join(parts) + " }"


@st.composite
def document(draw: st.DrawFn) -> str:
    root = draw(st.sampled_from(["thing(id: $id, n: $n)", "thing(id: $id)", 'thing(id: "7")', "things"]))
    variables = "($id: ID!, $n: Int, $s: String, $flag: Boolean!)"
    fragment = "\nfragment parts on Thing { count label }"
    return f"query{variables} {{ {root} {draw(selection())} }}{fragment}"


VARIABLES = st.fixed_dictionaries(
    {
        "flag": st.booleans(),
        "id": usually(
            st.text(max_size=3), st.one_of(st.integers(-5, 5), st.none(), st.booleans(), st.floats(0, 1))
        ),
    },
    optional={
        "n": usually(
            st.integers(-9, 9), st.one_of(st.integers(-(2**33), 2**33), st.text(max_size=2), st.none())
        ),
        "s": usually(st.text(max_size=2), st.one_of(st.just("boom"), st.none(), st.integers(0, 2))),
    },
)


def answer(result: Any) -> tuple[Any, list[Any]]:
    return result.data, [error.formatted for error in result.errors or []]


def run_both(query: str, variables: dict[str, Any], root: Any) -> tuple[Any, Any]:
    async def resolve_thing(_root: Any, _info: Any, **_args: Any) -> Any:
        if isinstance(root, Exception):
            raise root
        return root

    SCHEMA.query_type.fields["thing"].resolve = resolve_thing  # type: ignore[union-attr]
    SCHEMA.query_type.fields["things"].resolve = lambda *_: [root, root]  # type: ignore[union-attr]
    parsed = parse(query)

    async def both() -> tuple[Any, Any]:
        expected = execute(SCHEMA, parsed, variable_values=variables)
        if not hasattr(expected, "data"):
            expected = await expected  # type: ignore[misc]
        planned = await QueryRunner(SCHEMA).run(parsed, {}, variables, None)
        assert planned is not None, "a document of one query runs"
        return answer(expected), answer(planned)

    return asyncio.run(both())


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # graphql-core leaves siblings of a null unawaited
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(query=document(), variables=VARIABLES, root=ROOT)
def test_the_short_path_answers_what_graphql_core_answers(
    query: str, variables: dict[str, Any], root: Any
) -> None:
    expected, planned = run_both(query, variables, root)
    assert planned == expected


def test_a_plan_gives_up_where_graphql_core_would_report_an_error() -> None:
    """The happy path is planned; a null in a non-null field is left to graphql-core's errors."""
    node = parse("{ thing(id: 1) { id count } }").definitions[0].selection_set.selections[0]  # type: ignore[attr-defined]
    completion = plan_type(SCHEMA.query_type.fields["thing"].type, node)  # type: ignore[union-attr]
    assert completion is not None
    from graphql.pyutils import Path

    assert completion(None, {"id": 5, "count": 2}, Path(None, "thing", "Query")) == {"id": "5", "count": 2}  # type: ignore[arg-type]
    try:
        completion(None, {"id": 5}, Path(None, "thing", "Query"))  # type: ignore[arg-type]
    except GiveUp:
        pass
    else:
        raise AssertionError("a missing non-null field must give up")
    expected, planned = run_both(
        "query($id: ID!, $flag: Boolean!) { thing(id: $id) { id count } }",
        {"id": "x", "flag": True},
        {"id": 5},
    )
    assert planned == expected
    assert planned[1][0]["message"] == "Cannot return null for non-nullable field Thing.count."


def test_selections_a_plan_does_not_cover_are_not_planned() -> None:
    """Fragments, directives, __typename and async resolvers take graphql-core's completion."""
    field_type = SCHEMA.query_type.fields["thing"].type  # type: ignore[union-attr]
    for query in (
        "{ thing(id: 1) { ...parts } } fragment parts on Thing { id }",
        "query($f: Boolean!) { thing(id: 1) { id @include(if: $f) } }",
        "{ thing(id: 1) { __typename } }",
        "{ thing(id: 1) { later } }",
        "{ thing(id: 1) { id id } }",
    ):
        node = parse(query).definitions[0].selection_set.selections[0]  # type: ignore[attr-defined]
        assert plan_type(field_type, node) is None, query
