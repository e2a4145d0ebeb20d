"""Consumed events, parsed from decoded Avro records into validated domain values."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core_app.domain.customer import customer_key
from core_app.domain.errors import ValidationFailed
from core_app.domain.rfm import RfmScore


def parse_uuid(value: Any, field: str) -> str:
    try:
        return str(value if isinstance(value, uuid.UUID) else uuid.UUID(str(value)))
    except (ValueError, TypeError, AttributeError):
        raise ValidationFailed(field, "must be a UUID") from None


def epoch_millis(value: Any, field: str) -> int:
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ValidationFailed(field, "must be a timestamp")


@dataclass(frozen=True, slots=True)
class RfmUpdated:
    event_id: str
    merchant_id: str
    customer_id: str
    score: RfmScore
    occurred_at_ms: int

    @property
    def key(self) -> str:
        return customer_key(self.merchant_id, self.customer_id)

    @classmethod
    def parse(cls, record: dict[str, Any]) -> RfmUpdated:
        return cls(
            event_id=parse_uuid(record.get("event_id"), "event_id"),
            merchant_id=parse_uuid(record.get("merchant_id"), "merchant_id"),
            customer_id=parse_uuid(record.get("customer_id"), "customer_id"),
            score=RfmScore.parse(record.get("rfm_score")),
            occurred_at_ms=epoch_millis(record.get("occurred_at"), "occurred_at"),
        )
