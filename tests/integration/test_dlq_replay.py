"""`core dlq replay` against a Tansu of its own: the selected dead letters go back to their source
topic byte for byte, the others stay, and `--dry-run` sends nothing."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from agents.dead_letter import dead_letter_headers
from core_app.ops.dlq import Replay, replay_dead_letters
from core_app.settings import Settings
from core_app.topics import DEAD_LETTER, POINTS_UPDATED, RFM_UPDATED
from tests.helpers import running_tansu
from tests.integration.events import read_topic

# (source topic, error kind, key, value): values are arbitrary bytes, as Avro payloads are.
LETTERS = [
    (RFM_UPDATED, "undecodable", b"m:c1", b"\x00\x00\x00\x00\x07\xff\xfe not utf-8"),
    (RFM_UPDATED, "invalid", b"m:c2", b"\x00\x00\x00\x00\x07\x02\x04"),
    (POINTS_UPDATED, "undecodable", b"m:c3", b"\x00garbage"),
    (RFM_UPDATED, "undecodable", b"m:c4", b"\x00\x01\x02"),
]


@pytest.fixture(scope="module")
def dlq_broker(data_root: Path) -> Iterator[str]:
    with running_tansu(data_root / "tansu-dlq.log") as url:
        yield url


async def dead_letters(bootstrap: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        topics = [NewTopic(DEAD_LETTER, 2, 1), NewTopic(RFM_UPDATED, 2, 1), NewTopic(POINTS_UPDATED, 2, 1)]
        await admin.create_topics(topics)
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for i, (topic, kind, key, value) in enumerate(LETTERS):
            headers = dead_letter_headers(topic, 0, 100 + i, kind, f"test {kind}")
            await producer.send_and_wait(DEAD_LETTER, value, key=key, headers=headers, partition=i % 2)
    finally:
        await producer.stop()


async def replay(broker: str, *args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "core_app", "dlq", "replay", *args,
        env=os.environ | {"KAFKA_BROKER": broker, "CORE_ENV": "test"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, out.decode()
    return out.decode()


async def test_replay_sends_the_selected_dead_letters_back_unchanged(dlq_broker: str) -> None:
    bootstrap = dlq_broker.removeprefix("kafka://")
    await dead_letters(bootstrap)

    in_process = Settings(kafka_broker=dlq_broker)  # the function the CLI runs, without a new interpreter
    assert await replay_dead_letters(in_process, Replay(RFM_UPDATED, dry_run=True)) == (4, 3)

    out = await replay(dlq_broker, "--source-topic", RFM_UPDATED, "--kind", "undecodable")
    assert "read 4 dead letters; replayed 2 to rfm.updated" in out, out
    records = await read_topic(dlq_broker, RFM_UPDATED, lambda r: True, 2, timeout=20)
    expected = {
        (key, value) for topic, kind, key, value in LETTERS if topic == RFM_UPDATED and kind == "undecodable"
    }
    assert {(r.key, r.value) for r in records} == expected
    assert all(dict(r.headers)["replayed_from"].startswith(b"core.dlq:") for r in records)
    await asyncio.sleep(1)  # nothing else arrives: the dry run sent nothing, points.updated stayed put
    assert len(await read_topic(dlq_broker, RFM_UPDATED, lambda r: True, 2, timeout=5)) == 2
    assert await replay_dead_letters(in_process, Replay(POINTS_UPDATED, from_offset=5)) == (0, 0)
