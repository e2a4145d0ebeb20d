"""What the collaborators of one run count together: its progress, row errors and stage times."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from core_app.customer_import import metrics
from core_app.domain.customer_import import ImportedRow, ImportProgress, RowError


@dataclass
class Pending:
    """A valid, not yet written row and its keyed email hash."""

    row: ImportedRow
    email_hash: str


@dataclass
class Tally:
    progress: ImportProgress
    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))  # per stage, for the log

    @property
    def source(self) -> str:
        return self.progress.source

    def row_error(self, error: RowError) -> None:
        self.progress.errors.add(error)
        metrics.import_rows_failed.labels(self.source).inc()
