"""OpenTelemetry traces, exported over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set.

Spans come from the instrumentation libraries, so no view or service changes: a span per HTTP
request served (aiohttp server), per call to another worker (aiohttp client: the owner hop, which
carries W3C `traceparent`, so the owner's server span joins the caller's trace), per PostgreSQL
statement (aiopg), per Redis command and per Kafka record sent (aiokafka: the producer span joins the
current trace and writes `traceparent` into the record's headers; the Faust agents do not continue it
yet, docs/decisions.md D148). Log records get the current trace and span ids
(`trace_id`, `span_id` in the JSON lines, core_app/logs.py).
"""

from __future__ import annotations

import logging

from core_app.settings import Settings

log = logging.getLogger(__name__)

_provider: object | None = None


def configure_tracing(settings: Settings) -> bool:
    """Before the web app is built (the server instrumentation wraps web.Application)."""
    global _provider
    endpoint = settings.otel_exporter_otlp_endpoint.rstrip("/")
    if not endpoint or _provider is not None:
        return _provider is not None
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
    from opentelemetry.instrumentation.aiohttp_server import AioHttpServerInstrumentor
    from opentelemetry.instrumentation.aiokafka import AIOKafkaInstrumentor
    from opentelemetry.instrumentation.aiopg import AiopgInstrumentor
    from opentelemetry.instrumentation.logging import LoggingInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": "core", "service.instance.id": settings.worker_id})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces")))
    trace.set_tracer_provider(provider)
    AioHttpServerInstrumentor().instrument()
    AioHttpClientInstrumentor().instrument()
    AiopgInstrumentor().instrument()
    RedisInstrumentor().instrument()
    AIOKafkaInstrumentor().instrument()  # traceparent into produced records' headers, consume spans
    LoggingInstrumentor().instrument(inject_trace_context=True, enable_log_auto_instrumentation=False)
    _provider = provider
    log.info("tracing to %s", endpoint)
    return True


def shutdown_tracing() -> None:
    """Export what is buffered (on worker stop)."""
    global _provider
    if _provider is not None:
        provider, _provider = _provider, None
        provider.shutdown()  # type: ignore[attr-defined]
