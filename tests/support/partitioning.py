"""Producers with different partitioners, and a check of every read surface against the expected state.

The librdkafka strategy is the real confluent-kafka client with `partitioner=consistent_random`
(CRC32 of the key), what a stock Go, .NET, node or Python-librdkafka producer does by default.
"""

from __future__ import annotations

import asyncio
import binascii
import random
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import aiohttp
from aiokafka import AIOKafkaProducer
from confluent_kafka import Producer as RdKafkaProducer
from grpclib.client import Channel

from core_app.events.codec import EventCodec
from core_app.routing import key_partition
from core_app.rpc.generated.core.v1 import core_pb2 as pb
from core_app.rpc.generated.core.v1.core_grpc import CoreServiceStub
from core_app.settings import DEV_INTERNAL_TOKEN, Settings
from tests.support.events import customer_rows
from tests.support.processes import WorkerProcess, eventually

STRATEGIES = ("murmur2", "crc32", "random", "wrong")
Event = tuple[str, dict[str, Any]]


def record_key(record: dict[str, Any]) -> bytes:
    return f"{record['merchant_id']}:{record['customer_id']}".encode()


class Producers:
    """One send per event by a named strategy; `crc32` goes through librdkafka itself."""

    def __init__(self, bootstrap: str, codec: EventCodec, partitions: int, seed: int = 14) -> None:
        self.bootstrap = bootstrap.removeprefix("kafka://")
        self.codec = codec
        self.partitions = partitions
        self.random = random.Random(seed)
        self.sent: Counter[str] = Counter()
        self.crc32_partitions: list[tuple[bytes, int]] = []  # (key, partition librdkafka chose)
        self.errors: list[str] = []

    async def __aenter__(self) -> Producers:
        self.aiokafka = AIOKafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=5)
        await self.aiokafka.start()
        self.rdkafka = RdKafkaProducer(
            {"bootstrap.servers": self.bootstrap, "partitioner": "consistent_random", "linger.ms": 5}
        )
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aiokafka.stop()

    async def send(self, events: list[Event], strategy_of: Callable[[int, Event], str]) -> None:
        futures = []
        for n, (topic, record) in enumerate(events):
            strategy = strategy_of(n, (topic, record))
            key, value = record_key(record), await self.codec.encode(topic, record)
            self.sent[strategy] += 1
            if strategy == "crc32":
                self.rdkafka.produce(topic, key=key, value=value, on_delivery=self._delivered)
                self.rdkafka.poll(0)
                continue
            own = key_partition(key.decode(), self.partitions)
            partition = {
                "murmur2": None,  # aiokafka's default partitioner: murmur2, as Java's
                "random": self.random.randrange(self.partitions),
                "wrong": (own + 1) % self.partitions,
            }[strategy]
            futures.append(await self.aiokafka.send(topic, key=key, value=value, partition=partition))
        await asyncio.gather(*futures)
        remaining = await asyncio.to_thread(self.rdkafka.flush, 30)
        assert remaining == 0 and not self.errors, f"librdkafka: {remaining} unsent, {self.errors[:3]}"

    def _delivered(self, error: Any, message: Any) -> None:
        if error is not None:
            self.errors.append(str(error))
        else:
            self.crc32_partitions.append((message.key(), message.partition()))

    def assert_crc32_routing(self) -> int:
        """librdkafka really used CRC32; returns how many of its records missed the murmur2 partition."""
        assert self.crc32_partitions, "no record went through librdkafka"
        for key, partition in self.crc32_partitions:
            assert partition == (binascii.crc32(key) & 0xFFFFFFFF) % self.partitions
        return sum(
            partition != key_partition(key.decode(), self.partitions)
            for key, partition in self.crc32_partitions
        )


def wanted(expected: dict[str, dict[str, Any]], customer_id: str) -> tuple[Any, Any]:
    want = expected[customer_id]
    return want["rfm"][1], want["points"][1]


def state_of(rfm_score: Any, metadata: Any) -> tuple[Any, Any]:
    return rfm_score or None, ((metadata or {}).get("points") or {}).get("balance")


async def rest_states(worker: WorkerProcess, merchant_id: str, customers: list[str]) -> dict[str, Any]:
    """customer -> (rfm, balance, version, source) from REST, and the table value by the internal route."""
    rest: dict[str, Any] = {}
    table: dict[str, Any] = {}
    gate = asyncio.Semaphore(16)
    headers = {"X-Internal-Token": DEV_INTERNAL_TOKEN}
    async with aiohttp.ClientSession() as http:

        async def one(customer_id: str) -> None:
            params = {"merchant_id": merchant_id, "customer_id": customer_id}
            async with gate:
                async with http.get(f"{worker.url}/core/v1/customers", params=params) as response:
                    body = await response.json() if response.status == 200 else {}
                rest[customer_id] = (
                    *state_of(body.get("rfm_score"), body.get("metadata")),
                    body.get("version"),
                    body.get("source"),
                )
                path = f"{worker.url}/internal/v1/customers/{merchant_id}/{customer_id}"
                async with http.get(path, headers=headers) as response:
                    body = await response.json() if response.status == 200 else {}
                table[customer_id] = (
                    *state_of(body.get("rfm_score"), body.get("metadata")),
                    body.get("version"),
                )

        await asyncio.gather(*(one(customer_id) for customer_id in customers))
    return {"rest": rest, "table": table}


async def grpc_states(worker: WorkerProcess, merchant_id: str, customers: list[str]) -> dict[str, Any]:
    from google.protobuf.json_format import MessageToDict

    channel = Channel("127.0.0.1", worker.grpc_port)
    stub = CoreServiceStub(channel)
    found: dict[str, Any] = {}
    gate = asyncio.Semaphore(16)

    async def one(customer_id: str) -> None:
        async with gate:
            reply = await stub.GetCustomer(
                pb.GetCustomerRequest(merchant_id=merchant_id, customer_id=customer_id)
            )
        score = reply.rfm_score
        rfm_score = {"recency": score.recency, "frequency": score.frequency, "monetary": score.monetary}
        rfm_score, balance = state_of(
            rfm_score if reply.HasField("rfm_score") else None, MessageToDict(reply.metadata)
        )
        found[customer_id] = (rfm_score, int(balance) if balance is not None else None, reply.version)

    try:
        await asyncio.gather(*(one(customer_id) for customer_id in customers))
    finally:
        channel.close()
    return found


GRAPHQL_PAGE = 40  # aliases per query, well under GRAPHQL_MAX_FIELDS


async def graphql_states(worker: WorkerProcess, merchant_id: str, customers: list[str]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    async with aiohttp.ClientSession() as http:
        for start in range(0, len(customers), GRAPHQL_PAGE):
            page = customers[start : start + GRAPHQL_PAGE]
            fields = " ".join(
                f'c{n}: getCustomer(merchant_id: $m, customer_id: "{cid}") {{ rfm_score metadata }}'
                for n, cid in enumerate(page)
            )
            query = {"query": f"query($m: ID!) {{ {fields} }}", "variables": {"m": merchant_id}}
            async with http.post(f"{worker.url}/graphql", json=query) as response:
                data = (await response.json()).get("data") or {}
            for n, customer_id in enumerate(page):
                answer = data.get(f"c{n}") or {}
                found[customer_id] = state_of(answer.get("rfm_score"), answer.get("metadata"))
    return found


async def mismatches(
    worker: WorkerProcess, settings: Settings, merchant_id: str, expected: dict[str, dict[str, Any]]
) -> Counter[str]:
    """Per surface, how many customers differ from the expected state (or from the table's version)."""
    customers = sorted(expected)
    reads = await rest_states(worker, merchant_id, customers)
    grpc = await grpc_states(worker, merchant_id, customers)
    graphql = await graphql_states(worker, merchant_id, customers)
    rows = customer_rows(settings, merchant_id)
    counts: Counter[str] = Counter(
        {surface: 0 for surface in ("rest", "table", "grpc", "graphql", "postgres")}
    )
    for customer_id in customers:
        want = wanted(expected, customer_id)
        table = reads["table"][customer_id]
        version = table[2]
        row = rows[customer_id]
        checks = {
            "table": table[:2] == want and version is not None,
            "rest": reads["rest"][customer_id] == (*want, version, "table"),
            "grpc": grpc[customer_id] == (*want, version),
            "graphql": graphql[customer_id] == want,
            "postgres": (*state_of(row["rfm_score"], row["metadata"]), row["version"]) == (*want, version),
        }
        counts.update(surface for surface, ok in checks.items() if not ok)
    return counts


async def wait_for_agreement(
    worker: WorkerProcess, settings: Settings, merchant_id: str, expected: dict[str, dict[str, Any]]
) -> Counter[str]:
    """Mismatch counts once they are all 0 (printed), or the last counts in the failure.

    PostgreSQL is polled first (one query): the full check reads every key over three transports.
    """
    started = time.monotonic()

    async def postgres_done() -> bool:
        rows = customer_rows(settings, merchant_id)
        want = {cid: wanted(expected, cid) for cid in expected}
        return all(state_of(rows[cid]["rfm_score"], rows[cid]["metadata"]) == want[cid] for cid in expected)

    await eventually(postgres_done, timeout=120, interval=0.5)
    print(f"PostgreSQL at the expected state after {time.monotonic() - started:.1f}s")
    last: list[Counter[str]] = []

    async def agreed() -> bool:
        counts = await mismatches(worker, settings, merchant_id, expected)
        last[:] = [counts]
        return not any(counts.values())

    try:
        await eventually(agreed, timeout=120, interval=1)
    finally:
        if last:
            print(f"mismatches out of {len(expected)} keys: {dict(last[0])}")
    return last[0]
