"""SQL for customer list pages: keyset by id within one merchant, filters as bound parameters.

Every query is scoped by `merchant_id = %(m)s` (one hash partition) and ordered by id, which the
primary key (merchant_id, id) serves; see migrations/0018_customer_lists.sql for the other indexes.
RFM ranges are tested in the index (merchant_id, id, recency, frequency, monetary) and a tag page
walks customer_tags in id order (migrations/0021_customer_list_filters.sql, docs/decisions.md D205,
D206), so a filtered page fetches from the heap only the rows it returns.
"""

from __future__ import annotations

import json
from typing import Any

import aiopg
import orjson

from core_app.db import load_jsonb
from core_app.domain.customer_query import ListQuery

_STAMP = """'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'"""
# One JSON object per row, built by PostgreSQL and decoded once (orjson) in the service: cheaper
# than a dict cursor plus a decode per jsonb column plus formatting each timestamp in Python.
_BASE = f"""
SELECT json_build_object(
         'id', c.id, 'merchant_id', c.merchant_id, 'rfm_score', c.rfm_score, 'metadata', c.metadata,
         'version', c.version, 'redacted', {{redacted}},
         'created_at', to_char(c.created_at, {_STAMP}), 'updated_at', to_char(c.updated_at, {_STAMP}){{pii}}
       )::text
  FROM {{source}}{{join}}
 WHERE c.merchant_id = %(m)s{{where}}
 ORDER BY {{order}}
 LIMIT %(n)s
"""
# The email is decrypted in PostgreSQL (pgcrypto, the connection's key) only for permitted callers.
# An erased customer's data key is a tombstone at once, before the sink writes 'redacted'.
_PII_REDACTED = "(c.redacted_at IS NOT NULL OR k.shredded_at IS NOT NULL)"
_PII_EMAIL = """,
         'email', CASE WHEN k.shredded_at IS NULL AND c.redacted_at IS NULL
                       THEN core_decrypt_email(c.email) END"""
_PII_JOIN = """
  LEFT JOIN customer_data_keys k ON k.merchant_id = c.merchant_id AND k.customer_id = c.id"""

# A tag page walks customer_tags' primary key (merchant_id, tag, customer_id) in id order and looks
# each customer up by its primary key: OFFSET 0 keeps the lookup a nested loop, whatever the
# statistics say (a hash join over the merchant's whole partition is what the planner picks when it
# misjudges the tag's selectivity). The metadata test stays as a recheck, applied before the LIMIT.
# Migration 0021 keeps tags of at most this many characters.
INDEXED_TAG_LENGTH = 200
_TAGGED = """customer_tags t
 CROSS JOIN LATERAL (SELECT * FROM customers c
                      WHERE c.merchant_id = %(m)s AND c.id = t.customer_id OFFSET 0) c"""

_R, _F, _M = (f"core_rfm_value(c.rfm_score, '{d}')" for d in ("recency", "frequency", "monetary"))
# Each segment of core_app/domain/segments.py as ranges on the three values (the levels' bounds are
# parameters): plain comparisons the executor evaluates per row far faster than a function call.
_SEGMENT_RANGES = {
    "champions": f"{_R} <= %(r_min)s AND {_F} >= %(f_max)s AND {_M} >= %(m_min)s",
    "new": f"{_R} <= %(r_min)s AND {_F} < %(f_min)s AND {_M} IS NOT NULL",
    "loyal": f"{_R} <= %(r_max)s AND {_F} >= %(f_min)s AND {_M} IS NOT NULL"
    f" AND NOT ({_R} <= %(r_min)s AND {_F} >= %(f_max)s AND {_M} >= %(m_min)s)",
    "at_risk": f"{_R} > %(r_max)s AND {_F} >= %(f_min)s AND {_M} IS NOT NULL",
    "hibernating": f"{_R} > %(r_max)s AND {_F} < %(f_min)s AND {_M} IS NOT NULL",
    "needs_attention": f"{_R} > %(r_min)s AND {_R} <= %(r_max)s AND {_F} < %(f_min)s AND {_M} IS NOT NULL",
    "unscored": f"({_R} IS NULL OR {_F} IS NULL OR {_M} IS NULL)",
}


def _bounds(thresholds: dict[str, Any] | None) -> dict[str, float] | None:
    """min/max of each dimension when all six are numbers, min <= max (validated settings are)."""
    bounds: dict[str, float] = {}
    for dimension in ("recency", "frequency", "monetary"):
        limits = (thresholds or {}).get(dimension)
        for end in ("min", "max"):
            value = limits.get(end) if isinstance(limits, dict) else None
            if isinstance(value, bool) or not isinstance(value, int | float):
                return None
            bounds[f"{dimension[0]}_{end}"] = value
        if bounds[f"{dimension[0]}_min"] > bounds[f"{dimension[0]}_max"]:
            return None  # the ranges assume min <= max, as validation ensures
    return bounds


def segment_condition(segment: str, thresholds: dict[str, Any] | None, params: dict[str, Any]) -> str:
    bounds = _bounds(thresholds)
    if bounds is None:  # no (complete) thresholds: every customer is unscored, as core_rfm_segment says
        if thresholds:  # odd stored thresholds: the SQL rule itself decides
            params["segment"] = segment
            return "core_rfm_segment(c.rfm_score, %(thresholds)s::jsonb) = %(segment)s"
        return "true" if segment == "unscored" else "false"
    params |= bounds
    return f"({_SEGMENT_RANGES[segment]})"


def by_tag(query: ListQuery) -> bool:
    """Whether the page walks customer_tags (a tag filter the table keeps) rather than customers."""
    return query.filters.tag is not None and len(query.filters.tag) <= INDEXED_TAG_LENGTH


def _conditions(
    query: ListQuery, email_hash: str | None, thresholds: dict[str, Any] | None
) -> tuple[list[str], dict[str, Any]]:
    f = query.filters
    where: list[str] = []
    params: dict[str, Any] = {}
    if by_tag(query):
        where.append("t.merchant_id = %(m)s AND t.tag = %(tag)s")
        params["tag"] = f.tag
    if query.after is not None:
        where.append(f"{'t.customer_id' if by_tag(query) else 'c.id'} > %(after)s")
        params["after"] = query.after
    if f.segment is not None:
        where.append(segment_condition(f.segment, thresholds, params))
    for index, (dimension, end, bound) in enumerate(f.ranges):
        operator = ">=" if end == "min" else "<="
        where.append(f"core_rfm_value(c.rfm_score, %(dim{index})s) {operator} %(bound{index})s")
        params |= {f"dim{index}": dimension, f"bound{index}": bound}
    if f.updated_since is not None:
        where.append("c.updated_at >= %(since)s")
        params["since"] = f.updated_since.replace(tzinfo=None)  # the column holds UTC wall time
    if email_hash is not None:
        where.append("c.email_hash = %(email_hash)s")
        params["email_hash"] = email_hash
    if f.tag is not None:
        where.append("c.metadata @> %(tag_doc)s::jsonb")
        params["tag_doc"] = json.dumps({"tags": [f.tag]})
    if f.redacted is not None:
        where.append(f"c.redacted_at IS {'NOT ' if f.redacted else ''}NULL")
    return where, params


def page_sql(
    query: ListQuery, *, email_hash: str | None, thresholds: dict[str, Any] | None, with_pii: bool
) -> tuple[str, dict[str, Any]]:
    where, params = _conditions(query, email_hash, thresholds)
    sql = _BASE.format(
        redacted=_PII_REDACTED if with_pii else "c.redacted_at IS NOT NULL",
        pii=_PII_EMAIL if with_pii else "",
        join=_PII_JOIN if with_pii else "",
        source=_TAGGED if by_tag(query) else "customers c",
        order="t.customer_id" if by_tag(query) else "c.id",
        where="".join(f"\n   AND {w}" for w in where),
    )
    params |= {"m": query.merchant_id, "n": query.limit + 1, "thresholds": json.dumps(thresholds)}
    return sql, params


async def fetch_page(
    pool: aiopg.Pool,
    query: ListQuery,
    *,
    email_hash: str | None,
    thresholds: dict[str, Any] | None,
    with_pii: bool,
) -> list[dict[str, Any]]:
    """Up to limit + 1 items (one more tells whether a next page exists), as JSON objects."""
    sql, params = page_sql(query, email_hash=email_hash, thresholds=thresholds, with_pii=with_pii)
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(sql, params)
        return [_decode(text) for (text,) in await cur.fetchall()]


def _decode(text: str) -> dict[str, Any]:
    try:
        return orjson.loads(text)  # type: ignore[no-any-return]
    except orjson.JSONDecodeError:  # integers beyond 64 bits in metadata
        return load_jsonb(text)  # type: ignore[no-any-return]
