"""Import metrics. `core_imports_initiated_total` is the plan's name."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from core_app.domain.customer_import import SOURCES

imports_initiated = Counter("core_imports_initiated_total", "Imports initiated", ["source"])
imports_finished = Counter("core_imports_finished_total", "Imports that ended", ["source", "status"])
import_duration = Histogram(
    "core_import_duration_seconds",
    "Time from the start of an import run to its end",
    ["source", "status"],
    buckets=(1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600),
)
import_rows_processed = Counter(
    "core_import_rows_processed_total", "Data rows read from import files", ["source"]
)
import_rows_failed = Counter("core_import_rows_failed_total", "Import rows refused (row errors)", ["source"])
import_customers = Counter(
    "core_import_customers_total", "Customers created or updated by imports", ["source", "outcome"]
)
import_retries = Counter("core_import_retries_total", "Transient import failures retried", ["stage"])

# Every source's failed/completed series exists at 0 from the start: Prometheus's increase() cannot
# see a counter's first increments if the series only appears after them, and the import-failure
# alerts (deploy/prometheus/rules) would then miss the first failures after a restart.
for _source in SOURCES:
    for _status in ("completed", "failed"):
        imports_finished.labels(_source, _status)
