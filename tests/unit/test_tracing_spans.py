"""Our own spans (D148), with the SDK's in-memory exporter: a batch an agent applies continues its
producers' trace when they share one and links to each otherwise; a gRPC call gets a server span that
continues the caller's `traceparent` metadata (an in-process grpclib server, no network service)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from grpclib.client import Channel
from grpclib.health.service import Health
from grpclib.health.v1.health_grpc import HealthStub
from grpclib.health.v1.health_pb2 import HealthCheckRequest
from grpclib.server import Server
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from core_app import tracing


@pytest.fixture
def exporter() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    yield provider, spans
    provider.shutdown()


def traceparent() -> tuple[str, str, str]:
    trace_id, span_id = os.urandom(16).hex(), os.urandom(8).hex()
    return f"00-{trace_id}-{span_id}-01", trace_id, span_id


def only_span(spans: InMemorySpanExporter) -> ReadableSpan:
    (span,) = spans.get_finished_spans()
    return span


def test_without_tracing_a_batch_makes_no_span() -> None:
    assert tracing.enabled() is False
    with tracing.batch_span("rfm.updated", [{"traceparent": traceparent()[0].encode()}]):
        pass  # a null context: nothing to export, nothing parsed


def test_a_batch_of_one_trace_continues_it(exporter: tuple[TracerProvider, InMemorySpanExporter]) -> None:
    provider, spans = exporter
    header, trace_id, span_id = traceparent()
    other_span = f"00-{trace_id}-{os.urandom(8).hex()}-01"
    headers = [{"traceparent": header.encode()}, [("traceparent", other_span.encode())], {}, None]
    with tracing.batch_span("core.customer.commands", headers, provider=provider):
        pass
    span = only_span(spans)
    assert format(span.context.trace_id, "032x") == trace_id
    assert span.parent is not None and format(span.parent.span_id, "016x") == span_id
    assert span.kind == SpanKind.CONSUMER and span.name == "core.customer.commands process"
    assert not span.links
    assert span.attributes["messaging.batch.message_count"] == 4
    assert span.attributes["core.batch.traced_records"] == 2


def test_a_batch_of_several_traces_links_each(exporter: tuple[TracerProvider, InMemorySpanExporter]) -> None:
    provider, spans = exporter
    sent = [traceparent() for _ in range(3)]
    headers = [{"traceparent": header.encode()} for header, _, _ in sent]
    headers.append({"traceparent": b"00-not-a-trace"})  # ignored, not an error
    with tracing.batch_span("rfm.updated", headers, provider=provider):
        pass
    span = only_span(spans)
    assert span.parent is None
    assert format(span.context.trace_id, "032x") not in {trace_id for _, trace_id, _ in sent}
    linked = {
        (format(link.context.trace_id, "032x"), format(link.context.span_id, "016x")) for link in span.links
    }
    assert linked == {(trace_id, span_id) for _, trace_id, span_id in sent}


def test_links_are_capped(exporter: tuple[TracerProvider, InMemorySpanExporter]) -> None:
    provider, spans = exporter
    headers = [{"traceparent": traceparent()[0].encode()} for _ in range(tracing.MAX_LINKS + 10)]
    with tracing.batch_span("points.updated", headers, provider=provider):
        pass
    span = only_span(spans)
    assert len(span.links) == tracing.MAX_LINKS
    assert span.attributes["core.batch.traced_records"] == tracing.MAX_LINKS + 10


async def test_a_grpc_call_gets_a_server_span_in_the_callers_trace(
    exporter: tuple[TracerProvider, InMemorySpanExporter], monkeypatch: pytest.MonkeyPatch
) -> None:
    provider, spans = exporter
    monkeypatch.setattr(tracing, "_provider", provider)
    server = Server([Health()])
    tracing.instrument_grpc(server)
    await server.start("127.0.0.1", 0)
    port = server._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    header, trace_id, span_id = traceparent()
    try:
        async with Channel("127.0.0.1", port) as channel:
            stub = HealthStub(channel)
            await stub.Check(HealthCheckRequest(), metadata={"traceparent": header})
            await stub.Check(HealthCheckRequest())  # no caller trace: a root span
    finally:
        server.close()
        await server.wait_closed()
    continued, root = spans.get_finished_spans()
    assert continued.name == "grpc.health.v1.Health/Check" and continued.kind == SpanKind.SERVER
    assert format(continued.context.trace_id, "032x") == trace_id
    assert continued.parent is not None and format(continued.parent.span_id, "016x") == span_id
    assert continued.attributes["rpc.method"] == "Check" and continued.attributes["rpc.grpc.status_code"] == 0
    assert continued.status.status_code == StatusCode.UNSET
    assert root.parent is None and format(root.context.trace_id, "032x") != trace_id
