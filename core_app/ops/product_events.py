"""PostHog product events (the plan's list), when POSTHOG_API_KEY is set.

The official SDK queues each event in memory and a background thread sends them in batches, so a
capture never waits on the network. No PII: the distinct id is the merchant id (an opaque UUID) and
only allow-listed, non-personal properties are sent; anything else is dropped before the SDK sees it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from core_app.settings import Settings

if TYPE_CHECKING:
    from posthog import Posthog

log = logging.getLogger(__name__)

EVENTS = frozenset(
    {"customer_created", "customer_updated", "import_initiated", "rfm_score_updated", "feature_flag_toggled"}
)
# Counts, kinds and switches only: never an email, a name, a customer's metadata or a file URL.
ALLOWED_PROPERTIES = frozenset({"source", "count", "flag", "enabled", "transport"})

_client: Posthog | None = None


def configure(settings: Settings) -> bool:
    """Start the client once per process; False (and every capture a no-op) without a key."""
    global _client
    key = settings.posthog_api_key.get_secret_value()
    if _client is None and key:
        # Imported only with a key: the SDK and its requests/urllib3 stack cost a worker ~5 MiB (D257).
        from posthog import Posthog

        _client = Posthog(
            key,
            host=settings.posthog_host,
            flush_at=50,
            flush_interval=2.0,
            max_retries=2,
            timeout=3,  # bounds how long a CLI's final flush waits for an unreachable PostHog
            disable_geoip=True,
            on_error=lambda error, _batch: log.warning("posthog batch failed", extra={"error": str(error)}),
        )
    return _client is not None


def capture(event: str, merchant_id: str, **properties: Any) -> None:
    if _client is None:
        return
    if event not in EVENTS:
        raise ValueError(f"unknown product event {event!r}")
    safe = {k: v for k, v in properties.items() if k in ALLOWED_PROPERTIES}
    safe["service_name"] = "core"
    try:
        _client.capture(event, distinct_id=str(merchant_id), properties=safe)
    except Exception:  # telemetry never fails the operation it describes
        log.exception("posthog capture failed", extra={"event": event})


def shutdown() -> None:
    """Send what is queued and stop the sender thread (on worker stop, at CLI exit)."""
    global _client
    if _client is not None:
        client, _client = _client, None
        client.shutdown()


def count_by_merchant(event: str, merchant_ids: list[str]) -> None:
    """One event per merchant for a batch (`count` of changes): a burst of RFM updates stays a
    handful of events rather than one per customer."""
    if _client is None or not merchant_ids:
        return
    counts: dict[str, int] = {}
    for merchant_id in merchant_ids:
        counts[merchant_id] = counts.get(merchant_id, 0) + 1
    for merchant_id, count in counts.items():
        capture(event, merchant_id, count=count)
