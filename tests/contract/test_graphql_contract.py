"""The served GraphQL schema, printed by graphql-core, is schema.graphql (the plan's, verbatim)."""

from graphql import print_schema

from views.graphql import SCHEMA_PATH, build_graphql_schema


def test_served_schema_prints_as_the_file() -> None:
    assert print_schema(build_graphql_schema()).strip() == SCHEMA_PATH.read_text().strip()


def test_every_plan_operation_is_in_the_schema() -> None:
    schema = build_graphql_schema()
    assert set(schema.query_type.fields) == {
        "getCustomer",
        "getCustomerRFM",
        "getProgramSettings",
        "getImportLogs",
        "customers",  # issue 18: list and search, a Relay connection (not in the plan)
        "segmentCounts",  # issue 18: RFM segment counts (not in the plan)
        "customerTimeline",  # issue 18: the changes applied to a customer, with reasons (not in the plan)
    }
    assert set(schema.mutation_type.fields) == {
        "createCustomer",
        "updateCustomer",
        "updateProgramSettings",
        "importCustomers",
    }
    assert set(schema.subscription_type.fields) == {"onCustomerUpdate", "onImportProgress"}
