import json

from aiokafka import ConsumerRecord

from core_app.sink import coalesce
from core_app.sink_sql import CUSTOMERS


def record(offset: int, value: bytes | None) -> ConsumerRecord:
    return ConsumerRecord(
        topic="core-customers-changelog", partition=0, offset=offset, timestamp=0, timestamp_type=0,
        key=b"k", value=value, checksum=None, serialized_key_size=1,
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
    rows, undecodable = coalesce(CUSTOMERS, records)
    newest = {row["customer_id"]: (row["version"], source.offset) for row, source in rows}
    assert newest == {"a": (5, 2), "b": (1, 1)}
    assert [r.offset for r in undecodable] == [4, 6]
