"""Imports, the pure part: formats, framing, dedupe, error capping, URL and address policy."""

from __future__ import annotations

import ipaddress

import pytest

from core_app.domain.customer_import import (
    Deduper,
    ErrorLog,
    FileReader,
    ImportedRow,
    ImportFileError,
    ImportProgress,
    RecordSplitter,
    RowError,
    RowParser,
    address_allowed,
    advance_log,
    imported_metadata,
    new_log_state,
    parse_file_url,
    parse_source,
    parse_status,
)
from core_app.domain.errors import ValidationFailed
from core_app.domain.pii import PII_KEYS
from core_app.settings import REPO_ROOT

DATA = REPO_ROOT / "tests" / "data"


def read_all(source: str, text: str, step: int) -> list[tuple[int, ImportedRow | RowError]]:
    reader = FileReader(source)
    out = []
    for start in range(0, len(text), step):
        out += reader.feed(text[start : start + step])
    return out + reader.finish()


def summary(parsed: list[tuple[int, ImportedRow | RowError]]) -> list[tuple[int, str]]:
    return [(row, o.email if isinstance(o, ImportedRow) else f"ERR {o.error}") for row, o in parsed]


@pytest.mark.parametrize("step", [1, 7, 64, 10_000])
def test_shopify_sample_whatever_the_chunking(step: int) -> None:
    parsed = read_all("shopify", (DATA / "shopify_customers.csv").read_text(), step)
    assert summary(parsed) == [
        (2, "ada.lovelace@example.com"),
        (3, "grace.hopper@example.com"),  # a quoted note spanning two lines is one record
        (4, "ERR email: not a valid email address"),
        (5, "ERR Total Orders: not a whole number"),
        (6, "grace.hopper@example.com"),  # the duplicate is caught by the Deduper, later
        (7, "returning.customer@example.com"),
        (8, "ERR email: is required"),
    ]
    ada = parsed[0][1]
    assert isinstance(ada, ImportedRow)
    assert ada.fields == {
        "external_id": "7001",
        "accepts_email_marketing": True,
        "accepts_sms_marketing": False,
        "total_spent": 1250.5,
        "total_orders": 12,
        "tax_exempt": False,
        "tags": ["vip", "newsletter"],
    }


@pytest.mark.parametrize(
    ("source", "name", "expected"),
    [
        (
            "smile_io",
            "smile_io_customers.csv",
            [
                (2, "mia.wong@example.com"),
                (3, "liam.smith@example.com"),
                (4, "ERR points: not a whole number"),
                (5, "ERR email: not a valid email address"),
                (6, "returning.customer@example.com"),
                (7, "mia.wong@example.com"),
            ],
        ),
        (
            "loyaltylion",
            "loyaltylion_customers.csv",
            [
                (2, "olivia.brown@example.com"),
                (3, "ethan.davis@example.com"),
                (4, "ERR points: must be between 0 and 1000000000000"),
                (5, "returning.customer@example.com"),
                (6, "ERR enrolled: expected yes/no or true/false"),
            ],
        ),
        (
            "custom",
            "custom_customers.csv",
            [
                (2, "zoe.taylor@example.com"),
                (3, "lucas.moore@example.com"),
                (4, "returning.customer@example.com"),
                (5, "ERR email: not a valid email address"),
                (6, "ERR points: not a whole number"),
            ],
        ),
        (
            "custom",
            "custom_customers.jsonl",
            [
                (1, "henry.clark@example.com"),
                (2, "amelia.lewis@example.com"),
                (3, "returning.customer@example.com"),
                (4, "ERR not valid JSON"),
                (5, "henry.clark@example.com"),
                (6, "ERR points: not a whole number"),
                (7, "ERR not a JSON object"),
            ],
        ),
    ],
)
def test_every_sample_parses_as_documented(source: str, name: str, expected: list) -> None:
    assert summary(read_all(source, (DATA / name).read_text(), 50)) == expected


def test_no_pii_column_reaches_the_fields() -> None:
    for source, name in [
        ("shopify", "shopify_customers.csv"),
        ("smile_io", "smile_io_customers.csv"),
        ("loyaltylion", "loyaltylion_customers.csv"),
        ("custom", "custom_customers.csv"),
        ("custom", "custom_customers.jsonl"),
    ]:
        for _row, outcome in read_all(source, (DATA / name).read_text(), 4096):
            if isinstance(outcome, ImportedRow):
                keys = {key.lower() for key in outcome.fields}
                assert not keys & PII_KEYS
                assert not keys & {"birthday", "note", "phone", "first_name", "date_of_birth"}
                text = repr(outcome.fields).lower()
                for leaked in ("lovelace", "hopper", "+44", "555", "1990-04-12", "pop-up", "james's"):
                    assert leaked not in text


def test_missing_required_columns_fail_the_file() -> None:
    with pytest.raises(ImportFileError, match="Email"):
        RowParser("shopify", ["First Name", "Phone"])
    with pytest.raises(ImportFileError, match=r"customer ID.*enrolled"):
        RowParser("loyaltylion", ["email", "points"])
    # headers match case-insensitively, whatever the separators
    assert RowParser("loyaltylion", ["Customer_ID", "EMAIL", " Points ", "Enrolled"]).positions


def test_csv_quotes_are_framed_across_chunks() -> None:
    splitter = RecordSplitter()
    records = splitter.feed('a,"multi\nline ""quoted""\nfield",b\nc,d\ne')
    assert records == [['a,"multi\n', 'line ""quoted""\n', 'field",b\n'], ["c,d\n"]]
    assert splitter.finish() == [["e"]]
    unterminated = RecordSplitter(max_record_chars=100)
    with pytest.raises(ImportFileError, match="longer than 100"):
        unterminated.feed('x,"never closed\n' + "y\n" * 200)
    with pytest.raises(ImportFileError, match="inside a quoted field"):
        broken = RecordSplitter()
        broken.feed('x,"open\n')
        broken.finish()


def test_custom_detects_json_lines_and_a_bom_is_ignored() -> None:
    assert summary(read_all("custom", '\ufeff{"email": "a@b.co"}\n', 3)) == [(1, "a@b.co")]
    assert summary(read_all("custom", "\ufeffEmail\na@b.co\n", 3)) == [(2, "a@b.co")]
    with pytest.raises(ImportFileError, match="empty"):
        read_all("custom", "  \n", 10)


def test_numbers_and_booleans() -> None:
    parser = RowParser("shopify", ["Email", "Total Spent", "Total Orders", "Tax Exempt"])
    good = parser.parse_values(2, ["a@b.co", "1,234.567", "+3", "YES"])
    assert isinstance(good, ImportedRow)
    assert good.fields == {"total_spent": 1234.57, "total_orders": 3, "tax_exempt": True}
    for values, error in [
        (["a@b.co", "NaN", "", ""], "Total Spent: must be a number"),
        (["a@b.co", "-1", "", ""], "Total Spent: must be a number"),
        (["a@b.co", "", "1.5", ""], "Total Orders: not a whole number"),
        (["a@b.co", "", "", "sometimes"], "Tax Exempt: expected yes/no"),
        (["a@b.co\x00", "", "", ""], "email: not a valid email address"),
    ]:
        outcome = parser.parse_values(9, values)
        assert isinstance(outcome, RowError) and outcome.error.startswith(error), outcome


def test_row_errors_never_echo_the_email() -> None:
    outcome = RowParser("custom", ["email"]).parse_values(2, ["jane.doe@@example.com"])
    assert isinstance(outcome, RowError) and "jane" not in outcome.error


def test_dedupe_by_hash_and_capped_error_log() -> None:
    dedupe = Deduper()
    assert dedupe.check(2, "ab" * 32) is None
    assert dedupe.check(3, "cd" * 32) is None
    assert dedupe.check(9, "ab" * 32) == RowError(9, "duplicate email in this file (first at row 2)")
    errors = ErrorLog(limit=2)
    for row in range(5):
        errors.add(RowError(row, "bad"))
    assert errors.to_json() == {
        "count": 5,
        "errors": [{"row": 0, "error": "bad"}, {"row": 1, "error": "bad"}],
        "truncated": True,
    }
    assert errors.to_json("boom")["failure_reason"] == "boom"


def test_dedupe_stays_exact_while_its_tables_grow() -> None:
    import hashlib

    dedupe = Deduper()
    digests = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(20_000)]
    assert all(dedupe.check(row, digest) is None for row, digest in enumerate(digests))
    assert len(dedupe) == 20_000
    for row in (0, 1, 12_345, 19_999):
        assert dedupe.check(30_000 + row, digests[row]) == RowError(
            30_000 + row, f"duplicate email in this file (first at row {row})"
        )
    assert dedupe.check(0, digests[0]) is None  # the same row seen again (a retried download)


def test_imported_metadata_keeps_other_sources_and_drops_pii() -> None:
    existing = {"points": {"balance": 5}, "imports": {"shopify": {"total_orders": 2}}, "phone": "x"}
    merged = imported_metadata(existing, "smile_io", {"points": 10, "first_name": "Ann"})
    assert merged == {
        "points": {"balance": 5},
        "imports": {"shopify": {"total_orders": 2}, "smile_io": {"points": 10}},
    }


def test_log_state_follows_progress() -> None:
    state = new_log_state(
        "0b7b3d1e-9a55-4a43-8c6a-3f1f5d0c2e77", "6b1d4a8e-3c1f-4e8f-9b1e-5c0f8c6b2a10", "custom", "f", "t"
    )
    progress = ImportProgress(state["import_id"], state["merchant_id"], "custom", status="processing")
    progress.created, progress.updated = 3, 2
    progress.errors.add(RowError(4, "bad"))
    after = advance_log(state, progress)
    assert (after["status"], after["record_count"], after["error_count"], after["version"]) == (
        "processing",
        5,
        1,
        1,
    )
    message = progress.message()
    assert message["type"] == "import.progress"
    assert (message["processed"], message["succeeded"], message["failed"]) == (0, 5, 1)


def test_request_validation_names_the_field() -> None:
    assert parse_source("smile_io") == "smile_io"
    for bad in ("shopify ", "csv", None, 3):
        with pytest.raises(ValidationFailed) as caught:
            parse_source(bad)
        assert caught.value.field == "source"
    assert parse_status(None) is None
    with pytest.raises(ValidationFailed):
        parse_status("done")
    for bad in ("", "ftp://x/y.csv", "http://", "file://host/etc/passwd", "gopher://a", 5, "http://a:99999/"):
        with pytest.raises(ValidationFailed) as caught:
            parse_file_url(bad)
        assert caught.value.field == "file_url"
    url = parse_file_url("https://user:pw@files.example.com:8443/x.csv?sig=secret#frag")
    assert url.public == "https://files.example.com:8443/x.csv"
    assert parse_file_url("file:///srv/imports/a%20b.csv").path == "/srv/imports/a b.csv"


@pytest.mark.parametrize(
    ("address", "public_only", "with_private"),
    [
        ("93.184.216.34", True, True),
        ("2606:2800:220:1:248:1893:25c8:1946", True, True),
        ("10.0.0.1", False, True),
        ("172.16.5.4", False, True),
        ("192.168.1.1", False, True),
        ("127.0.0.1", False, True),
        ("169.254.169.254", False, True),  # cloud metadata
        ("::1", False, True),
        ("fe80::1", False, True),
        ("fd00::1", False, True),
        ("::ffff:10.0.0.1", False, True),  # IPv4-mapped
        ("100.64.0.1", False, True),  # carrier-grade NAT
        ("0.0.0.0", False, False),
        ("224.0.0.1", False, False),
        ("not-an-ip", False, False),
    ],
)
def test_address_policy(address: str, public_only: bool, with_private: bool) -> None:
    assert address_allowed(address, allow_private=False) is public_only
    assert address_allowed(address, allow_private=True) is with_private


def test_allowlist_opens_only_its_networks() -> None:
    allow = [ipaddress.ip_network("127.0.0.1/32")]
    assert address_allowed("127.0.0.1", False, allow)
    assert not address_allowed("127.0.0.2", False, allow)
    assert not address_allowed("10.0.0.1", False, allow)
