"""Customer imports, the pure part: sources and their columns, row validation, CSV record framing,
duplicate detection, the capped error log and the import's progress. No I/O.

Only whitelisted, non-PII columns ever reach `metadata` (under `metadata.imports.{source}`); names,
phone numbers, addresses, birthdays and free-text notes are read past and dropped. The email is the
only personal datum kept, and PostgreSQL stores it encrypted (docs/decisions.md D7).
"""

from __future__ import annotations

import csv
import ipaddress
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import unquote, urlsplit

from core_app.domain.email import normalize_email
from core_app.domain.errors import ValidationFailed
from core_app.domain.events import parse_uuid
from core_app.domain.pii import sanitize_metadata

SOURCES = ("shopify", "smile_io", "loyaltylion", "custom", "shopify_api")
# Pulled from the shop's Admin API (core_app/imports/shopify_source.py), rendered as Shopify's own
# customer export, so it is read by the `shopify` format.
SHOPIFY_API = "shopify_api"
STATUSES = ("pending", "processing", "completed", "failed")
FINAL_STATUSES = frozenset({"completed", "failed"})
URL_SCHEMES = ("http", "https", "file")
MAX_URL_LENGTH = 2048
MAX_RECORD_CHARS = 64 * 1024  # one CSV record (an unterminated quote would otherwise swallow the file)
MAX_NUMBER = 10**12
MAX_TAGS = 50
MAX_TEXT = 100


class ImportFileError(Exception):
    """The file as a whole cannot be imported (a missing column, a broken quote): the import fails."""


# -- request validation ---------------------------------------------------------------------------


def parse_source(value: Any) -> str:
    if not isinstance(value, str) or value not in SOURCES:
        raise ValidationFailed("source", f"must be one of {', '.join(SOURCES)}")
    return value


def parse_status(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or value not in STATUSES:
        raise ValidationFailed("status", f"must be one of {', '.join(STATUSES)}")
    return value


@dataclass(frozen=True, slots=True)
class FileUrl:
    url: str
    scheme: str
    host: str | None  # http(s) only
    port: int | None
    path: str  # file:// only: the absolute path

    @property
    def public(self) -> str:
        """The URL without query string, fragment or credentials (signed URLs carry secrets there)."""
        parts = urlsplit(self.url)
        netloc = parts.hostname or ""
        if ":" in netloc:
            netloc = f"[{netloc}]"
        if parts.port:
            netloc += f":{parts.port}"
        return f"{parts.scheme}://{netloc}{parts.path}"


def parse_file_url(value: Any) -> FileUrl:
    """Syntax only: scheme http, https or file; a host for http(s); an absolute path for file://."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationFailed("file_url", "is required")
    url = value.strip()
    if len(url) > MAX_URL_LENGTH or not url.isprintable():
        raise ValidationFailed("file_url", f"must be a printable URL of at most {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValidationFailed("file_url", "is not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in URL_SCHEMES:
        raise ValidationFailed("file_url", "must be an http://, https:// or file:// URL")
    if scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise ValidationFailed("file_url", "a file:// URL must name an absolute local path")
        return FileUrl(url, scheme, None, None, unquote(parts.path))
    if not parts.hostname:
        raise ValidationFailed("file_url", "must name a host")
    return FileUrl(url, scheme, parts.hostname, port, parts.path)


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def address_allowed(address: str, allow_private: bool, allowlist: Iterable[Network] = ()) -> bool:
    """True if an import may connect to `address`: a public unicast address, or one allowed by
    configuration. Private, loopback, link-local (cloud metadata), multicast, reserved and
    unspecified addresses are refused by default, IPv4-mapped IPv6 included."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if any(ip in network for network in allowlist if network.version == ip.version):
        return True
    if allow_private:
        return not (ip.is_multicast or ip.is_unspecified)
    return ip.is_global and not ip.is_multicast


# -- rows -----------------------------------------------------------------------------------------


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


def normalise_header(name: str) -> str:
    """'Accepts Email Marketing' -> 'accepts_email_marketing', 'customer ID' -> 'customer_id'."""
    return re.sub(r"[\s_\-]+", "_", name.strip().lstrip("\ufeff").lower()).strip("_")


class RowInvalid(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _text(value: Any, column: str, max_length: int = MAX_TEXT) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        value = str(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
        if value is None:
            raise RowInvalid(f"{column}: must be text")
    value = value.strip()
    if not value:
        return None
    if len(value) > max_length:
        raise RowInvalid(f"{column}: longer than {max_length} characters")
    if "\x00" in value:
        raise RowInvalid(f"{column}: contains a NUL character")
    return value


def _whole_number(value: Any, column: str, required: bool = False) -> int | None:
    if isinstance(value, bool):
        raise RowInvalid(f"{column}: not a whole number")
    if isinstance(value, float):
        if not value.is_integer():
            raise RowInvalid(f"{column}: not a whole number")
        value = int(value)
    if isinstance(value, int):
        number = value
    else:
        text = _text(value, column, 32)
        if text is None:
            if required:
                raise RowInvalid(f"{column}: is required")
            return None
        if not re.fullmatch(r"[+-]?\d+(\.0+)?", text):
            raise RowInvalid(f"{column}: not a whole number")
        number = int(text.split(".", 1)[0])
    if not 0 <= number <= MAX_NUMBER:
        raise RowInvalid(f"{column}: must be between 0 and {MAX_NUMBER}")
    return number


def _amount(value: Any, column: str) -> float | None:
    if isinstance(value, bool):
        raise RowInvalid(f"{column}: not a number")
    if isinstance(value, int | float):
        text = repr(value)
    else:
        text = _text(value, column, 32)
        if text is None:
            return None
    try:
        amount = Decimal(text.replace(",", "") if re.fullmatch(r"[\d,]+(\.\d+)?", text) else text)
    except InvalidOperation:
        raise RowInvalid(f"{column}: not a number") from None
    if not amount.is_finite() or not 0 <= amount <= MAX_NUMBER:
        raise RowInvalid(f"{column}: must be a number between 0 and {MAX_NUMBER}")
    return float(round(amount, 2))


_TRUE = frozenset({"yes", "y", "true", "t", "1"})
_FALSE = frozenset({"no", "n", "false", "f", "0"})


def _boolean(value: Any, column: str) -> bool | None:
    if isinstance(value, bool):
        return value
    text = _text(value, column, 16)
    if text is None:
        return None
    lowered = text.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise RowInvalid(f"{column}: expected yes/no or true/false")


def _tags(value: Any, column: str) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, list):
        items = [_text(item, column) for item in value]
    else:
        text = _text(value, column, MAX_TAGS * (MAX_TEXT + 2))
        items = [_text(part, column) for part in text.split(",")] if text else []
    tags = [tag for tag in items if tag]
    if len(tags) > MAX_TAGS:
        raise RowInvalid(f"{column}: more than {MAX_TAGS} tags")
    return tags or None


def _external_id(value: Any, column: str) -> str | None:
    text = _text(value, column, 64)
    if text is None:
        return None
    return text.lstrip("'") or None  # Shopify prefixes ids with ' so spreadsheets keep them as text


def _url(value: Any, column: str) -> str | None:
    text = _text(value, column, 500)
    if text is not None and not re.match(r"https?://", text, re.IGNORECASE):
        raise RowInvalid(f"{column}: not an http(s) URL")
    return text


Converter = Callable[[Any, str], Any]


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


# -- framing --------------------------------------------------------------------------------------


class RecordSplitter:
    """Cuts decoded text into complete records, whatever the chunk boundaries.

    For CSV a record ends at a newline outside quotes: with `"` as the only quote character (doubled
    inside a field), that is a newline after an even number of quotes since the record began. The
    lines of complete records can then go to `csv.reader` in any grouping. For JSON Lines every line
    is a record (`quoted=False`).
    """

    def __init__(self, quoted: bool = True, max_record_chars: int = MAX_RECORD_CHARS) -> None:
        self.quoted = quoted
        self.max_record_chars = max_record_chars
        self._partial = ""  # text after the last newline
        self._open: list[str] = []  # lines of a record whose quotes are still open
        self._open_quotes = 0
        self._open_chars = 0

    def feed(self, text: str) -> list[list[str]]:
        """The records completed by `text`; each record is its list of lines (newlines kept)."""
        data = self._partial + text
        lines = data.split("\n")
        self._partial = lines.pop()
        if len(self._partial) > self.max_record_chars:
            raise ImportFileError(f"a record is longer than {self.max_record_chars} characters")
        return self._records(line + "\n" for line in lines)

    def finish(self) -> list[list[str]]:
        """The records left at the end of the file (a last line without a newline)."""
        tail, self._partial = self._partial, ""
        records = self._records([tail] if tail else [])
        if self._open:
            raise ImportFileError("the file ends inside a quoted field")
        return records

    def _records(self, lines: Iterable[str]) -> list[list[str]]:
        records: list[list[str]] = []
        for line in lines:
            if not self.quoted:
                records.append([line])
                continue
            quotes = line.count('"')
            if not self._open and not quotes % 2:
                records.append([line])
                continue
            self._open.append(line)
            self._open_quotes += quotes
            self._open_chars += len(line)
            if self._open_chars > self.max_record_chars:
                raise ImportFileError(f"a record is longer than {self.max_record_chars} characters")
            if not self._open_quotes % 2:
                records.append(self._open)
                self._open, self._open_quotes, self._open_chars = [], 0, 0
        return records


def csv_values(record: list[str]) -> list[str] | None:
    """One record's fields; None for a blank record. Raises csv.Error on a malformed record."""
    values = next(csv.reader(record, strict=True), None)
    if not values or (len(values) == 1 and not values[0].strip()):
        return None
    return values


def json_value(line: str) -> Any:
    """One JSON Lines record, or raises ValueError."""
    return json.loads(line)


def looks_like_json_lines(first_text: str) -> bool:
    """`custom` files are CSV or JSON Lines; JSON Lines start with an object."""
    return first_text.lstrip("\ufeff \t\r\n").startswith("{")


class FileReader:
    """Decoded text in, (row number, parsed row) out: CSV with a header, or JSON Lines (`custom`).

    Row numbers are what a spreadsheet shows: the header is row 1 and the first customer row 2. In
    JSON Lines they are line numbers. Blank records are skipped but keep their number.
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self.json_lines: bool | None = None if source == "custom" else False
        self.splitter: RecordSplitter | None = None
        self.parser: RowParser | None = None
        self.record = 0  # records so far, the header included: spreadsheet row numbers
        self._head = ""

    def feed(self, text: str) -> list[tuple[int, ImportedRow | RowError]]:
        if self.splitter is None:
            self._head += text
            if self.json_lines is None:
                if not self._head.strip():
                    return []
                self.json_lines = looks_like_json_lines(self._head)
            self.splitter = RecordSplitter(quoted=not self.json_lines)
            text, self._head = self._head.removeprefix("\ufeff"), ""
            if self.json_lines:
                self.parser = RowParser(self.source)
        return self._parse(self.splitter.feed(text))

    def finish(self) -> list[tuple[int, ImportedRow | RowError]]:
        if self.splitter is None:
            if self._head.strip():
                return self.feed("") + self.finish()
            raise ImportFileError("the file is empty")
        out = self._parse(self.splitter.finish())
        if self.parser is None:
            raise ImportFileError("the file has no header row")
        return out

    def _parse(self, records: list[list[str]]) -> list[tuple[int, ImportedRow | RowError]]:
        out: list[tuple[int, ImportedRow | RowError]] = []
        for record in records:
            self.record += 1
            row = self.record
            if self.json_lines:
                line = record[0].strip()
                if not line:
                    continue
                try:
                    document = json_value(line)
                except ValueError:
                    out.append((row, RowError(row, "not valid JSON")))
                    continue
                assert self.parser is not None
                out.append((row, self.parser.parse_object(row, document)))
                continue
            try:
                values = csv_values(record)
            except Exception:  # csv.Error: a malformed record, or a NUL byte
                out.append((row, RowError(row, "malformed CSV record")))
                continue
            if values is None:
                continue
            if self.parser is None:
                self.parser = RowParser(self.source, values)  # ImportFileError if columns are missing
                continue
            out.append((row, self.parser.parse_values(row, values)))
        return out


# -- dedupe and errors ----------------------------------------------------------------------------


class Deduper:
    """Emails seen earlier in this file, by keyed hash (never by plaintext)."""

    def __init__(self) -> None:
        self._first_row: dict[bytes, int] = {}

    def check(self, row: int, email_hash: str) -> RowError | None:
        key = bytes.fromhex(email_hash)[:16]
        first = self._first_row.setdefault(key, row)
        if first != row:
            return RowError(row, f"duplicate email in this file (first at row {first})")
        return None

    def __len__(self) -> int:
        return len(self._first_row)


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


# -- metadata -------------------------------------------------------------------------------------


def imported_metadata(existing: dict[str, Any], source: str, block: dict[str, Any]) -> dict[str, Any]:
    """`existing` with `metadata.imports.{source}` replaced by `block`, PII removed."""
    imports = existing.get("imports") if isinstance(existing.get("imports"), dict) else {}
    return sanitize_metadata({**existing, "imports": {**imports, source: block}})


# -- progress -------------------------------------------------------------------------------------


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
