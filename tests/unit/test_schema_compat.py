import json

import pytest

from core_app.schema_registry.compat import InvalidSchema, fingerprint, is_compatible, parse


def record(*fields: dict) -> str:
    return json.dumps({"type": "record", "name": "E", "fields": list(fields)})


V1 = record({"name": "a", "type": "int"})
V2_DEFAULTED = record({"name": "a", "type": "int"}, {"name": "b", "type": "string", "default": ""})
V2_REQUIRED = record({"name": "a", "type": "int"}, {"name": "b", "type": "string"})
V3_DROPS_A = record({"name": "b", "type": "string", "default": ""})


def test_backward_allows_new_field_with_default() -> None:
    assert is_compatible(V2_DEFAULTED, [V1], "BACKWARD")


def test_backward_refuses_new_field_without_default() -> None:
    assert not is_compatible(V2_REQUIRED, [V1], "BACKWARD")


def test_forward_and_full() -> None:
    assert is_compatible(V2_REQUIRED, [V1], "FORWARD")
    assert not is_compatible(V2_REQUIRED, [V1], "FULL")
    assert is_compatible(V2_DEFAULTED, [V1], "FULL")


def test_transitive_checks_every_earlier_version() -> None:
    # V3 can read V2 (b has a default, a is ignored) but not V1 data? It can: a is dropped, b defaults.
    assert is_compatible(V3_DROPS_A, [V1, V2_DEFAULTED], "BACKWARD_TRANSITIVE")
    int_to_string = record({"name": "a", "type": "string"})
    assert not is_compatible(int_to_string, [V1, V2_DEFAULTED], "BACKWARD_TRANSITIVE")
    assert is_compatible(int_to_string, [V1], "NONE")


def test_fingerprint_ignores_whitespace_and_key_order() -> None:
    spaced = json.dumps(json.loads(V1), indent=4)
    assert fingerprint("AVRO", spaced) == fingerprint("AVRO", V1)
    assert fingerprint("AVRO", V1) != fingerprint("AVRO", V2_DEFAULTED)


def test_invalid_schema_is_reported() -> None:
    with pytest.raises(InvalidSchema):
        parse('{"type": "record", "name": "X"}')
