"""While tracing, each JSON log line carries the current trace and span ids (with the SDK's
in-memory exporter standing in for OTLP); each carries the merchant, shop and locale bound for the
request or event it belongs to (D149)."""

from __future__ import annotations

import io
import json
import logging
import logging.config

import pytest
from opentelemetry.instrumentation.logging import LoggingInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from core_app import log_context
from core_app.logs import logging_config
from core_app.settings import Settings
from tests.support.logs import json_log_lines


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


def test_log_lines_carry_the_merchant_shop_and_locale_bound_for_them() -> None:
    logger = logging.getLogger("test.log_context")
    with json_log_lines("test.log_context") as lines:
        logger.warning("before")
        outer = log_context.bind(locale=log_context.locale_of("fr-CA,fr;q=0.8,en;q=0.5"))
        inner = log_context.bind(merchant_id="m-1", shop_domain="ana.myshopify.com")
        logger.warning("inside")
        logger.warning("explicit", extra={"merchant_id": "m-2"})  # the call's own field wins
        log_context.unbind(inner)
        logger.warning("locale only")
        log_context.unbind(outer)
        logger.warning("after")

    before, inside, explicit, locale_only, after = lines
    assert {"merchant_id", "shop_domain", "locale"}.isdisjoint(before) and after.keys() == before.keys()
    assert (inside["merchant_id"], inside["shop_domain"], inside["locale"]) == (
        "m-1",
        "ana.myshopify.com",
        "fr",
    )
    assert inside["service_name"] == "core"
    assert explicit["merchant_id"] == "m-2" and explicit["shop_domain"] == "ana.myshopify.com"
    assert locale_only["locale"] == "fr" and "merchant_id" not in locale_only


@pytest.mark.parametrize(
    ("header", "locale"),
    [
        ("ar", "ar"),
        ("zh-cn, en;q=0.1", "zh-CN"),
        ("en-GB", "en"),
        ("xx-YY, he;q=0.3", "he"),
        ("klingon", None),
        ("", None),
        (None, None),
        ("<script>alert(1)</script>", None),  # never logged as sent
    ],
)
def test_only_supported_locales_are_logged(header: str | None, locale: str | None) -> None:
    assert log_context.locale_of(header) == locale
