"""Customer state as held in the `customers` table and persisted to PostgreSQL.

The state never holds a plaintext email. `email` is the email sealed under the customer's own data
key (`ce1:...`, AES-256-GCM, crypto-shredded on a GDPR request), None when the customer was loaded
from PostgreSQL (whose pgcrypto ciphertext stays there), or `"redacted"`; `email_hash` is its keyed
hash. `version` grows by one on every applied change, so the PostgreSQL sink can refuse to move a row
backwards. `applied_as_of` keeps, per source ("rfm", "points", ...), the occurred-at (epoch ms) of
the newest event applied, so a replayed or older event is recognised and skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

REDACTED_EMAIL = "redacted"


def customer_key(merchant_id: str, customer_id: str) -> str:
    """The key of a customer in every topic and table: co-partitions all customer streams."""
    return f"{merchant_id}:{customer_id}"


@dataclass(frozen=True, slots=True)
class CustomerState:
    merchant_id: str
    customer_id: str
    email: str | None
    email_hash: str | None
    rfm_score: dict[str, int] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    version: int = 0
    applied_as_of: dict[str, int] = field(default_factory=dict)
    redacted_at: str | None = None
    created_at: str | None = None
    updated_at: str | None = None

    @property
    def key(self) -> str:
        return customer_key(self.merchant_id, self.customer_id)

    @property
    def redacted(self) -> bool:
        return self.redacted_at is not None

    def to_dict(self) -> dict[str, Any]:
        # Shallow on purpose (dataclasses.asdict deep-copies): this runs once per event.
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CustomerState:
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        return cls(**known)

    def is_newer(self, source: str, occurred_at_ms: int) -> bool:
        return occurred_at_ms > self.applied_as_of.get(source, 0)

    def advanced(self, source: str, occurred_at_ms: int, now_iso: str, **changes: Any) -> CustomerState:
        """A copy with `changes`, the next version and `source` marked as applied up to the event."""
        return replace(
            self,
            version=self.version + 1,
            applied_as_of={**self.applied_as_of, source: occurred_at_ms},
            updated_at=now_iso,
            **changes,
        )
