"""Prometheus metrics of GDPR requests (docs/decisions.md D160). The gauges come from PostgreSQL,
so every worker reports the same figures for the whole set (alerts take `max`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from core_app.domain.gdpr import KINDS, SOURCES

requests_received = Counter(
    "core_gdpr_requests_received_total", "GDPR requests recorded, by kind and source", ["kind", "source"]
)
requests_done = Counter("core_gdpr_requests_done_total", "GDPR requests completed, by kind", ["kind"])
requests_failed = Counter(
    "core_gdpr_requests_failed_total",
    "GDPR requests that failed every attempt and were reported (dead-lettered, left open), by kind",
    ["kind"],
)
request_retries = Counter(
    "core_gdpr_request_retries_total", "Failed attempts at a GDPR request that were retried", ["kind"]
)
requests_open = Gauge("core_gdpr_requests_open", "GDPR requests not done yet (all workers)")
requests_overdue = Gauge(
    "core_gdpr_requests_overdue", "GDPR requests not done 30 days after they arrived (all workers)"
)
oldest_open_age = Gauge(
    "core_gdpr_request_oldest_open_age_seconds",
    "Age of the oldest GDPR request not done yet, 0 when none is open (all workers)",
)

for _kind in KINDS:  # every series on /metrics from the start, at 0
    requests_done.labels(_kind)
    requests_failed.labels(_kind)
    request_retries.labels(_kind)
    for _source in SOURCES:
        requests_received.labels(_kind, _source)
