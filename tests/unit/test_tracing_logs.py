"""While tracing, each JSON log line carries the current trace and span ids (with the SDK's
in-memory exporter standing in for OTLP)."""

from __future__ import annotations

import io
import json
import logging
import logging.config

from opentelemetry.instrumentation.logging import LoggingInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from core_app.logs import logging_config
from core_app.settings import Settings


def test_json_log_lines_carry_the_trace_id() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    config = logging_config(Settings(log_json=True))
    formatter = logging.config.DictConfigurator(config).configure_custom(
        dict(config["formatters"]["default"])
    )
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    logger = logging.getLogger("test.tracing")
    logger.addHandler(handler)
    LoggingInstrumentor().instrument(
        inject_trace_context=True, enable_log_auto_instrumentation=False, tracer_provider=provider
    )
    try:
        with provider.get_tracer("test").start_as_current_span("read") as span:
            logger.warning("inside")
        logger.warning("outside")
    finally:
        LoggingInstrumentor().uninstrument()
        logger.removeHandler(handler)
    inside, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    context = span.get_span_context()
    assert inside["trace_id"] == format(context.trace_id, "032x")
    assert inside["span_id"] == format(context.span_id, "016x")
    assert inside["service_name"] == "core"
    assert outside["trace_id"] == "0"  # no span: the instrumentation's "none"
    assert [s.name for s in exporter.get_finished_spans()] == ["read"]
