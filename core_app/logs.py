"""Structured JSON logs (python-json-logger), tagged with the service name, the trace while tracing,
and the merchant, shop and locale of the request or event (core_app/log_context.py)."""

from __future__ import annotations

import logging.config
from typing import Any

from core_app.settings import Settings


def logging_config(settings: Settings) -> dict[str, Any]:
    formatter: dict[str, Any] = (
        {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {
                "asctime": "ts",
                "levelname": "level",
                "name": "logger",
                # Set on each record while tracing (core_app/tracing.py).
                "otelTraceID": "trace_id",
                "otelSpanID": "span_id",
            },
            "static_fields": {"service_name": settings.service_name},
        }
        if settings.log_json
        else {"format": "%(asctime)s %(levelname)-7s %(name)s: %(message)s"}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        # merchant_id, shop_domain and locale of the request or event (core_app/log_context.py)
        "filters": {"context": {"()": "core_app.log_context.ContextFilter"}},
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "default", "filters": ["context"]}
        },
        "root": {"level": settings.log_level, "handlers": ["stderr"]},
        "loggers": {
            "aiokafka": {"level": "WARNING"},
            "faust": {"level": "WARNING" if settings.log_level != "DEBUG" else "DEBUG"},
            "mode": {"level": "WARNING" if settings.log_level != "DEBUG" else "DEBUG"},
        },
    }


def configure_logging(settings: Settings) -> None:
    logging.config.dictConfig(logging_config(settings))


def one_line(reason: BaseException) -> str:
    """An exception as the one-line reason a fatal exit logs last: `Type: message`, whitespace folded."""
    text = " ".join(str(reason).split())
    return f"{type(reason).__name__}: {text}"[:500]
