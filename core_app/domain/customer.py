"""Customer state as held in the `customers` table and persisted to PostgreSQL.

The state never holds a plaintext email: only its keyed hash. `version` grows by one on every
applied change; `rfm_as_of` (epoch ms) keeps an older RFM event from overwriting a newer one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from core_app.domain.rfm import RfmScore


def customer_key(merchant_id: str, customer_id: str) -> str:
    """The key of a customer in every topic and table: co-partitions all customer streams."""
    return f"{merchant_id}:{customer_id}"


@dataclass(frozen=True, slots=True)
class CustomerState:
    merchant_id: str
    customer_id: str
    email_hash: str | None
    rfm_score: dict[str, int] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    version: int = 0
    rfm_as_of: int = 0
    created_at: str | None = None
    updated_at: str | None = None

    @property
    def key(self) -> str:
        return customer_key(self.merchant_id, self.customer_id)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CustomerState:
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        return cls(**known)


def apply_rfm(
    state: CustomerState, score: RfmScore, occurred_at_ms: int, now_iso: str
) -> CustomerState | None:
    """New state with `score`, or None when the event is not newer than what the state holds."""
    if occurred_at_ms <= state.rfm_as_of:
        return None
    return replace(
        state,
        rfm_score=score.to_dict(),
        rfm_as_of=occurred_at_ms,
        version=state.version + 1,
        updated_at=now_iso,
    )
