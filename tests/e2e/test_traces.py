"""OpenTelemetry across workers: a REST read routed to the owner worker is one trace, with the
caller's server span, its client span for the hop and the owner's server span, exported over OTLP
(to a fake collector speaking OTLP/HTTP protobuf) by two real workers on a Tansu of their own; a
REST write's command record carries the request's trace in its `traceparent` header, and the owner
agent's span applying it continues that trace; a gRPC call continues its `traceparent` metadata; a
batch of events from several producers' traces links to each (D148)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from aiokafka import AIOKafkaProducer, ConsumerRecord
from grpclib.client import Channel

from core_app.events.codec import EventCodec
from core_app.rpc.generated.core.v1 import core_pb2 as pb
from core_app.rpc.generated.core.v1.core_grpc import CoreServiceStub
from core_app.settings import Settings
from core_app.topics import CUSTOMER_COMMANDS, RFM_UPDATED
from tests.support.events import at, new_merchant, read_topic, rfm
from tests.support.ops_fakes import FakeOtlpCollector
from tests.support.processes import (
    WorkerProcess,
    eventually,
    running_tansu,
    start_worker,
    stop_process,
    wait_ready,
)

SERVER, CLIENT, PRODUCER, CONSUMER = 2, 3, 4, 5  # opentelemetry.proto.trace.v1.Span.SpanKind


@pytest.fixture(scope="module")
def trace_tansu(data_root: Path) -> Iterator[str]:
    with running_tansu(data_root / "tansu-traces.log") as url:
        yield url


@pytest.fixture(scope="module")
async def collector() -> AsyncIterator[FakeOtlpCollector]:
    server = FakeOtlpCollector()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(scope="module")
async def traced_pair(
    worker_env: dict[str, str], trace_tansu: str, collector: FakeOtlpCollector, data_root: Path
) -> AsyncIterator[tuple[WorkerProcess, WorkerProcess]]:
    env = worker_env | {
        "KAFKA_BROKER": trace_tansu,
        "SERVICE_NAME": "core-trace-test",
        "DATA_DIR": str(data_root / "trace-data"),
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
        "OTEL_BSP_SCHEDULE_DELAY": "200",  # export every 0.2 s, not 5 s
    }
    first, second = start_worker("worker-trace-a", env), start_worker("worker-trace-b", env)
    try:
        await asyncio.gather(wait_ready(first), wait_ready(second))
        yield first, second
    finally:
        stop_process(second.process)
        stop_process(first.process)


async def read(worker: WorkerProcess, merchant_id: str, customer_id: str, traceparent: str) -> dict:
    params = {"merchant_id": merchant_id, "customer_id": customer_id}
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{worker.url}/core/v1/customers", params=params, headers={"traceparent": traceparent}) as r,
    ):
        assert r.status == 200, await r.text()
        return await r.json()


async def test_a_routed_read_is_one_trace_across_both_workers(
    traced_pair: tuple[WorkerProcess, WorkerProcess],
    settings: Settings,
    collector: FakeOtlpCollector,
    trace_tansu: str,
) -> None:
    first, second = traced_pair
    merchant_id = new_merchant(settings)
    created = []
    write_trace = os.urandom(16).hex()
    async with aiohttp.ClientSession() as http:
        for n in range(8):  # enough keys that each worker owns some
            body = {"merchant_id": merchant_id, "email": f"trace{n}@example.com"}
            headers = {"traceparent": f"00-{write_trace}-{os.urandom(8).hex()}-01"}
            async with http.post(f"{first.url}/core/v1/customers", json=body, headers=headers) as response:
                assert response.status == 201, await response.text()
                created.append((await response.json())["id"])

    async def routed_read() -> tuple[str, WorkerProcess] | None:
        for customer_id in created:
            for reader in (first, second):
                trace_id = os.urandom(16).hex()
                body = await read(reader, merchant_id, customer_id, f"00-{trace_id}-{os.urandom(8).hex()}-01")
                if body["source"] == "owner":
                    return trace_id, reader
        return None

    trace_id, reader = await eventually(routed_read, timeout=60, interval=1)
    owner = second if reader is first else first

    async def exported() -> list[tuple[str, int, str]]:
        spans = [(name, kind, who) for t, name, kind, who in collector.spans if t == trace_id]
        who_kinds = {(kind, who) for _, kind, who in spans}
        wanted = {(SERVER, reader.name), (CLIENT, reader.name), (SERVER, owner.name)}
        return spans if wanted <= who_kinds else []

    spans = await eventually(exported, timeout=30, interval=0.5)
    owner_paths = [name for name, kind, who in spans if who == owner.name and kind == SERVER]
    assert any("/internal/" in name for name in owner_paths), spans

    # The writes went to the owner through Kafka: the command's producer span is in the request's
    # trace, and the record carries that trace in its `traceparent` header.
    async def sent_in_trace() -> bool:
        kinds = {kind for t, _, kind, _ in collector.spans if t == write_trace}
        return {SERVER, PRODUCER} <= kinds

    await eventually(sent_in_trace, timeout=30, interval=0.5)
    commands = [name for t, name, kind, _ in collector.spans if t == write_trace and kind == PRODUCER]
    topic = commands[0].removesuffix(" send")

    def carries_trace(record: ConsumerRecord) -> bool:
        return write_trace.encode() in dict(record.headers or ()).get("traceparent", b"")

    assert await read_topic(trace_tansu, topic, carries_trace, 8, timeout=30)


def new_traceparent() -> tuple[str, str]:
    trace_id = os.urandom(16).hex()
    return trace_id, f"00-{trace_id}-{os.urandom(8).hex()}-01"


async def test_grpc_calls_commands_and_event_batches_carry_the_trace(
    traced_pair: tuple[WorkerProcess, WorkerProcess],
    settings: Settings,
    collector: FakeOtlpCollector,
    trace_tansu: str,
    codec: EventCodec,
) -> None:
    first, _ = traced_pair
    merchant_id = new_merchant(settings)
    write_trace, write_parent = new_traceparent()
    created = []
    async with aiohttp.ClientSession() as http:
        for n in range(2):
            body = {"merchant_id": merchant_id, "email": f"span{n}@example.com"}
            headers = {"traceparent": write_parent}
            async with http.post(f"{first.url}/core/v1/customers", json=body, headers=headers) as response:
                assert response.status == 201, await response.text()
                created.append((await response.json())["id"])

    def spans_of(trace_id: str, kind: int) -> list[tuple[str, str]]:
        return [(name, who) for t, name, k, who in collector.spans if t == trace_id and k == kind]

    # The owner's agent applied each command inside the request's trace.
    async def commands_applied() -> bool:
        return any(name == f"{CUSTOMER_COMMANDS} process" for name, _ in spans_of(write_trace, CONSUMER))

    await eventually(commands_applied, timeout=30, interval=0.5)

    grpc_trace, grpc_parent = new_traceparent()
    async with Channel("127.0.0.1", first.grpc_port) as channel:
        request = pb.GetCustomerRequest(merchant_id=merchant_id, customer_id=created[0])
        await CoreServiceStub(channel).GetCustomer(request, metadata={"traceparent": grpc_parent})

    async def grpc_served() -> bool:
        return ("core.v1.CoreService/GetCustomer", first.name) in spans_of(grpc_trace, SERVER)

    await eventually(grpc_served, timeout=30, interval=0.5)

    # Events from two producers' traces: each is continued (a batch of its trace alone) or linked.
    event_traces = [new_traceparent() for _ in created]
    producer = AIOKafkaProducer(bootstrap_servers=trace_tansu.removeprefix("kafka://"))
    await producer.start()
    try:
        for (_, parent), customer_id in zip(event_traces, created, strict=True):
            value = await codec.encode(RFM_UPDATED, rfm(merchant_id, customer_id, (3, 4, 5), at(1))[1])
            key = f"{merchant_id}:{customer_id}".encode()
            await producer.send_and_wait(
                RFM_UPDATED, value, key=key, headers=[("traceparent", parent.encode())]
            )
    finally:
        await producer.stop()

    def applied_in(trace_id: str) -> bool:
        name = f"{RFM_UPDATED} process"
        return any(
            span[1] == name and span[2] == CONSUMER and (span[0] == trace_id or trace_id in links)
            for span in collector.spans
            for links in [collector.links.get(span, set())]
        )

    async def events_applied() -> bool:
        return all(applied_in(trace_id) for trace_id, _ in event_traces)

    await eventually(events_applied, timeout=30, interval=0.5)
