"""Log lines as the service writes them: its JSON formatter and its context filter (core_app/logs.py)."""

from __future__ import annotations

import io
import json
import logging
import logging.config
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from core_app.logs import logging_config
from core_app.settings import Settings


@contextmanager
def json_log_lines(logger_name: str) -> Iterator[list[dict[str, Any]]]:
    """The lines `logger_name` writes inside the block, decoded, in the list yielded (filled on exit)."""
    config = logging_config(Settings(log_json=True))
    configurator = logging.config.DictConfigurator(config)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(configurator.configure_custom(dict(config["formatters"]["default"])))
    handler.addFilter(configurator.configure_custom(dict(config["filters"]["context"])))
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    lines: list[dict[str, Any]] = []
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        lines.extend(json.loads(line) for line in stream.getvalue().splitlines())
