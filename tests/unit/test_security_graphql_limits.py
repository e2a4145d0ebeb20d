"""GraphQL caps: size, depth, total fields (fragments expanded), parser limits."""

from types import SimpleNamespace

import pytest
from graphql import parse
from graphql_server.exceptions import GraphQLValidationError

from core_app.security.graphql_limits import CheckedDocuments, LimitedQueries, check_document, measure
from views.graphql import build_graphql_schema

SCHEMA = build_graphql_schema()
LIMITS = {"max_depth": 4, "max_fields": 20, "max_bytes": 5_000}
OK = '{ getCustomer(merchant_id: "m", customer_id: "c") { id metadata rfm_score } }'


def codes(errors) -> list[str]:
    return [e.extensions.get("code") for e in errors]


def test_a_normal_query_passes() -> None:
    document, errors = check_document(SCHEMA, OK, **LIMITS)
    assert errors == [] and document is not None


def test_depth_and_fields_are_measured_through_fragments() -> None:
    document = parse("query Q { a { b { c } } ...F } fragment F on Query { x { y { z { w } } } }")
    assert measure(document) == [("Q", 4, 7)]


def test_too_many_fields_through_aliases_is_refused() -> None:
    aliases = " ".join(f'a{i}: getCustomer(merchant_id: "m", customer_id: "c") {{ id }}' for i in range(15))
    _document, errors = check_document(SCHEMA, "{" + aliases + "}", **LIMITS)
    assert "QUERY_TOO_COMPLEX" in codes(errors)


def test_fragment_fan_out_is_counted_per_use() -> None:
    query = (
        '{ a: getCustomer(merchant_id: "m", customer_id: "c") { ...F } '
        'b: getCustomer(merchant_id: "m", customer_id: "c") { ...F } '
        'c: getCustomer(merchant_id: "m", customer_id: "c") { ...F } }'
        " fragment F on Customer { id merchant_id email rfm_score metadata created_at updated_at }"
    )
    _document, errors = check_document(SCHEMA, query, **LIMITS)
    assert "QUERY_TOO_COMPLEX" in codes(errors)


def test_deep_nesting_is_refused_before_and_after_parsing() -> None:
    deep = '{ getCustomer(merchant_id: "m", customer_id: "c") ' + "{ id " * 6 + "}" * 7
    _document, errors = check_document(SCHEMA, deep, **LIMITS)
    assert errors  # invalid anyway (id has no selections), but never a crash
    very_deep = "{ a " * 3000 + "}" * 3000  # deeper than the parser's recursion allows
    _document, errors = check_document(SCHEMA, very_deep, **(LIMITS | {"max_bytes": 20_000}))
    assert errors


def test_oversized_query_is_refused_without_parsing() -> None:
    _document, errors = check_document(SCHEMA, "{ __typename }" + " " * 6000, **LIMITS)
    assert codes(errors) == ["QUERY_TOO_LARGE"]


@pytest.mark.parametrize(
    "query",
    [
        "{ getCustomer(merchant_id: \"1' OR '1'='1\", customer_id: \"x; DROP TABLE customers\") { id } }",
        "query { __schema { types { fields { type { fields { type { name } } } } } } }",
        '{ getCustomer(merchant_id: "m", customer_id: "c") { id } ' * 2,
    ],
)
def test_hostile_documents_give_errors_or_pass_validation_never_raise(query: str) -> None:
    check_document(SCHEMA, query, **LIMITS)


class _Executor:
    async def execute_operation(self, _adapter: object, request_data: SimpleNamespace) -> object:
        return request_data.document


class _View(LimitedQueries, _Executor):
    schema = SCHEMA
    max_depth = 4


async def test_a_checked_query_is_parsed_and_validated_once_and_a_refused_one_is_not_kept() -> None:
    view = _View()
    first = await view.execute_operation(None, SimpleNamespace(document=None, query=OK))
    again = await view.execute_operation(None, SimpleNamespace(document=None, query=OK))
    assert first is not None and again is first  # the same document: not parsed again
    too_deep = "{ a { b { c { d { e } } } } }"
    for _ in range(2):  # refused each time: a refusal is checked again, never served from the cache
        with pytest.raises(GraphQLValidationError):
            await view.execute_operation(None, SimpleNamespace(document=None, query=too_deep))
    assert len(view.checked_documents) == 1
    other = '{ customers(merchant_id: "m") { edges { node { id } } pageInfo { endCursor } } }'
    await view.execute_operation(None, SimpleNamespace(document=None, query=other))
    assert len(view.checked_documents) == 2


def test_checked_documents_drop_the_least_recently_used() -> None:
    checked = CheckedDocuments(size=2)
    a, b, c = (parse(f"{{ {name} }}") for name in "abc")
    checked.keep("a", a)
    checked.keep("b", b)
    assert checked.get("a") is a  # used: b is now the oldest
    checked.keep("c", c)
    assert (checked.get("a"), checked.get("b"), checked.get("c")) == (a, None, c)
