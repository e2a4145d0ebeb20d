"""The sources and their columns (which are kept, which are PII and read past), and the parser
that turns one source's records into rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core_app.domain.customer_import.fields import (
    Converter,
    RowInvalid,
    _amount,
    _boolean,
    _external_id,
    _tags,
    _text,
    _url,
    _whole_number,
    normalise_header,
)
from core_app.domain.customer_import.rows import ImportedRow, ImportFileError, RowError
from core_app.domain.email import normalize_email
from core_app.domain.errors import ValidationFailed

SOURCES = ("shopify", "smile_io", "loyaltylion", "custom", "shopify_api")
# Pulled from the shop's Admin API (core_app/customer_import/shopify_source.py), rendered as Shopify's own
# customer export, so it is read by the `shopify` format.
SHOPIFY_API = "shopify_api"


def parse_source(value: Any) -> str:
    if not isinstance(value, str) or value not in SOURCES:
        raise ValidationFailed("source", f"must be one of {', '.join(SOURCES)}")
    return value


@dataclass(frozen=True)
class Column:
    name: str  # normalised header
    label: str  # as documented, used in error messages
    key: str | None  # the metadata key, None for PII columns that are read past
    convert: Converter | None = None
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class SourceFormat:
    source: str
    columns: tuple[Column, ...]
    required: tuple[str, ...]  # normalised names that must be in the header
    email_column: str = "email"

    def column(self, name: str) -> Column | None:
        for column in self.columns:
            if name == column.name or name in column.aliases:
                return column
        return None


def _pii(name: str, label: str, *aliases: str) -> Column:
    return Column(name, label, None, None, aliases)


FORMATS: dict[str, SourceFormat] = {
    "shopify": SourceFormat(
        "shopify",
        (
            Column("customer_id", "Customer ID", "external_id", _external_id),
            Column("email", "Email", None),
            Column(
                "accepts_email_marketing",
                "Accepts Email Marketing",
                "accepts_email_marketing",
                _boolean,
                ("accepts_marketing",),
            ),
            Column("accepts_sms_marketing", "Accepts SMS Marketing", "accepts_sms_marketing", _boolean),
            Column("total_spent", "Total Spent", "total_spent", _amount),
            Column("total_orders", "Total Orders", "total_orders", _whole_number),
            Column("tax_exempt", "Tax Exempt", "tax_exempt", _boolean),
            Column("tags", "Tags", "tags", _tags),
            _pii("first_name", "First Name"),
            _pii("last_name", "Last Name"),
            _pii("phone", "Phone"),
            _pii("note", "Note"),  # free text: may hold anything
        ),
        required=("email",),
    ),
    "smile_io": SourceFormat(
        "smile_io",
        (
            Column("email", "email", None),
            Column("points", "points", "points", lambda v, c: _whole_number(v, c, required=True)),
            Column("vip_tier", "vip_tier", "vip_tier", _text),
            Column("referral_url", "referral_url", "referral_url", _url),
            _pii("first_name", "first_name"),
            _pii("last_name", "last_name"),
            _pii("date_of_birth", "date_of_birth"),
        ),
        required=("email", "points"),
    ),
    "loyaltylion": SourceFormat(
        "loyaltylion",
        (
            Column("customer_id", "customer ID", "external_id", _external_id),
            Column("email", "email", None),
            Column("points", "points", "points", lambda v, c: _whole_number(v, c, required=True)),
            Column("enrolled", "enrolled", "enrolled", _boolean),
            Column("tier", "tier", "tier", _text),
            _pii("birthday", "birthday"),
        ),
        required=("customer_id", "email", "points", "enrolled"),
    ),
    "custom": SourceFormat(
        "custom",
        (
            Column("email", "email", None),
            Column("points", "points", "points", _whole_number),
            Column("tier", "tier", "tier", _text),
            Column("tags", "tags", "tags", _tags),
            _pii("first_name", "first_name"),
            _pii("last_name", "last_name"),
            _pii("phone", "phone"),
            _pii("birthday", "birthday"),
        ),
        required=("email",),
    ),
}


FORMATS[SHOPIFY_API] = FORMATS["shopify"]


class RowParser:
    """Turns one source's records into ImportedRow or RowError. Build it from the file's header
    (CSV) or with no header (JSON Lines objects, `custom` only)."""

    def __init__(self, source: str, header: list[str] | None = None) -> None:
        self.format = FORMATS[parse_source(source)]
        self.kept = [column for column in self.format.columns if column.key and column.convert]
        self.positions: list[tuple[int, Column]] = []
        if header is not None:
            names = [normalise_header(name) for name in header]
            found = set()
            for index, name in enumerate(names):
                column = self.format.column(name)
                if column is not None and column.name not in found:
                    found.add(column.name)
                    self.positions.append((index, column))
            missing = [name for name in self.format.required if name not in found]
            if missing:
                labels = [self.format.column(name).label for name in missing]  # type: ignore[union-attr]
                raise ImportFileError(f"the header lacks the column(s) {', '.join(labels)}")

    def parse_values(self, row: int, values: list[str]) -> ImportedRow | RowError:
        record = {column.name: values[index] for index, column in self.positions if index < len(values)}
        return self._build(row, record)

    def parse_object(self, row: int, document: Any) -> ImportedRow | RowError:
        if not isinstance(document, dict):
            return RowError(row, "not a JSON object")
        record: dict[str, Any] = {}
        for key, value in document.items():
            column = self.format.column(normalise_header(str(key)))
            if column is not None:
                record[column.name] = value
        return self._build(row, record)

    def _build(self, row: int, record: dict[str, Any]) -> ImportedRow | RowError:
        raw_email = record.get(self.format.email_column)
        if raw_email is None or (isinstance(raw_email, str) and not raw_email.strip()):
            return RowError(row, "email: is required")
        if not isinstance(raw_email, str):
            return RowError(row, "email: must be text")
        try:
            email = normalize_email(raw_email)
        except ValidationFailed as exc:
            return RowError(row, f"email: {exc.reason}")  # never echo the value: it is PII
        fields: dict[str, Any] = {}
        try:
            for column in self.kept:
                value = column.convert(record.get(column.name), column.label)  # type: ignore[misc]
                if value is not None:
                    fields[column.key] = value  # type: ignore[index]
        except RowInvalid as exc:
            return RowError(row, exc.message)
        return ImportedRow(row, email, fields)
