"""End offsets on Tansu, and table recovery over changelog batches of 1, 3 and 500 records.

Tansu 0.6.0 answers ListOffsets "latest" with the last batch's base offset + 1. The first test pins
that: if it starts failing, Tansu reports true ends now, and core_app/end_offsets.py (D110) can be
revisited. The probe must find the true end either way.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import aiohttp
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from core_app.end_offsets import EndOffsetProbe, confirm_end_offsets
from core_app.events.codec import EventCodec
from core_app.settings import Settings
from tests.support.events import at, insert_customers, new_merchant, produce, rfm
from tests.support.processes import eventually, metric, running_tansu, start_worker, stop_process, wait_ready


async def test_tansu_under_reports_end_offsets_and_the_probe_finds_the_true_end() -> None:
    with running_tansu() as url:
        bootstrap = url.removeprefix("kafka://")
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        await admin.create_topics([NewTopic("batches", 1, 1)])
        await admin.close()
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=50)
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="none")
        await producer.start()
        await consumer.start()
        tp = TopicPartition("batches", 0)
        try:
            for size in (1, 3, 500):
                futures = [await producer.send("batches", b"v", key=b"k", partition=0) for _ in range(size)]
                await producer.flush()
                offsets = [(await future).offset for future in futures]
                reported = (await consumer.end_offsets([tp]))[tp]
                true_end = offsets[-1] + 1
                assert reported == offsets[0] + 1, (
                    f"Tansu reported {reported} after a {size}-record batch at {offsets[0]}: it no longer "
                    "reports the last batch's base + 1; revisit D110"
                )
                confirmed = await confirm_end_offsets(consumer, {tp: reported})
                assert confirmed[tp] == true_end, (
                    f"batch of {size}: probe found {confirmed[tp]}, want {true_end}"
                )
            # The watchdog's way in (D226): ListOffsets and the confirming fetch in one call.
            probe = EndOffsetProbe({"bootstrap_servers": bootstrap}, client_id="test-watchdog")
            try:
                assert await probe.end_offsets([tp]) == {tp: true_end}
            finally:
                await probe.close()
        finally:
            await consumer.stop()
            await producer.stop()


async def read(url: str, merchant_id: str, customer_id: str) -> dict:
    params = {"merchant_id": merchant_id, "customer_id": customer_id}
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{url}/core/v1/customers", params=params) as response,
    ):
        assert response.status == 200, await response.text()
        return await response.json()


@pytest.mark.slow
async def test_recovery_over_changelog_batches_of_1_3_and_500(
    worker_env: dict[str, str], settings: Settings, codec: EventCodec, data_root: Path
) -> None:
    merchant_id = new_merchant(settings)
    customers = [cid for cid, _ in insert_customers(settings, merchant_id, 504)]
    with running_tansu() as url:
        env = worker_env | {
            "KAFKA_BROKER": url,
            "KAFKA_TOPIC_PARTITIONS": "1",  # one changelog partition: the batches are the sizes sent
            "DATA_DIR": str(data_root / "end-offsets-data"),
        }
        producer = AIOKafkaProducer(bootstrap_servers=url.removeprefix("kafka://"), linger_ms=20)
        await producer.start()
        worker = start_worker("worker-end-offsets", env)
        try:
            await wait_ready(worker)
            sent = 0
            for chunk in (customers[:1], customers[1:4], customers[4:504]):
                await produce(producer, codec, [rfm(merchant_id, c, (5, 4, 3), at(1)) for c in chunk])
                sent += len(chunk)

                async def applied(target: int = sent) -> bool:
                    return await metric(worker, "core_events_processed_total") >= target

                await eventually(applied, timeout=60)
            for how in (signal.SIGTERM, signal.SIGKILL):  # local state kept, then rebuilt from scratch
                if how == signal.SIGTERM:
                    stop_process(worker.process)
                else:
                    worker.process.send_signal(how)
                    worker.process.wait(10)
                worker = start_worker("worker-end-offsets", env)
                await wait_ready(worker)
                answers = await asyncio.gather(*(read(worker.url, merchant_id, c) for c in customers))
                wrong = [
                    a
                    for a in answers
                    if (a["source"], a["version"], a["rfm_score"]["recency"]) != ("table", 1, 5)
                ]
                assert not wrong, (
                    f"after {how.name}: {len(wrong)} of {len(customers)} wrong, e.g. {wrong[:2]}"
                )
                assert await metric(worker, "core_recovery_highwaters_corrected_total") > 0
        finally:
            stop_process(worker.process)
            await producer.stop()
