"""What reading a file yields: a row to import, a row error, or an error of the whole file."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class ImportFileError(Exception):
    """The file as a whole cannot be imported (a missing column, a broken quote): the import fails."""


@dataclass(frozen=True, slots=True)
class ImportedRow:
    row: int
    email: str  # normalised
    fields: dict[str, Any]  # non-PII values for metadata.imports.{source}


@dataclass(frozen=True, slots=True)
class RowError:
    row: int | None
    error: str

    def to_dict(self) -> dict[str, Any]:
        return {"row": self.row, "error": self.error}
