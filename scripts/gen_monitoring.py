"""Generate the Grafana dashboard and the prometheus-operator PrometheusRule from code.

    .venv/bin/python scripts/gen_monitoring.py

Writes deploy/grafana/dashboards/core.json (plain Grafana JSON, schemaVersion 39) and
k8s/base/prometheusrule.yaml (the groups of deploy/prometheus/rules/core.rules.yml, unchanged).
tests/contract/test_monitoring_files.py fails when either is stale.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "deploy" / "prometheus" / "rules" / "core.rules.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "core.json"
PROMETHEUS_RULE = ROOT / "k8s" / "base" / "prometheusrule.yaml"

# (title, unit, [(expr, legend)]) per row; every metric named here must be on a worker's /metrics
# (tests/integration/test_monitoring.py), or be listed there as pending.
ROWS: list[tuple[str, list[tuple[str, str, list[tuple[str, str]]]]]] = [
    (
        "The plan's metrics",
        [
            (
                "Customers created / s",
                "ops",
                [("sum by (merchant_id) (rate(core_customers_created_total[5m]))", "{{merchant_id}}")],
            ),
            (
                "RFM reads / s by source",
                "ops",
                [("sum by (source) (rate(core_rfm_reads_total[5m]))", "{{source}}")],
            ),
            (
                "Imports initiated / h",
                "short",
                [("sum by (source) (increase(core_imports_initiated_total[1h]))", "{{source}}")],
            ),
            (
                "GraphQL query latency",
                "s",
                [
                    (
                        "histogram_quantile(0.99, sum by (le, operation_type) "
                        "(rate(graphql_query_duration_seconds_bucket[5m])))",
                        "p99 {{operation_type}}",
                    )
                ],
            ),
            (
                "Redis cache hit rate (plan: > 95 %)",
                "percentunit",
                [
                    (
                        "sum(rate(core_cache_hits_total[5m])) / (sum(rate(core_cache_hits_total[5m]))"
                        " + sum(rate(core_cache_misses_total[5m])))",
                        "all workers",
                    ),
                    ("redis_cache_hit_rate", "{{instance}} since start"),
                ],
            ),
        ],
    ),
    (
        "Pipeline",
        [
            (
                "Consumer lag per partition",
                "short",
                [("sum by (topic, partition) (core_consumer_lag)", "{{topic}}[{{partition}}]")],
            ),
            (
                "Seconds since progress per partition (watchdog)",
                "s",
                [
                    (
                        "max by (topic, partition) (core_partition_seconds_since_progress)",
                        "{{topic}}[{{partition}}]",
                    ),
                    ("sum(core_partition_stalled)", "stalled partitions"),
                ],
            ),
            ("Sink lag", "short", [("max by (table) (core_sink_lag)", "{{table}}")]),
            (
                "Dead letters / min",
                "short",
                [("sum by (topic, kind) (increase(core_dead_letters_total[1m]))", "{{topic}} {{kind}}")],
            ),
            ("Parked events", "short", [("max(core_parked_events)", "parked")]),
            (
                "Events applied / s",
                "ops",
                [("sum by (topic) (rate(core_events_processed_total[5m]))", "{{topic}}")],
            ),
            (
                "Workers ready",
                "short",
                [("sum(core_worker_ready)", "ready"), ('count(up{job=~"core.*"})', "up")],
            ),
        ],
    ),
    (
        "Reads",
        [
            (
                "Request latency p50 / p99 by transport",
                "s",
                [
                    (
                        "histogram_quantile(0.5, sum by (le, transport) "
                        "(rate(core_request_duration_seconds_bucket[5m])))",
                        "p50 {{transport}}",
                    ),
                    (
                        "histogram_quantile(0.99, sum by (le, transport) "
                        "(rate(core_request_duration_seconds_bucket[5m])))",
                        "p99 {{transport}}",
                    ),
                ],
            ),
            (
                "Customer reads / s by source",
                "ops",
                [("sum by (source) (rate(core_customer_reads_total[5m]))", "{{source}}")],
            ),
        ],
    ),
    (
        "Imports, GDPR, security, Shopify",
        [
            (
                "Import failures / h",
                "short",
                [
                    (
                        'sum by (source) (increase(core_imports_finished_total{status="failed"}[1h]))',
                        "{{source}}",
                    )
                ],
            ),
            (
                # Erasure is applied when the event arrives, so a request's states are its outcomes.
                "GDPR requests by outcome / h",
                "short",
                [
                    (
                        'sum(increase(core_events_processed_total{topic="gdpr_request.created"}[1h]))',
                        "applied",
                    ),
                    (
                        "sum by (reason) (increase(core_events_skipped_total"
                        '{topic="gdpr_request.created"}[1h]))',
                        "skipped {{reason}}",
                    ),
                    ('sum(increase(core_events_failed_total{topic="gdpr_request.created"}[1h]))', "failed"),
                    (
                        'sum(increase(core_dead_letters_total{topic="gdpr_request.created"}[1h]))',
                        "dead-lettered",
                    ),
                ],
            ),
            (
                # Every compliance request, tracked with its 30-day deadline (D160).
                "GDPR requests tracked / h, overdue",
                "short",
                [
                    ("sum by (kind) (increase(core_gdpr_requests_received_total[1h]))", "received {{kind}}"),
                    ("sum by (kind) (increase(core_gdpr_requests_done_total[1h]))", "done {{kind}}"),
                    ("sum by (kind) (increase(core_gdpr_requests_failed_total[1h]))", "failed {{kind}}"),
                    ("max(core_gdpr_requests_overdue)", "overdue (open past 30 days)"),
                ],
            ),
            (
                "Unauthorized / h by transport and reason",
                "short",
                [
                    (
                        "sum by (transport, reason) (increase(core_auth_refused_total"
                        '{reason=~"UNAUTHENTICATED|FORBIDDEN"}[1h]))',
                        "{{transport}} {{reason}}",
                    )
                ],
            ),
            (
                "Shopify API bucket used",
                "percentunit",
                [("max by (shop) (core_shopify_api_bucket_used_ratio)", "{{shop}}")],
            ),
        ],
    ),
]


def panel(panel_id: int, title: str, unit: str, targets: list[tuple[str, str]], x: int, y: int) -> dict:
    return {
        "id": panel_id,
        "type": "timeseries",
        "title": title,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": 8, "w": 8, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
        "targets": [
            {"refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend}
            for i, (expr, legend) in enumerate(targets)
        ],
    }


def dashboard() -> dict[str, Any]:
    panels: list[dict[str, Any]] = []
    y = 0
    for row_title, row_panels in ROWS:
        panels.append(
            {"id": len(panels) + 1, "type": "row", "title": row_title, "collapsed": False,
             "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []}
        )  # fmt: skip
        y += 1
        for i, (title, unit, targets) in enumerate(row_panels):
            panels.append(panel(len(panels) + 1, title, unit, targets, (i % 3) * 8, y + (i // 3) * 8))
        y += ((len(row_panels) + 2) // 3) * 8
    return {
        "uid": "loyalnest-core",
        "title": "LoyalNest Core",
        "tags": ["loyalnest", "core"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [
                {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Prometheus"}
            ]
        },
        "panels": panels,
    }


def prometheus_rule() -> dict[str, Any]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "core", "namespace": "loyalnest", "labels": {"release": "prometheus"}},
        "spec": {"groups": groups},
    }


def rendered() -> dict[Path, str]:
    header = "# Generated by scripts/gen_monitoring.py from deploy/prometheus/rules/core.rules.yml.\n"
    return {
        DASHBOARD: json.dumps(dashboard(), indent=2) + "\n",
        PROMETHEUS_RULE: header + yaml.safe_dump(prometheus_rule(), sort_keys=False, width=120),
    }


def main() -> None:
    for path, text in rendered().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
