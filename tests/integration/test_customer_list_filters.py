"""Filtered list pages fetch from the heap only what they return (migration 0021, D205-D206): RFM
ranges are tested in idx_customers_merchant_id_rfm, a tag page walks customer_tags in id order, and
customer_tags always holds exactly the tags `metadata @> {"tags": [tag]}` matches."""

from __future__ import annotations

import json
import uuid
from typing import Any

from hypothesis import HealthCheck, given
from hypothesis import settings as settings_
from hypothesis import strategies as st

from core_app.domain.customer_query import MAX_TAG_LENGTH, ListQuery, parse_filters
from core_app.repository_lists import INDEXED_TAG_LENGTH, page_sql
from core_app.settings import Settings
from tests.support.customer_lists import THRESHOLDS, insert_rows, random_rows, set_thresholds
from tests.support.db import pg
from tests.support.events import new_merchant


def nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [plan] + [node for child in plan.get("Plans", []) for node in nodes(child)]


def analyze(cur: Any, merchant: str, params: dict[str, str]) -> list[dict[str, Any]]:
    """The plan nodes of the exact SQL of a 50-item page from the middle of the merchant's ids."""
    query = ListQuery(
        merchant_id=merchant, limit=50, after="40000000-0000-4000-8000-000000000000",
        filters=parse_filters(params),
    )  # fmt: skip
    sql, values = page_sql(query, email_hash=None, thresholds=THRESHOLDS, with_pii=False)
    cur.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, values)
    return nodes(cur.fetchone()[0][0]["Plan"])


def partition_indexes(cur: Any, name: str) -> set[str]:
    cur.execute("SELECT relid::regclass::text FROM pg_partition_tree(%s)", (name,))
    return {row[0] for row in cur.fetchall()}


def test_filtered_pages_read_only_the_rows_they_return(settings: Settings) -> None:
    merchant = new_merchant(settings)
    insert_rows(settings, merchant, random_rows(3000, seed=21))
    set_thresholds(settings, merchant, THRESHOLDS)
    with pg(settings) as conn, conn.cursor() as cur:
        cur.execute("ANALYZE customers")
        cur.execute("ANALYZE customer_tags")
        rfm_indexes = partition_indexes(cur, "idx_customers_merchant_id_rfm")
        for params in ({"recency_max": "30", "monetary_min": "500"}, {"segment": "loyal"}):
            plan = analyze(cur, merchant, params)
            scans = [n for n in plan if n.get("Index Name") in rfm_indexes]
            assert scans and scans[0]["Node Type"] == "Index Scan", (params, plan)
            assert "(rfm_score -> 'recency'::text)" in scans[0]["Index Cond"], scans  # a range in the index
            assert all(n["Node Type"] not in ("Seq Scan", "Sort") for n in plan), (params, plan)
            assert plan[0]["Actual Rows"] == 51
        assert scans[0].get("Rows Removed by Filter", 0) < 51  # segment: only its NOT part is a filter
        ranges = analyze(cur, merchant, {"recency_max": "30", "monetary_min": "500"})
        assert all(n.get("Rows Removed by Filter", 0) == 0 for n in ranges), ranges  # tested in the index
        tag = analyze(cur, merchant, {"tag": "vip"})
        names = [n.get("Index Name") for n in tag]
        assert "customer_tags_pkey" in names, tag
        assert all(n["Node Type"] not in ("Seq Scan", "Sort") for n in tag), tag
        assert all(n.get("Rows Removed by Filter", 0) == 0 for n in tag), tag  # every row fetched is returned
        assert tag[0]["Actual Rows"] == 51


def test_every_filter_tag_fits_the_tag_table() -> None:
    assert MAX_TAG_LENGTH <= INDEXED_TAG_LENGTH


tag_values = st.one_of(
    st.sampled_from(["vip", "VIP", "gold", "x" * 200, "x" * 201]),
    st.integers(0, 3),
    st.lists(st.sampled_from(["vip", "gold"]), max_size=2),
    st.fixed_dictionaries({"vip": st.just(1)}),
)
metadata_docs = st.one_of(
    st.just({}),
    st.fixed_dictionaries({"tags": st.lists(tag_values, max_size=4)}),
    st.fixed_dictionaries({"tags": tag_values}),
    st.fixed_dictionaries({"other": st.lists(st.just("vip"), max_size=1)}),
)


@settings_(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(docs=st.lists(metadata_docs, min_size=1, max_size=4))
def test_customer_tags_match_the_metadata_through_inserts_updates_and_deletes(
    settings: Settings, docs: list[dict[str, Any]]
) -> None:
    merchant = new_merchant(settings)
    customer = str(uuid.uuid4())
    with pg(settings) as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO customers (id, merchant_id, email, metadata) VALUES (%s, %s, 'aes256:x', %s)",
            (customer, merchant, json.dumps(docs[0])),
        )
        for doc in [*docs[1:], None]:
            cur.execute(
                "SELECT tag FROM customer_tags WHERE merchant_id = %s AND customer_id = %s",
                (merchant, customer),
            )
            kept = {row[0] for row in cur.fetchall()}
            for tag in ("vip", "VIP", "gold", "x" * 200):
                cur.execute(
                    "SELECT metadata @> %s::jsonb FROM customers WHERE merchant_id = %s AND id = %s",
                    (json.dumps({"tags": [tag]}), merchant, customer),
                )
                assert (tag in kept) == cur.fetchone()[0], (tag, kept)
            if doc is None:
                cur.execute("DELETE FROM customers WHERE merchant_id = %s AND id = %s", (merchant, customer))
            else:
                cur.execute(
                    "UPDATE customers SET metadata = %s WHERE merchant_id = %s AND id = %s",
                    (json.dumps(doc), merchant, customer),
                )
        cur.execute("SELECT count(*) FROM customer_tags WHERE merchant_id = %s", (merchant,))
        assert cur.fetchone()[0] == 0
