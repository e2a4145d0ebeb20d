"""EXPLAIN (ANALYZE, BUFFERS) of the list pages the read benchmark measures, on a loaded database.

    .venv/bin/python -m bench.list_plans --database core_bench_1m [--after 80000000-...] [--sample 200]

For each filter of bench/reads_list.py: the exact SQL the list use case runs for a 50-item page of
the merchant with the most customers (repository_lists.page_sql), from the middle of its id range
(`--after`), with the plan's shape and its buffers: shared hits, reads from outside shared_buffers,
and the heap pages touched (the number issue 18's tag and range pages were bound by). `--sample N`
then runs N pages per filter from random points of the id range, one at a time, and prints the
execution time (p50, p99) and the shared buffers (hit + read) of a page: PostgreSQL's share of a
page, with neither HTTP nor the worker in it.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import uuid
from typing import Any

from bench.reads_list import FILTERS, connect, loaded_merchant
from core_app.domain.customer_query import ListQuery, parse_filters
from core_app.repository_lists import page_sql
from core_app.settings import Settings


def explain(cur: Any, query: ListQuery, thresholds: dict[str, Any] | None) -> dict[str, Any]:
    sql, params = page_sql(query, email_hash=None, thresholds=thresholds, with_pii=False)
    cur.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql, params)
    plan = cur.fetchone()[0][0]
    return {"ms": plan["Execution Time"], "plan": plan["Plan"]}


def lines(node: dict[str, Any], depth: int = 0) -> list[str]:
    """One line per plan node: type, relation/index, rows, buffers hit/read."""
    where = node.get("Index Name") or node.get("Relation Name") or ""
    text = (
        f"{'  ' * depth}{node['Node Type']} {where} rows={node.get('Actual Rows')}"
        f" removed={node.get('Rows Removed by Filter', 0)}"
        f" hit={node.get('Shared Hit Blocks')} read={node.get('Shared Read Blocks')}"
    )
    return [text] + [line for child in node.get("Plans", []) for line in lines(child, depth + 1)]


def buffers(node: dict[str, Any]) -> int:
    return int(node["Shared Hit Blocks"] + node["Shared Read Blocks"])


def sample(cur: Any, merchant: str, thresholds: dict[str, Any] | None, count: int) -> None:
    rng = random.Random(7)
    for name, params in FILTERS.items():
        times, touched = [], []
        for _ in range(count):
            after = str(uuid.UUID(int=rng.getrandbits(128)))
            query = ListQuery(merchant_id=merchant, limit=50, after=after, filters=parse_filters(params))
            result = explain(cur, query, thresholds)
            times.append(result["ms"])
            touched.append(buffers(result["plan"]))
        cuts = statistics.quantiles(times, n=100)
        print(
            f"{name:30} {count} pages: p50 {statistics.median(times):.2f} ms, p99 {cuts[98]:.2f} ms,"
            f" buffers per page {statistics.mean(touched):.0f}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database", required=True)
    parser.add_argument("--after", default="80000000-0000-4000-8000-000000000000")
    parser.add_argument("--sample", type=int, default=0, help="pages per filter from random cursors")
    args = parser.parse_args()
    settings = Settings(core_db_name=args.database)
    found = loaded_merchant(settings)
    if found is None:
        sys.exit(f"{args.database} holds no customers")
    merchant = found[0]
    with connect(settings) as conn, conn.cursor() as cur:
        cur.execute("SELECT rfm_thresholds FROM program_settings WHERE merchant_id = %s", (merchant,))
        row = cur.fetchone()
        thresholds = row[0] if row else None
        for name, params in FILTERS.items():
            query = ListQuery(merchant_id=merchant, limit=50, after=args.after, filters=parse_filters(params))
            result = explain(cur, query, thresholds)
            print(f"{name}: {result['ms']:.1f} ms")
            print("\n".join("    " + line for line in lines(result["plan"])), flush=True)
        if args.sample:
            sample(cur, merchant, thresholds, args.sample)
    print(json.dumps({"merchant": merchant, "customers": found[1]}))


if __name__ == "__main__":
    main()
