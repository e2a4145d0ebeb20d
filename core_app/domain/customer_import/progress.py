"""An import's progress: in-file dedupe, the capped error log, the progress message and the log
state the `import_logs` table holds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core_app.domain.customer_import.dedupe import Deduper as FlatDeduper
from core_app.domain.customer_import.formats import parse_source
from core_app.domain.customer_import.rows import RowError
from core_app.domain.errors import ValidationFailed
from core_app.domain.events import parse_uuid

STATUSES = ("pending", "processing", "completed", "failed")
FINAL_STATUSES = frozenset({"completed", "failed"})


def parse_status(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or value not in STATUSES:
        raise ValidationFailed("status", f"must be one of {', '.join(STATUSES)}")
    return value


class Deduper(FlatDeduper):
    """Emails seen earlier in this file, by keyed hash (never by plaintext), in flat memory."""

    def check(self, row: int, email_hash: str) -> RowError | None:
        first = self.first_row(row, email_hash)
        if first != row:
            return RowError(row, f"duplicate email in this file (first at row {first})")
        return None


@dataclass
class ErrorLog:
    """Row errors: the first `limit` kept, all counted."""

    limit: int
    count: int = 0
    entries: list[RowError] = field(default_factory=list)

    def add(self, error: RowError) -> None:
        self.count += 1
        if len(self.entries) < self.limit:
            self.entries.append(error)

    def to_json(self, failure_reason: str | None = None) -> dict[str, Any]:
        document: dict[str, Any] = {
            "count": self.count,
            "errors": [entry.to_dict() for entry in self.entries],
            "truncated": self.count > len(self.entries),
        }
        if failure_reason:
            document["failure_reason"] = failure_reason
        return document


@dataclass
class ImportProgress:
    import_id: str
    merchant_id: str
    source: str
    status: str = "pending"
    processed: int = 0  # data records read (blank lines aside)
    created: int = 0
    updated: int = 0
    bytes_read: int = 0
    bytes_total: int | None = None
    errors: ErrorLog = field(default_factory=lambda: ErrorLog(100))
    failure_reason: str | None = None
    total: int | None = None  # known once the file has been read to the end

    @property
    def succeeded(self) -> int:
        return self.created + self.updated

    @property
    def failed(self) -> int:
        return self.errors.count

    def message(self) -> dict[str, Any]:
        """The `import.progress` update published on core.updates."""
        return {
            "type": "import.progress",
            "merchant_id": self.merchant_id,
            "import_id": self.import_id,
            "source": self.source,
            "status": self.status,
            "processed": self.processed,
            "succeeded": self.succeeded,
            "created": self.created,
            "updated": self.updated,
            "failed": self.failed,
            "total": self.total,
            "bytes_read": self.bytes_read,
            "bytes_total": self.bytes_total,
            "failure_reason": self.failure_reason,
        }


def new_log_state(
    import_id: str, merchant_id: str, source: str, file_url: str, created_at: str
) -> dict[str, Any]:
    """The import log as the `import_logs` table holds it (the sink persists these fields)."""
    return {
        "import_id": parse_uuid(import_id, "import_id"),
        "merchant_id": parse_uuid(merchant_id, "merchant_id"),
        "source": parse_source(source),
        "status": "pending",
        "file_url": file_url,
        "record_count": 0,
        "error_count": 0,
        "error_log": None,
        "failure_reason": None,
        "version": 0,
        "created_at": created_at,
        "runs": 0,
    }


def advance_log(state: dict[str, Any], progress: ImportProgress) -> dict[str, Any]:
    """The next version of the log state, from the progress of the run."""
    return {
        **state,
        "status": progress.status,
        "record_count": progress.succeeded,
        "error_count": progress.failed,
        "error_log": progress.errors.to_json(progress.failure_reason),
        "failure_reason": progress.failure_reason,
        "version": int(state.get("version", 0)) + 1,
    }
