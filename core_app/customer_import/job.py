"""An import job: what the import agent receives on core.import.jobs (JSON, keyed by import_id).
The run itself is core_app/customer_import/run.py."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ImportJob:
    """What the import agent receives on core.import.jobs (JSON, keyed by import_id)."""

    import_id: str
    merchant_id: str
    source: str
    file_url: str
    created_at: str  # ISO-8601 UTC, ms
    requested_at_ms: int

    def to_json(self) -> bytes:
        return json.dumps(self.__dict__).encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> ImportJob:
        data = json.loads(raw)
        return cls(**{name: data[name] for name in cls.__dataclass_fields__})

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ImportJob:
        return cls(
            import_id=state["import_id"],
            merchant_id=state["merchant_id"],
            source=state["source"],
            file_url=state.get("fetch_url") or state["file_url"],
            created_at=state["created_at"],
            requested_at_ms=int(state.get("requested_at_ms") or 0),
        )
