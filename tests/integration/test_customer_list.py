"""The list use case in-process over the real PostgreSQL and security layer: keyset pages, filters,
signed cursors, projection, the PII scope and its audit, and the indexes the pages use."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as settings_
from hypothesis import strategies as st

from core_app.customer_adapters import PgCustomerStore
from core_app.domain.errors import ValidationFailed
from core_app.domain.segments import SEGMENTS, segment_of
from core_app.repository_lists import segment_condition
from core_app.security import Principal, use_principal
from core_app.security.pii import PiiAuditLog
from core_app.security.principal import READ_PII, VIEW, current_principal
from core_app.services.customer_list import ListDeps, build_deps, list_customers
from core_app.settings import Settings
from tests.support.customer_lists import (
    THRESHOLDS,
    Row,
    erase_in_sql,
    insert_rows,
    random_rows,
    set_thresholds,
)
from tests.support.db import pg
from tests.support.events import new_merchant
from tests.support.security import open_layer


@pytest.fixture
async def deps(settings: Settings) -> AsyncIterator[ListDeps]:
    async with open_layer(settings) as layer:
        pool = layer.api_keys.pool
        yield build_deps(settings, PgCustomerStore(pool), layer, PiiAuditLog(pool))


@pytest.fixture(scope="module")
def shop(settings: Settings) -> tuple[str, list[Row]]:
    merchant = new_merchant(settings)
    rows = random_rows(120, seed=18)
    insert_rows(settings, merchant, rows)
    set_thresholds(settings, merchant, THRESHOLDS)
    other = new_merchant(settings)
    insert_rows(settings, other, random_rows(30, seed=81))
    return merchant, rows


def viewer(merchant: str, *extra: str) -> Principal:
    return Principal("tester", merchant, frozenset({VIEW, *extra}), "jwt")


async def all_pages(deps: ListDeps, merchant: str, params: dict[str, Any], *extra: str) -> list[dict]:
    seen: list[dict] = []
    cursor = None
    with use_principal(viewer(merchant, *extra)):
        for _ in range(100):
            page = await list_customers(
                deps,
                current_principal.get(),
                {"merchant_id": merchant, "cursor": cursor, **params},
                transport="rest",
            )
            seen.extend(page.items)
            cursor = page.next_cursor
            if cursor is None:
                return seen
    raise AssertionError("paging did not end")


async def test_pages_cover_every_customer_once_in_id_order(deps: ListDeps, shop: tuple) -> None:
    merchant, rows = shop
    seen = await all_pages(deps, merchant, {"limit": "7"})
    ids = [item["id"] for item in seen]
    assert ids == sorted(r.id for r in rows)  # no gaps, no duplicates, nothing of the other merchant
    assert {item["merchant_id"] for item in seen} == {merchant}
    assert "email" not in seen[0]  # no PII scope: no email at all


@pytest.mark.parametrize(
    ("params", "expect"),
    [
        ({"segment": "champions"}, lambda r: segment_of(r.rfm_score, THRESHOLDS) == "champions"),
        ({"segment": "loyal"}, lambda r: segment_of(r.rfm_score, THRESHOLDS) == "loyal"),
        ({"segment": "new"}, lambda r: segment_of(r.rfm_score, THRESHOLDS) == "new"),
        ({"segment": "at_risk"}, lambda r: segment_of(r.rfm_score, THRESHOLDS) == "at_risk"),
        ({"segment": "needs_attention"}, lambda r: segment_of(r.rfm_score, THRESHOLDS) == "needs_attention"),
        ({"segment": "hibernating"}, lambda r: segment_of(r.rfm_score, THRESHOLDS) == "hibernating"),
        ({"segment": "unscored"}, lambda r: not r.rfm_score),
        (
            {"recency_max": "30", "monetary_min": "500"},
            lambda r: bool(r.rfm_score) and r.rfm_score["recency"] <= 30 and r.rfm_score["monetary"] >= 500,
        ),
        ({"tag": "vip"}, lambda r: "vip" in r.metadata.get("tags", [])),
        ({"redacted": "false"}, lambda r: True),
    ],
)
async def test_filters_page_through_exactly_the_matches(
    deps: ListDeps, shop: tuple, params: dict[str, str], expect: Any
) -> None:
    merchant, rows = shop
    seen = await all_pages(deps, merchant, {"limit": "9", **params})
    assert [item["id"] for item in seen] == sorted(r.id for r in rows if expect(r))
    assert seen, "the fixture has matches for every filter"


async def test_segment_is_on_every_item(deps: ListDeps, shop: tuple) -> None:
    merchant, rows = shop
    by_id = {r.id: r for r in rows}
    seen = await all_pages(deps, merchant, {"limit": "250", "fields": "segment,rfm_score"})
    assert len(seen) == len(rows)
    for item in seen:
        assert set(item) == {"id", "segment", "rfm_score"}
        assert item["segment"] == segment_of(by_id[item["id"]].rfm_score, THRESHOLDS)


async def test_email_and_updated_since_filters(deps: ListDeps, shop: tuple, settings: Settings) -> None:
    merchant, rows = shop
    target = rows[5]
    seen = await all_pages(deps, merchant, {"email": target.email.upper()})
    assert [item["id"] for item in seen] == [target.id]
    with pg(settings) as conn, conn.cursor() as cur:
        cur.execute("SELECT clock_timestamp()")
        since = cur.fetchone()[0] + timedelta(milliseconds=1)
        assert not await all_pages(deps, merchant, {"updated_since": since.isoformat()})
        cur.execute(
            "UPDATE customers SET metadata = metadata || '{\"touched\": true}'"
            " WHERE merchant_id = %s AND id = ANY(%s::uuid[])",
            (merchant, [rows[1].id, rows[2].id]),
        )  # the trigger stamps updated_at, after `since`
    seen = await all_pages(deps, merchant, {"updated_since": since.isoformat(), "limit": "1"})
    assert [item["id"] for item in seen] == sorted([rows[1].id, rows[2].id])


async def test_cursor_is_bound_to_merchant_filters_and_signature(deps: ListDeps, shop: tuple) -> None:
    merchant, _ = shop
    other = new_merchant_for(deps)
    with use_principal(viewer(merchant)):
        page = await list_customers(
            deps, current_principal.get(), {"merchant_id": merchant, "limit": "5"}, transport="rest"
        )
    cursor = page.next_cursor
    assert cursor is not None
    cases = [
        (other, {"cursor": cursor}, "another merchant"),
        (merchant, {"cursor": cursor, "tag": "vip"}, "other filters"),
        (merchant, {"cursor": cursor[:-2] + ("AA" if cursor[-2:] != "AA" else "BB")}, "not a cursor"),
        (merchant, {"cursor": "x" * 40}, "not a cursor"),
    ]
    for target, params, message in cases:
        with use_principal(viewer(target)), pytest.raises(ValidationFailed) as refused:
            await list_customers(
                deps, current_principal.get(), {"merchant_id": target, **params}, transport="rest"
            )
        assert refused.value.field == "cursor" and message in refused.value.reason


def new_merchant_for(deps: ListDeps) -> str:
    import uuid

    return str(uuid.uuid4())  # the cursor check comes before any lookup


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "251"}, "limit"),
        ({"limit": "0"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"segment": "whales"}, "segment"),
        ({"recency_min": "-1"}, "recency_min"),
        ({"updated_since": "yesterday"}, "updated_since"),
        ({"email": "not-an-email"}, "email"),
        ({"redacted": "maybe"}, "redacted"),
        ({"fields": "id,password"}, "fields"),
        ({"tag": ""}, "tag"),
    ],
)
async def test_bad_parameters_name_their_field(
    deps: ListDeps, shop: tuple, params: dict[str, str], field: str
) -> None:
    merchant, _ = shop
    with use_principal(viewer(merchant)), pytest.raises(ValidationFailed) as refused:
        await list_customers(
            deps, current_principal.get(), {"merchant_id": merchant, **params}, transport="rest"
        )
    assert refused.value.field == field


def pii_audit_rows(settings: Settings, merchant: str) -> int:
    with pg(settings) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM audit_logs WHERE merchant_id = %s AND action = 'customer.pii_read'",
            (merchant,),
        )
        return int(cur.fetchone()[0])


async def test_email_needs_the_pii_scope_and_each_read_is_audited(deps: ListDeps, settings: Settings) -> None:
    merchant = new_merchant(settings)
    rows = random_rows(6, seed=6)
    insert_rows(settings, merchant, rows)
    erase_in_sql(settings, merchant, rows[0].id)
    plain = await all_pages(deps, merchant, {"fields": "email,redacted"})
    assert all("email" not in item for item in plain)
    assert pii_audit_rows(settings, merchant) == 0
    seen = await all_pages(deps, merchant, {"fields": "email,redacted", "limit": "4"}, READ_PII)
    emails = {item["id"]: (item["email"], item["redacted"]) for item in seen}
    assert emails == {r.id: (None, True) if r is rows[0] else (r.email, False) for r in rows}
    assert pii_audit_rows(settings, merchant) == 5  # one per email returned; the erased one is not


async def test_pages_are_index_scans(settings: Settings) -> None:
    merchant = new_merchant(settings)
    insert_rows(settings, merchant, random_rows(3000, seed=3))
    with pg(settings) as conn, conn.cursor() as cur:
        cur.execute("ANALYZE customers")
        plans = {}
        for name, where in {
            "plain": "",
            "after": "AND id > '80000000-0000-4000-8000-000000000000'",
            "updated_since": "AND updated_at >= now() + interval '1 hour'",
            "email": "AND email_hash = repeat('a', 64)",
            "redacted": "AND redacted_at IS NOT NULL",
        }.items():
            cur.execute(
                f"EXPLAIN SELECT id FROM customers WHERE merchant_id = %s {where} ORDER BY id LIMIT 51",
                (merchant,),
            )
            plans[name] = "\n".join(row[0] for row in cur.fetchall())
    for name, plan in plans.items():
        assert "Index" in plan and "Seq Scan" not in plan, f"{name}:\n{plan}"


bounds = st.tuples(st.integers(0, 200), st.integers(0, 200)).map(sorted)
scores = st.one_of(
    st.just({}),
    st.fixed_dictionaries(
        {"recency": st.integers(0, 250), "frequency": st.integers(0, 250), "monetary": st.integers(0, 250)}
    ),
)


@settings_(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(score=scores, r=bounds, f=bounds, m=bounds, missing=st.booleans())
def test_sql_segment_rule_equals_the_python_one(
    settings: Settings, score: dict, r: list, f: list, m: list, missing: bool
) -> None:
    thresholds = (
        None
        if missing
        else {
            name: {"min": low, "max": high}
            for name, (low, high) in zip(("recency", "frequency", "monetary"), (r, f, m), strict=True)
        }
    )
    with pg(settings) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT core_rfm_segment(%s::jsonb, %s::jsonb)", (json.dumps(score), json.dumps(thresholds))
        )
        assert cur.fetchone()[0] == segment_of(score, thresholds)


@settings_(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(score=scores, r=bounds, f=bounds, m=bounds, segment=st.sampled_from(SEGMENTS))
def test_segment_ranges_select_what_the_rule_names(
    settings: Settings, score: dict, r: list, f: list, m: list, segment: str
) -> None:
    thresholds = {
        name: {"min": low, "max": high}
        for name, (low, high) in zip(("recency", "frequency", "monetary"), (r, f, m), strict=True)
    }
    params: dict[str, Any] = {"thresholds": json.dumps(thresholds)}
    condition = segment_condition(segment, thresholds, params)
    with pg(settings) as conn, conn.cursor() as cur:
        cur.execute(
            f"SELECT coalesce({condition}, false) FROM (SELECT %(rfm)s::jsonb AS rfm_score) AS c",
            params | {"rfm": json.dumps(score)},
        )
        assert cur.fetchone()[0] is (segment_of(score, thresholds) == segment)
