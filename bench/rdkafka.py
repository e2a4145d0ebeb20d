"""The librdkafka producer (confluent-kafka) with its default `consistent_random` partitioner: CRC32 of
the key, what stock Go, .NET, node and Python-librdkafka producers do. For the repartition phase of
bench/ingest.py: about 11 in 12 of its records land off the key's murmur2 partition (D100)."""

from __future__ import annotations

import asyncio

from confluent_kafka import Producer


class CrcProducer:
    def __init__(self, bootstrap: str) -> None:
        self.producer = Producer(
            {"bootstrap.servers": bootstrap, "partitioner": "consistent_random", "linger.ms": 20}
        )
        self.errors: list[str] = []

    def send(self, topic: str, key: bytes, value: bytes) -> None:
        while True:
            try:
                self.producer.produce(topic, key=key, value=value, on_delivery=self._delivered)
                break
            except BufferError:  # the local queue is full: let deliveries drain it
                self.producer.poll(0.05)
        self.producer.poll(0)

    async def flush(self) -> None:
        remaining = await asyncio.to_thread(self.producer.flush, 120)
        if remaining or self.errors:
            raise RuntimeError(f"librdkafka: {remaining} records unsent, errors {self.errors[:3]}")

    def _delivered(self, error: object, _message: object) -> None:
        if error is not None:
            self.errors.append(str(error))
