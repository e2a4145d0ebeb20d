"""Avro schema parsing, canonical fingerprints and compatibility, via Apache Avro's checker."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import avro.schema
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

LEVELS = (
    "NONE",
    "BACKWARD",
    "BACKWARD_TRANSITIVE",
    "FORWARD",
    "FORWARD_TRANSITIVE",
    "FULL",
    "FULL_TRANSITIVE",
)


class InvalidSchema(ValueError):
    pass


def parse(schema_text: str) -> avro.schema.Schema:
    try:
        return avro.schema.parse(schema_text)
    except (avro.errors.AvroException, json.JSONDecodeError, TypeError) as exc:
        raise InvalidSchema(str(exc)) from exc


def canonical(schema_text: str) -> str:
    """Stable text for a schema: same schema, same id, whatever its whitespace."""
    parsed: Any = json.loads(schema_text)
    return json.dumps(parsed, sort_keys=True, separators=(",", ":"))


def fingerprint(schema_type: str, schema_text: str) -> str:
    return hashlib.sha256(f"{schema_type}:{canonical(schema_text)}".encode()).hexdigest()


def _can_read(reader: avro.schema.Schema, writer: avro.schema.Schema) -> bool:
    result = ReaderWriterCompatibilityChecker().get_compatibility(reader, writer)
    return result.compatibility is SchemaCompatibilityType.compatible


def is_compatible(new_text: str, existing_texts: list[str], level: str) -> bool:
    """`existing_texts` oldest first. Non-transitive levels only look at the latest."""
    if level == "NONE" or not existing_texts:
        return True
    new = parse(new_text)
    olds = [parse(t) for t in existing_texts]
    if not level.endswith("_TRANSITIVE"):
        olds = olds[-1:]
    base = level.removesuffix("_TRANSITIVE")
    for old in olds:
        if base in ("BACKWARD", "FULL") and not _can_read(new, old):
            return False
        if base in ("FORWARD", "FULL") and not _can_read(old, new):
            return False
    return True
