"""Live-update messages, built from what the fan-out consumer reads. Pure: no I/O.

Every update is a JSON-ready dict with a `type`, and a `merchant_id` that decides who sees it:

- `customer.updated`, from the Avro topic of the same name (the customer's state after a change, no PII);
- `import.progress` (and any other type later), from `core.updates`, passed through as produced.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

CUSTOMER_UPDATED = "customer.updated"
IMPORT_PROGRESS = "import.progress"

Update = dict[str, Any]


def iso_millis(value: Any) -> str | None:
    """An Avro timestamp-millis (a datetime once decoded) as ISO 8601 UTC with a `Z`."""
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, int) and not isinstance(value, bool):
        return iso_millis(datetime.fromtimestamp(value / 1000, UTC))
    return None


def customer_update(record: dict[str, Any]) -> Update:
    """The stream message of a decoded `customer.updated` record."""
    metadata = record.get("metadata") or "{}"
    return {
        "type": CUSTOMER_UPDATED,
        "merchant_id": str(record["merchant_id"]),  # fastavro reads logicalType uuid as uuid.UUID
        "customer_id": str(record["customer_id"]),
        "version": record["version"],
        "rfm_score": record.get("rfm_score"),
        "metadata": json.loads(metadata) if isinstance(metadata, str) else metadata,
        "changes": list(record.get("changes") or ()),
        "redacted": bool(record.get("redacted")),
        "updated_at": iso_millis(record.get("updated_at")),
    }


def json_update(payload: bytes | None) -> Update | None:
    """A `core.updates` message, or None when it is not a JSON object with `type` and `merchant_id`."""
    if not payload:
        return None
    try:
        message = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(message, dict):
        return None
    if not isinstance(message.get("type"), str) or not isinstance(message.get("merchant_id"), str):
        return None
    return message


def merchant_of_key(key: bytes | None) -> str | None:
    """The merchant a record is about, from its key (`{merchant_id}:{customer_id}` or `{merchant_id}`)."""
    if not key:
        return None
    try:
        return key.split(b":", 1)[0].decode()
    except UnicodeDecodeError:
        return None
