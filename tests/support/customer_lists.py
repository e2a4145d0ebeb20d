"""Builders for the customer list tests: customers with scores, tags and erasures, straight in SQL."""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg2.extras

from core_app.settings import Settings
from tests.support.db import pg

THRESHOLDS = {
    "recency": {"min": 7, "max": 60},
    "frequency": {"min": 2, "max": 10},
    "monetary": {"min": 50, "max": 1000},
}
TAGS = ("vip", "wholesale", "newsletter")


@dataclass(frozen=True)
class Row:
    id: str
    email: str
    rfm_score: dict[str, int]
    metadata: dict[str, Any]


def random_rows(count: int, seed: int) -> list[Row]:
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        cid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        score = (
            {
                "recency": rng.randint(0, 120),
                "frequency": rng.randint(0, 15),
                "monetary": rng.randint(0, 2000),
            }
            if rng.random() < 0.9
            else {}
        )
        tags = sorted(rng.sample(TAGS, rng.randint(0, 2)))
        rows.append(Row(cid, f"list-{cid[:13]}@example.com", score, {"tags": tags} if tags else {}))
    return rows


def insert_rows(settings: Settings, merchant_id: str, rows: list[Row]) -> None:
    with pg(settings) as conn, conn.cursor() as cur:
        psycopg2.extras.execute_values(
            cur,
            "INSERT INTO customers (id, merchant_id, email, rfm_score, metadata) VALUES %s",
            [(r.id, merchant_id, r.email, json.dumps(r.rfm_score), json.dumps(r.metadata)) for r in rows],
            page_size=1000,
        )


def set_thresholds(settings: Settings, merchant_id: str, thresholds: dict[str, Any]) -> None:
    with pg(settings) as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO program_settings (merchant_id, rfm_thresholds) VALUES (%s, %s)"
            " ON CONFLICT (merchant_id) DO UPDATE SET rfm_thresholds = EXCLUDED.rfm_thresholds",
            (merchant_id, json.dumps(thresholds)),
        )


def erase_in_sql(settings: Settings, merchant_id: str, customer_id: str) -> None:
    """What an erasure leaves in PostgreSQL: a key tombstone, then the sink's redacted row."""
    with pg(settings) as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO customer_data_keys (merchant_id, customer_id, wrapped_key, shredded_at)"
            " VALUES (%s, %s, NULL, now()) ON CONFLICT (merchant_id, customer_id) DO UPDATE"
            " SET wrapped_key = NULL, shredded_at = now()",
            (merchant_id, customer_id),
        )
        cur.execute(
            "UPDATE customers SET email = 'redacted', metadata = '{}', redacted_at = now()"
            " WHERE merchant_id = %s AND id = %s",
            (merchant_id, customer_id),
        )
