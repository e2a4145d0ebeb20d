"""A dead letter is the producer's record: its key, timestamp and headers beside ours (D150)."""

from __future__ import annotations

from faust.types.tuples import Message

from core_app.dead_lettering import dead_letter_headers, original_record, rekey_headers
from core_app.topics import REKEYED, RFM_UPDATED

PRODUCER = [("trace_id", b"t-1"), ("source_topic", b"spoofed"), ("reason", b"theirs"), ("empty", b"")]


def message(topic: str, key: bytes | None, timestamp: float, headers: list[tuple[str, bytes]]) -> Message:
    return Message(topic, 3, 41, timestamp, 0, headers, key, b"value", None)


def test_the_producers_headers_are_kept_under_their_names_and_ours_win_collisions() -> None:
    headers = dead_letter_headers(
        RFM_UPDATED, 3, 41, "bad_magic", "first byte is 7", headers=PRODUCER, timestamp_ms=1_700_000_000_123
    )
    as_dict = dict(headers)
    assert [name for name, _ in headers][:6] == [
        "source_topic",
        "source_partition",
        "source_offset",
        "received_on",
        "error_kind",
        "reason",
    ]
    assert as_dict["source_topic"] == b"rfm.updated" and as_dict["reason"] == b"first byte is 7"
    assert as_dict["source_timestamp"] == b"1700000000123"
    assert as_dict["trace_id"] == b"t-1" and as_dict["empty"] == b""
    assert as_dict["original.source_topic"] == b"spoofed" and as_dict["original.reason"] == b"theirs"
    assert len(headers) == 7 + len(PRODUCER)


def test_headers_given_as_a_mapping_are_kept_too() -> None:
    headers = dict(dead_letter_headers(RFM_UPDATED, 0, 1, "invalid", "x", headers={"trace_id": "t-2"}))
    assert headers["trace_id"] == b"t-2"
    assert "source_timestamp" not in headers  # unknown timestamp: no header rather than a made-up one


def test_a_direct_record_is_its_own_original() -> None:
    key, timestamp_ms, headers = original_record(message(RFM_UPDATED, b"m:c", 1_700_000_000.5, PRODUCER))
    assert (key, timestamp_ms, headers) == (b"m:c", 1_700_000_000_500, PRODUCER)


def test_a_rekeyed_record_gives_back_the_producers_key_timestamp_and_headers() -> None:
    carried = rekey_headers(RFM_UPDATED, b"order-42", 1_600_000_000_000, PRODUCER)
    assert dict(carried)["source_topic"] == b"rfm.updated"  # what the rekeyed agent routes on
    assert [v for n, v in carried if n == "source_topic"] == [b"rfm.updated"]  # the producer's renamed
    rekeyed = message(REKEYED, b"m:c", 1_700_000_000.0, carried)
    key, timestamp_ms, headers = original_record(rekeyed)
    assert key == b"order-42" and timestamp_ms == 1_600_000_000_000
    assert headers == [
        ("trace_id", b"t-1"),
        ("original.source_topic", b"spoofed"),
        ("reason", b"theirs"),
        ("empty", b""),
    ]
    final = dict(dead_letter_headers(RFM_UPDATED, 0, 7, "invalid", "x", REKEYED, headers=headers))
    assert final["original.source_topic"] == b"spoofed" and final["original.reason"] == b"theirs"
    assert final["source_topic"] == b"rfm.updated" and final["received_on"] == REKEYED.encode()


def test_a_rekeyed_record_without_a_key_has_none() -> None:
    carried = rekey_headers(RFM_UPDATED, None, None, [])
    key, _, headers = original_record(message(REKEYED, b"m:c", 1.0, carried))
    assert key is None and headers == []
