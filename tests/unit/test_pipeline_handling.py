"""The agents' command handling through the fakes: malformed events are dead-lettered with their
reason and the producer's record (agents/pipeline.py, agents/rekeyed.py), parked events are released
or dead-lettered (agents/parking.py), and the sink and the agents share one dead-letter path
(core_app/dead_lettering.py, core_app/sink.py)."""

from __future__ import annotations

import json
import uuid
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition

from agents.parking import release
from agents.pipeline import PipelineDeps, consume_batch, parse_or_divert
from agents.rekeyed import process_rekeyed
from agents.repartition import own_partition
from core_app import topics
from core_app.dead_lettering import DeadLetterProducer
from core_app.domain.events import RfmUpdated
from core_app.services.ports import FailedRecord
from core_app.settings import Settings
from core_app.sink import PostgresSink
from core_app.sink_sql import SPECS
from tests.unit.fakes import FakeCodec, FakeDataKeys, FakeDeadLetters, FakeEvent, FakeMessage

MERCHANT, CUSTOMER = str(uuid.uuid4()), str(uuid.uuid4())
KEY = f"{MERCHANT}:{CUSTOMER}"


def event(value: bytes, key: str = KEY, topic: str = topics.RFM_UPDATED, offset: int = 7) -> FakeEvent:
    headers = [("trace_id", b"t-9")]
    return FakeEvent(FakeMessage(topic, own_partition(key), offset, key, value, headers))


def rfm(merchant: str = MERCHANT) -> bytes:
    record = {
        "event_id": str(uuid.uuid4()),
        "merchant_id": merchant,
        "customer_id": CUSTOMER,
        "occurred_at": 1_700_000_000_000,
        "rfm_score": {"recency": 3, "frequency": 2, "monetary": 5},
    }
    return json.dumps(record).encode()


def deps(codec: FakeCodec | None = None) -> tuple[PipelineDeps, FakeDeadLetters]:
    letters = FakeDeadLetters()
    settings = Settings()
    fake: Any = None  # pool and Redis: not reached by the paths under test
    return PipelineDeps(codec or FakeCodec(), letters, FakeDataKeys(), fake, fake, settings), letters


async def test_an_undecodable_event_is_dead_lettered_with_the_codecs_reason() -> None:
    raw = event(b"\x00junk")
    pipeline, letters = deps(FakeCodec(undecodable={b"\x00junk"}))
    assert await parse_or_divert(pipeline, raw, topics.RFM_UPDATED, RfmUpdated.parse, []) is None  # type: ignore[arg-type]
    [(record, kind, reason)] = letters.sent
    assert kind == "unknown_schema" and reason == "not a framed Avro record"
    assert (record.origin, record.offset, record.key) == (topics.RFM_UPDATED, 7, KEY)
    assert record.headers == (("trace_id", b"t-9"),) and record.timestamp_ms == 1_700_000_000_250


async def test_an_invalid_event_is_dead_lettered_as_invalid() -> None:
    pipeline, letters = deps()
    raw = event(json.dumps({"merchant_id": "nope"}).encode())
    assert await parse_or_divert(pipeline, raw, topics.RFM_UPDATED, RfmUpdated.parse, []) is None  # type: ignore[arg-type]
    assert letters.kinds == ["invalid"]


async def test_a_key_naming_another_merchant_is_dead_lettered() -> None:
    pipeline, letters = deps()
    raw = event(rfm(merchant=str(uuid.uuid4())))
    assert await parse_or_divert(pipeline, raw, topics.RFM_UPDATED, RfmUpdated.parse, []) is None  # type: ignore[arg-type]
    assert letters.kinds == ["merchant_mismatch"]


async def test_a_valid_event_on_its_own_partition_is_parsed() -> None:
    pipeline, letters = deps()
    parsed = await parse_or_divert(pipeline, event(rfm()), topics.RFM_UPDATED, RfmUpdated.parse, [])  # type: ignore[arg-type]
    assert parsed is not None and parsed.key == KEY and letters.sent == []


async def test_a_batch_that_fails_as_a_whole_dead_letters_every_event() -> None:
    def broken(record: dict[str, Any]) -> RfmUpdated:
        raise RuntimeError("boom")

    pipeline, letters = deps()
    await consume_batch(
        pipeline, [event(rfm(), offset=1), event(rfm(), offset=2)], topics.RFM_UPDATED, broken
    )  # type: ignore[list-item]
    assert letters.kinds == ["processing_error", "processing_error"]
    assert [record.offset for record, _, _ in letters.sent] == [1, 2]


async def test_a_rekeyed_event_naming_no_consumed_topic_is_dead_lettered() -> None:
    pipeline, letters = deps()
    raw = event(rfm(), topic=topics.REKEYED)
    raw.message.headers = [("source_topic", b"elsewhere")]
    await process_rekeyed(pipeline, [raw])  # type: ignore[list-item]
    [(record, kind, reason)] = letters.sent
    assert kind == "unknown_source" and "elsewhere" in reason and record.received_on == topics.REKEYED


def parked_row(*, exists: bool, expired: bool) -> tuple[Any, ...]:
    return (
        1, MERCHANT, CUSTOMER, topics.RFM_UPDATED, topics.REKEYED, 4, 40, KEY.encode(), b"v",
        [["trace_id", "dC0x"]], 1_700_000_000.0, 3, "2026-01-01 00:00:00", expired, exists,
    )  # fmt: skip


async def test_a_parked_event_whose_customer_now_exists_goes_back_to_its_owner() -> None:
    sent: list[tuple[str, list[tuple[str, bytes]]]] = []

    async def send(key: str, value: bytes | None, ts: float | None, headers: list[tuple[str, bytes]]) -> Any:
        sent.append((key, headers))
        return "ack"

    letters = FakeDeadLetters()
    assert await release(parked_row(exists=True, expired=True), letters, send) == ("applied", "ack")
    [(key, headers)] = sent
    assert key == KEY and headers == [("trace_id", b"t-1"), ("source_topic", topics.RFM_UPDATED.encode())]
    assert letters.sent == []


async def test_a_parked_event_past_its_expiry_is_dead_lettered_as_unknown_customer() -> None:
    letters = FakeDeadLetters()
    assert await release(parked_row(exists=False, expired=True), letters) == ("expired", None)
    [(record, kind, reason)] = letters.sent
    assert kind == "unknown_customer" and "after 3 retries" in reason
    assert (record.origin, record.received_on, record.partition, record.offset) == (
        topics.RFM_UPDATED, topics.REKEYED, 4, 40,
    )  # fmt: skip
    assert await release(parked_row(exists=False, expired=False), letters) == ("waiting", None)


async def test_the_sink_dead_letters_an_undecodable_changelog_record_through_the_shared_path() -> None:
    letters = FakeDeadLetters()
    settings = Settings()
    sink = PostgresSink(settings, SPECS, resources=lambda: None, dead_letters=letters)  # type: ignore[arg-type,return-value]
    topic = f"{settings.service_name}-customers-changelog"
    record = ConsumerRecord(
        topic, 2, 9, 1_700_000_000_999, 0, b"k", b"not json", None, 0, 0, [("trace_id", b"s")]
    )
    await sink.persist({TopicPartition(topic, 2): [record]})
    [(failed, kind, _)] = letters.sent
    assert kind == "sink_undecodable" and failed.headers == (("trace_id", b"s"),)
    assert (failed.origin, failed.partition, failed.offset, failed.timestamp_ms) == (
        topic,
        2,
        9,
        1_700_000_000_999,
    )


async def test_the_producer_sends_the_record_with_our_headers_then_the_producers() -> None:
    sent: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]] = []

    async def send(key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]) -> None:
        sent.append((key, value, headers))

    record = FailedRecord(
        "m:c", b"v", topics.RFM_UPDATED, 1, 2, headers=(("reason", b"theirs"),), timestamp_ms=5
    )
    await DeadLetterProducer(send).dead_letter(record, "invalid", "bad")
    [(key, value, headers)] = sent
    named = dict(headers)
    assert key == b"m:c" and value == b"v" and named["reason"] == b"bad"
    assert named["original.reason"] == b"theirs" and named["source_timestamp"] == b"5"
    assert named["received_on"] == topics.RFM_UPDATED.encode()
