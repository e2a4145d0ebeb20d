"""The write side of the list indexes: the sink's customer upsert, timed on a loaded database.

    .venv/bin/python -m bench.sink_upsert_cost --database core_bench_1m [--batches 100]

Takes the merchant with the most customers, and for each batch 200 customers from a random point of
its id range (random UUIDs: each on another heap page, as the sink's are), and runs the sink's
statement (core_app.sink_sql.CUSTOMERS, version + 1) per batch shape: `scores` changes only
rfm_score (what rfm.updated does, the bulk of the sink's writes), `tags` also adds or removes the
"vip" tag (the customer_tags triggers then work), `new` inserts 200 new customers with two tags
(as an import of tagged Shopify customers does) for a scratch merchant, deleted at the end. Each
statement runs under EXPLAIN (ANALYZE, BUFFERS, WAL), which executes it: besides the time (noisy on
a shared host) it prints, per row written, the buffers touched and dirtied, the WAL bytes and the
time in triggers (AFTER triggers run outside the plan's buffers). Run it before and after a
migration to see what an index or a trigger costs a write.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import uuid
from typing import Any

from bench.reads_list import connect, loaded_merchant, random_score
from core_app.settings import Settings
from core_app.sink_sql import CUSTOMERS


def batch(cur: Any, merchant: str, rng: random.Random, shape: str) -> list[dict[str, Any]]:
    if shape == "new":
        return [
            {"customer_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)), "merchant_id": merchant,
             "rfm_score": random_score(rng), "metadata": {"tags": ["vip", "gold"]}, "version": 1}
            for _ in range(200)
        ]  # fmt: skip
    cur.execute(
        "SELECT id::text, version, metadata FROM customers"
        " WHERE merchant_id = %s AND id > %s ORDER BY id LIMIT 200",
        (merchant, str(uuid.UUID(int=rng.getrandbits(128)))),
    )
    rows = []
    for cid, version, metadata in cur.fetchall():
        if shape == "tags":
            metadata = {} if metadata.get("tags") else {"tags": ["vip"]}
        rows.append(
            {"customer_id": cid, "merchant_id": merchant, "rfm_score": random_score(rng),
             "metadata": metadata, "version": version + 1}
        )  # fmt: skip
    return rows


def run(settings: Settings, merchant: str, batches: int, shape: str) -> dict[str, float]:
    rng = random.Random(len(shape))
    times: list[float] = []
    totals = {"rows": 0, "buffers": 0, "dirtied": 0, "wal_bytes": 0, "triggers_ms": 0.0, "tag_ms": 0.0}
    with connect(settings) as conn, conn.cursor() as cur:
        for _ in range(batches):
            doc = json.dumps(batch(cur, merchant, rng, shape))
            cur.execute("EXPLAIN (ANALYZE, BUFFERS, WAL, FORMAT JSON) " + CUSTOMERS.sql, (doc,))
            result = cur.fetchone()[0][0]
            plan = result["Plan"]
            times.append(result["Execution Time"] / 1000)
            totals["rows"] += plan["Plans"][0]["Actual Rows"] if plan.get("Plans") else 0
            totals["buffers"] += plan["Shared Hit Blocks"] + plan["Shared Read Blocks"]
            totals["dirtied"] += plan["Shared Dirtied Blocks"]
            totals["wal_bytes"] += plan["WAL Bytes"]
            for trigger in result.get("Triggers", []):  # AFTER triggers: outside the plan's buffers
                totals["triggers_ms"] += trigger["Time"]
                totals["tag_ms"] += trigger["Time"] if "customer_tags" in trigger["Trigger Name"] else 0
    rows = max(totals["rows"], 1)
    cuts = statistics.quantiles(times, n=100)
    return {
        "rows": totals["rows"], "rows_per_s": totals["rows"] / sum(times),
        "p50_ms": statistics.median(times) * 1000, "p99_ms": cuts[98] * 1000,
        "buffers_per_row": totals["buffers"] / rows, "dirtied_per_row": totals["dirtied"] / rows,
        "wal_bytes_per_row": totals["wal_bytes"] / rows,
        "trigger_us_per_row": totals["triggers_ms"] * 1000 / rows,
        "tag_trigger_us_per_row": totals["tag_ms"] * 1000 / rows,
    }  # fmt: skip


def report(shape: str, r: dict[str, float]) -> None:
    print(
        f"{shape:6} {r['rows']:7} rows: {r['rows_per_s']:8.0f} rows/s,"
        f" batch of 200 p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms; per row"
        f" {r['buffers_per_row']:.1f} buffers, {r['dirtied_per_row']:.2f} dirtied,"
        f" {r['wal_bytes_per_row']:.0f} WAL bytes; triggers {r['trigger_us_per_row']:.0f} us"
        f" (customer_tags {r['tag_trigger_us_per_row']:.0f} us)",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database", required=True)
    parser.add_argument("--batches", type=int, default=100)
    args = parser.parse_args()
    settings = Settings(core_db_name=args.database)
    found = loaded_merchant(settings)
    if found is None:
        sys.exit(f"{args.database} holds no customers")
    scratch = str(uuid.uuid4())
    with connect(settings) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO merchants (id, shop_domain) VALUES (%s, %s)", (scratch, scratch))
    try:
        for shape in ("scores", "tags", "new"):
            result = run(settings, scratch if shape == "new" else found[0], args.batches, shape)
            report(shape, result)
    finally:
        with connect(settings) as conn, conn.cursor() as cur:
            cur.execute("DELETE FROM customers WHERE merchant_id = %s", (scratch,))
            cur.execute("DELETE FROM merchants WHERE id = %s", (scratch,))


if __name__ == "__main__":
    main()
