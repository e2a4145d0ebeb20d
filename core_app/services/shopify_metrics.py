"""Prometheus metrics of the Shopify front door (kept out of core_app/metrics.py, which others edit)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

webhooks_received = Counter(
    "core_shopify_webhooks_total",
    "Shopify webhook deliveries by topic and outcome (accepted, duplicate, stale, refused, ignored)",
    ["topic", "outcome"],
)
webhooks_processed = Counter(
    "core_shopify_webhooks_processed_total",
    "Verified webhooks the agent handled, by topic and result (done, failed, skipped)",
    ["topic", "result"],
)
installs = Counter("core_shopify_installs_total", "Completed OAuth installs", ["kind"])
bucket_used_ratio = Gauge(
    "core_shopify_api_bucket_used_ratio",
    "Share of the shop's Admin API rate-limit bucket in use, as last reported by Shopify (alert at 0.8)",
    ["shop"],
)
