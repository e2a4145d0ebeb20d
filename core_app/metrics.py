"""Prometheus metrics, under the plan's names where the plan names them."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

customers_created = Counter("core_customers_created_total", "Customers created, by merchant", ["merchant_id"])
events_processed = Counter("core_events_processed_total", "Consumed events applied", ["topic"])
events_skipped = Counter(
    "core_events_skipped_total",
    "Consumed events that changed nothing (stale, replayed, or the customer is redacted)",
    ["topic", "reason"],
)
events_rekeyed = Counter(
    "core_events_rekeyed_total", "Consumed events re-keyed to {merchant_id}:{customer_id}", ["topic"]
)
events_failed = Counter("core_events_failed_total", "Consumed events that could not be applied", ["topic"])
dead_letters = Counter("core_dead_letters_total", "Events sent to the dead-letter topic", ["topic", "kind"])
reads = Counter("core_customer_reads_total", "Customer reads by the source that answered", ["source"])
dependency_up = Gauge(
    "core_dependency_up", "1 when the last health probe reached the dependency", ["dependency"]
)
rfm_reads = Counter("core_rfm_reads_total", "RFM score reads", ["source"])
cache_errors = Counter("core_cache_errors_total", "Redis cache reads or writes that failed", ["operation"])
owner_read_errors = Counter(
    "core_owner_read_errors_total", "Reads routed to the owner worker that failed and fell back", ["reason"]
)
