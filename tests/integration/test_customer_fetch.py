"""The batch fetch of first touch (repository.fetch_customers: one JSON text a row, decoded by
orjson) gives exactly the states the one-customer fetch (dict rows, jsonb decoded by psycopg2)
gives, numbers of 19+ digits and timestamps included."""

from __future__ import annotations

import json
import uuid

import aiopg

from core_app.repository import fetch_customer, fetch_customers
from core_app.settings import Settings
from tests.support.db import pg
from tests.support.events import new_merchant

METADATA = [
    {},
    {"tier": "gold", "tags": ["vip", "ünïcödé"], "nested": {"a": [1, 2.5, None, True]}},
    {"big": 123456789012345678, "bigger": 1234567890123456789, "huge": 123456789012345678901234},
    {"id_text": "12345678901234567890", "float": 0.1, "neg": -42, "exp": 1e30},
]


def insert(settings: Settings, merchant: str, metadata: dict[str, object], redacted: bool) -> str:
    customer = str(uuid.uuid4())
    with pg(settings) as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO customers (id, merchant_id, email, metadata, rfm_score, applied_as_of,"
            " redacted_at, version) VALUES (%s, %s, %s, %s, %s, %s,"
            " CASE WHEN %s THEN TIMESTAMP '2026-01-02 03:04:05.060' END, 7)",
            (
                customer,
                merchant,
                f"{customer}@example.com",
                json.dumps(metadata),
                json.dumps({"recency": 3, "frequency": 4.5, "monetary": 12345678901234567890}),
                json.dumps({"rfm": 1_796_119_200_000}),
                redacted,
            ),
        )
    return customer


async def test_the_batch_fetch_equals_the_single_fetch(settings: Settings, pool: aiopg.Pool) -> None:
    merchant = new_merchant(settings)
    customers = [insert(settings, merchant, doc, i % 2 == 1) for i, doc in enumerate(METADATA)]
    batch = await fetch_customers(pool, [(merchant, customer) for customer in customers])
    assert len(batch) == len(customers)
    for customer in customers:
        single = await fetch_customer(pool, merchant, customer)
        assert single is not None
        fetched = batch[single.key]
        assert fetched == single
        assert fetched.to_dict() == single.to_dict()
        assert [type(v) for v in fetched.metadata.values()] == [type(v) for v in single.metadata.values()]
    assert await fetch_customers(pool, [(merchant, str(uuid.uuid4()))]) == {}
