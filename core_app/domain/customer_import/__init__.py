"""Customer imports, the pure part, one module per concern: `urls` (URL syntax, address policy),
`fields` (cell converters, the metadata block), `formats` (sources, their columns, the row parser),
`reader` (CSV / JSON Lines framing and the streaming reader), `progress` (dedupe, the capped error
log, progress and the log state). No I/O.

Only whitelisted, non-PII columns ever reach `metadata` (under `metadata.imports.{source}`); names,
phone numbers, addresses, birthdays and free-text notes are read past and dropped. The email is the
only personal datum kept, and PostgreSQL stores it encrypted (docs/decisions.md D7).
"""

from core_app.domain.customer_import.fields import RowInvalid, imported_metadata, normalise_header
from core_app.domain.customer_import.formats import (
    FORMATS,
    SHOPIFY_API,
    SOURCES,
    Column,
    RowParser,
    SourceFormat,
    parse_source,
)
from core_app.domain.customer_import.progress import (
    FINAL_STATUSES,
    STATUSES,
    Deduper,
    ErrorLog,
    ImportProgress,
    advance_log,
    new_log_state,
    parse_status,
)
from core_app.domain.customer_import.reader import FileReader, RecordSplitter
from core_app.domain.customer_import.rows import ImportedRow, ImportFileError, RowError
from core_app.domain.customer_import.urls import FileUrl, Network, address_allowed, parse_file_url

__all__ = [
    "FINAL_STATUSES",
    "FORMATS",
    "SHOPIFY_API",
    "SOURCES",
    "STATUSES",
    "Column",
    "Deduper",
    "ErrorLog",
    "FileReader",
    "FileUrl",
    "ImportFileError",
    "ImportProgress",
    "ImportedRow",
    "Network",
    "RecordSplitter",
    "RowError",
    "RowInvalid",
    "RowParser",
    "SourceFormat",
    "address_allowed",
    "advance_log",
    "imported_metadata",
    "new_log_state",
    "normalise_header",
    "parse_file_url",
    "parse_source",
    "parse_status",
]
