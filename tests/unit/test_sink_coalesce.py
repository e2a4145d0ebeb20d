import json
import uuid

from aiokafka import ConsumerRecord

from core_app.sink import coalesce
from core_app.sink_sql import CUSTOMERS, IMPORT_LOGS, PROGRAM_SETTINGS


def record(offset: int, value: bytes | None, key: bytes = b"k") -> ConsumerRecord:
    return ConsumerRecord(
        topic="core-customers-changelog", partition=0, offset=offset, timestamp=0, timestamp_type=0,
        key=key, value=value, checksum=None, serialized_key_size=len(key),
        serialized_value_size=len(value or b""), headers=(),
    )  # fmt: skip


def state(customer: str, version: int) -> bytes:
    return json.dumps({"merchant_id": "m", "customer_id": customer, "version": version}).encode()


def test_keeps_the_newest_version_per_row_and_sets_aside_what_is_not_a_row() -> None:
    records = [
        record(0, state("a", 2)),
        record(1, state("b", 1)),
        record(2, state("a", 5)),
        record(3, state("a", 4)),  # older than 5, arriving later: ignored
        record(4, b"not json"),
        record(5, None),  # tombstone
        record(6, b"[1, 2]"),
    ]
    batch = coalesce(CUSTOMERS, records)
    newest = {row["customer_id"]: (row["version"], source.offset) for row, source in batch.rows}
    assert newest == {"a": (5, 2), "b": (1, 1)}
    assert [r.offset for r in batch.undecodable] == [4, 5, 6]  # a tombstone of no table key
    assert batch.deletes == []


M, A, B = (str(uuid.UUID(int=n)) for n in (1, 2, 3))


def key(*parts: str) -> bytes:
    return json.dumps(":".join(parts)).encode()


def test_a_tombstone_deletes_its_row_unless_the_key_is_written_again_after_it() -> None:
    records = [
        record(0, json.dumps({"merchant_id": M, "customer_id": A, "version": 7}).encode(), key(M, A)),
        record(1, None, key(M, A)),  # purged after its last state: deleted
        record(2, None, key(M, B)),
        record(3, json.dumps({"merchant_id": M, "customer_id": B, "version": 1}).encode(), key(M, B)),
    ]
    batch = coalesce(CUSTOMERS, records)
    assert [(row, source.offset) for row, source in batch.deletes] == [
        ({"merchant_id": M, "customer_id": A}, 1)
    ]
    assert [row["customer_id"] for row, _ in batch.rows] == [B]  # written again after its tombstone


def test_each_table_names_its_row_from_the_tombstone_key() -> None:
    assert PROGRAM_SETTINGS.tombstone_row(key(M)) == {"merchant_id": M}
    assert IMPORT_LOGS.tombstone_row(key(A)) == {"import_id": A}
    assert CUSTOMERS.tombstone_row(key(M, A)) == {"merchant_id": M, "customer_id": A}
    for bad in (key(M), key("not-a-uuid", A), b"not json", None, json.dumps([M]).encode()):
        assert CUSTOMERS.tombstone_row(bad) is None


def with_entries(customer: str, version: int, *kinds: str) -> bytes:
    entries = [{"version": version - n, "kind": kind} for n, kind in enumerate(kinds)]
    return json.dumps(
        {"merchant_id": "m", "customer_id": customer, "version": version, "timeline": entries}
    ).encode()


def test_every_coalesced_records_timeline_entries_are_kept() -> None:
    """The newest state replaces older ones; their timeline entries are all stored (D170)."""
    records = [
        record(0, with_entries("a", 1, "created")),
        record(1, with_entries("a", 3, "points", "rfm")),
        record(2, state("b", 1)),
    ]
    by_customer = {row["customer_id"]: row for row, _ in coalesce(CUSTOMERS, records).rows}
    assert [e["version"] for e in by_customer["a"]["timeline"]] == [1, 3, 2]
    assert "timeline" not in by_customer["b"]


def test_rows_json_cannot_hold_in_64_bits_still_decode_and_encode() -> None:
    from core_app.sink import dumps

    big = json.dumps(
        {"merchant_id": "m", "customer_id": "z", "version": 1, "metadata": {"n": 2**70}}
    ).encode()
    batch = coalesce(CUSTOMERS, [record(0, big), record(1, b"{not json")])
    [(row, _)] = batch.rows
    assert row["metadata"]["n"] == 2**70 and [r.offset for r in batch.undecodable] == [1]
    assert json.loads(dumps([row]))[0]["metadata"]["n"] == 2**70
