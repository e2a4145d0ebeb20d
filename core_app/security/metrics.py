"""Security metrics (alert on `core_auth_refused_total` for the plan's >10 unauthorized/hour)."""

from __future__ import annotations

from prometheus_client import Counter

refused = Counter(
    "core_auth_refused_total",
    "Requests refused by the security layer",
    ["transport", "status", "reason"],
)
redis_unavailable = Counter(
    "core_security_redis_unavailable_total",
    "Security checks that could not reach Redis, by what was done (fail_open, fail_closed)",
    ["check", "outcome"],
)
remote_calls = Counter(
    "core_security_remote_calls_total",
    "Calls to the Auth and Roles services, by outcome (ok, error, cached)",
    ["service", "outcome"],
)
broadcasts = Counter(
    "core_security_broadcasts_total",
    "Security broadcasts among workers (shred, block) by outcome (sent, received); lost subscriptions",
    ["kind", "outcome"],
)
auth_failure_blocks = Counter(
    "core_auth_failure_blocks_total",
    "Client addresses blocked after too many failed authentications (seen by this worker)",
)
