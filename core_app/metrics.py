"""Prometheus metrics, under the plan's names where the plan names them."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from core_app.tallies import TalliedCounter, TalliedHistogram

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
events_repartitioned = Counter(
    "core_events_repartitioned_total",
    "Consumed events that arrived on another partition than their key's and were forwarded to it",
    ["topic"],
)
events_parked = Counter(
    "core_events_parked_total", "Consumed events parked because their customer does not exist yet", ["topic"]
)
parked_released = Counter(
    "core_parked_released_total",
    "Parked events that left the parking table: applied (the customer exists) or expired (to the DLQ)",
    ["topic", "outcome"],
)
parked_events = Gauge("core_parked_events", "Events parked for customers that do not exist yet (all workers)")
events_failed = Counter("core_events_failed_total", "Consumed events that could not be applied", ["topic"])
writer_waits = Counter(
    "core_record_writer_wait_seconds_total",
    "Seconds the agents waited for the record writer (table changelogs, customer.updated) to catch up",
)
ingest_chunks = Counter(
    "core_ingest_chunks_total", "Chunks of consumed records handed to a batch handler (D234)", ["topic"]
)
dead_letters = Counter("core_dead_letters_total", "Events sent to the dead-letter topic", ["topic", "kind"])
READ_SOURCES = ("table", "owner", "redis", "postgres")
# Counted on every read: tallies exported on scrape (core_app/tallies.py), not prometheus Counters.
reads = TalliedCounter(
    "core_customer_reads_total", "Customer reads by the source that answered", "source", READ_SOURCES
)
dependency_up = Gauge(
    "core_dependency_up", "1 when the last health probe reached the dependency", ["dependency"]
)
rfm_reads = TalliedCounter("core_rfm_reads_total", "RFM score reads", "source", READ_SOURCES)


def count_read(counter: TalliedCounter, source: str) -> None:
    """One read answered by `source`; every source shows on /metrics at 0 before its first read."""
    counter.inc(source)


cache_errors = Counter("core_cache_errors_total", "Redis cache reads or writes that failed", ["operation"])
reads_while_recovering = Counter(
    "core_reads_while_recovering_total",
    "Customer reads refused (503) because their partition was recovering or its owner away too long",
)
owner_read_errors = Counter(
    "core_owner_read_errors_total", "Reads routed to the owner worker that failed and fell back", ["reason"]
)

# Redis read-through cache (customers 24 h, settings 7 d). A failed lookup counts as a miss: the
# cache did not answer and the read went on to PostgreSQL (the failure is also in cache_errors).
# redis_cache_hit_rate is this worker's share since start; across workers, compute it with PromQL:
#   sum(rate(core_cache_hits_total[5m]))
#     / (sum(rate(core_cache_hits_total[5m])) + sum(rate(core_cache_misses_total[5m])))
cache_hits = Counter("core_cache_hits_total", "Redis cache lookups in the read path that hit", ["cache"])
cache_misses = Counter(
    "core_cache_misses_total", "Redis cache lookups in the read path that missed or failed", ["cache"]
)
cache_hit_rate = Gauge(
    "redis_cache_hit_rate", "Share of this worker's Redis cache lookups that hit since it started"
)
_cache_totals = [0, 0]  # hits, misses: the gauge's own tally, cheaper than reading the counters back


def cache_lookup(cache: str, hit: bool) -> None:
    """Count one lookup of `cache` ("customer" or "settings") and refresh redis_cache_hit_rate."""
    if hit:
        cache_hits.labels(cache).inc()
        _cache_totals[0] += 1
    else:
        cache_misses.labels(cache).inc()
        _cache_totals[1] += 1
    cache_hit_rate.set(_cache_totals[0] / (_cache_totals[0] + _cache_totals[1]))


# Request latency per transport. `route` is bounded: the REST route template with its HTTP method
# ("GET /core/v1/customers"), or the gRPC method path of a served method; never a raw path.
REQUEST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
request_duration = TalliedHistogram(
    "core_request_duration_seconds",
    "Request latency by transport (rest, graphql, grpc), route template or gRPC method, and status",
    ["transport", "route", "status"],
    REQUEST_BUCKETS,
)


def observe_request(transport: str, route: str, status: str, seconds: float) -> None:
    request_duration.observe((transport, route, status), seconds)
