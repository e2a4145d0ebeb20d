"""The streaming reader: decoded text in, whatever the chunk boundaries; numbered rows out."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from typing import Any

from core_app.domain.customer_import.formats import RowParser
from core_app.domain.customer_import.rows import ImportedRow, ImportFileError, RowError

MAX_RECORD_CHARS = 64 * 1024  # one CSV record (an unterminated quote would otherwise swallow the file)


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
