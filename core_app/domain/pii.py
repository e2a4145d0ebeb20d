"""PII rules for customer metadata.

`PII_KEYS` mirrors `core_pii_keys()` in the database migration; an integration test keeps them equal.
Keys are matched case-insensitively at every depth of the document.
"""

from __future__ import annotations

from typing import Any

PII_KEYS: frozenset[str] = frozenset(
    {
        "first_name",
        "last_name",
        "middle_name",
        "full_name",
        "phone",
        "phone_number",
        "mobile",
        "email",
        "email_address",
        "address",
        "address1",
        "address2",
        "street",
        "street_address",
        "postal_code",
        "zip",
        "date_of_birth",
        "dob",
        "ip_address",
    }
)


def sanitize_metadata(document: Any) -> Any:
    """Return `document` without PII keys, recursively; the input is not modified."""
    if isinstance(document, dict):
        return {
            key: sanitize_metadata(value)
            for key, value in document.items()
            if str(key).lower() not in PII_KEYS
        }
    if isinstance(document, list):
        return [sanitize_metadata(item) for item in document]
    return document
