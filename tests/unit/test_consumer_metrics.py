"""The scrape-time consumer gauges (core_app/consumer_metrics.py): readiness follows the worker's
components, and a scrape never raises, whatever state the worker is in."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from core_app.consumer_metrics import ConsumerCollector


def ready_value(app: Any) -> float:
    families = {family.name: family for family in ConsumerCollector(app).collect()}
    return float(families["core_worker_ready"].samples[0].value)


def components(open_: bool, migrations: bool = True, tables: bool = True) -> SimpleNamespace:
    runtime = SimpleNamespace(migrations_applied=migrations, tables_recovered=tables)
    return SimpleNamespace(is_open=open_, runtime=runtime)


def test_ready_is_zero_before_the_components_exist_or_open() -> None:
    assert ready_value(SimpleNamespace()) == 0.0
    assert ready_value(SimpleNamespace(components=components(open_=False))) == 0.0


def test_ready_needs_migrations_and_recovered_tables() -> None:
    assert ready_value(SimpleNamespace(components=components(True))) == 1.0
    assert ready_value(SimpleNamespace(components=components(True, migrations=False))) == 0.0
    assert ready_value(SimpleNamespace(components=components(True, tables=False))) == 0.0
