"""Validation of customer input from the API (create and update)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from core_app.domain.email import normalize_email
from core_app.domain.errors import ValidationFailed
from core_app.domain.json_depth import deeper_than, nesting_message
from core_app.domain.pii import sanitize_metadata

MAX_METADATA_BYTES = 16 * 1024
MAX_METADATA_DEPTH = 32


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def _storable(value: Any) -> bool:
    """What PostgreSQL's jsonb and the table's JSON codec both take: no NUL or unpaired surrogates in
    text, integers within 64 bits, finite numbers. Anything else must be a 400, not a failure later."""
    if isinstance(value, str):
        if "\x00" in value:
            return False
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, bool):
        return True
    if isinstance(value, int):
        return INT64_MIN <= value <= INT64_MAX
    if isinstance(value, float):  # PostgreSQL reads 1e30 back as an integer: bound floats the same
        return math.isfinite(value) and INT64_MIN <= value <= INT64_MAX
    if isinstance(value, dict):
        return all(_storable(k) and _storable(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_storable(item) for item in value)
    return True


def check_json_document(raw: dict[str, Any], field: str) -> None:
    """Bounded depth and size, storable text: what any client JSON kept in a table must be."""
    if deeper_than(raw, MAX_METADATA_DEPTH):
        raise ValidationFailed(field, nesting_message(MAX_METADATA_DEPTH))
    if not _storable(raw):
        raise ValidationFailed(
            field, "must hold only text without NUL or unpaired surrogates, and numbers within 64-bit range"
        )
    if len(json.dumps(raw, default=str)) > MAX_METADATA_BYTES:
        raise ValidationFailed(field, f"must be at most {MAX_METADATA_BYTES} bytes of JSON")


def validate_metadata(raw: Any, field: str = "metadata") -> dict[str, Any]:
    """A JSON object of bounded size and storable text, with PII keys removed."""
    if not isinstance(raw, dict):
        raise ValidationFailed(field, "must be a JSON object")
    check_json_document(raw, field)
    return sanitize_metadata(raw)


@dataclass(frozen=True, slots=True)
class CustomerInput:
    email: str | None
    metadata: dict[str, Any]

    @classmethod
    def parse(cls, email: Any, metadata: Any, email_required: bool) -> CustomerInput:
        if email is None or email == "":
            if email_required:
                raise ValidationFailed("email", "is required")
            normalized = None
        elif not isinstance(email, str):
            raise ValidationFailed("email", "must be a string")
        else:
            normalized = normalize_email(email)
        return cls(email=normalized, metadata=validate_metadata({} if metadata is None else metadata))
