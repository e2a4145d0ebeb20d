"""RFM scores: validation of what RFM Analytics sends."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from core_app.domain.errors import ValidationFailed

# Recency in days, frequency in orders, monetary in whole currency units.
RFM_LIMITS: dict[str, tuple[int, int]] = {
    "recency": (0, 36_500),
    "frequency": (0, 1_000_000),
    "monetary": (0, 1_000_000_000),
}


@dataclass(frozen=True, slots=True)
class RfmScore:
    recency: int
    frequency: int
    monetary: int

    @classmethod
    def parse(cls, raw: Any, field: str = "rfm_score") -> RfmScore:
        if not isinstance(raw, dict):
            raise ValidationFailed(field, "must be an object with recency, frequency, monetary")
        values: dict[str, int] = {}
        for name, (low, high) in RFM_LIMITS.items():
            value = raw.get(name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValidationFailed(f"{field}.{name}", "must be an integer")
            if not low <= value <= high:
                raise ValidationFailed(f"{field}.{name}", f"must be between {low} and {high}")
            values[name] = value
        return cls(**values)

    def to_dict(self) -> dict[str, int]:
        return asdict(self)
