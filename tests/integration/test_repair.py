"""`core repair --merchant M`: customers split before D100 (a stray, higher-versioned copy in another
partition's changelog, which the sink took into PostgreSQL) are merged by `occurred_at` per source."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import replace

from aiokafka import AIOKafkaProducer

from core_app.domain.customer import CustomerState
from core_app.events.codec import EventCodec
from core_app.routing import key_partition
from core_app.settings import Settings
from tests.support.db import pg
from tests.support.events import at, customer_rows, insert_customers, new_merchant, produce, rfm
from tests.support.partitioning import rest_states
from tests.support.processes import WorkerProcess, eventually

PARTITIONS = 4
CUSTOMERS = 20


async def run_repair(worker_env: dict[str, str], merchant_id: str) -> dict:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "core_app", "repair", "--merchant", merchant_id, "--actor", "test",
        env={**os.environ, **worker_env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()[-2000:]
    return dict(json.loads(out.decode().strip().splitlines()[-1]))


def stray_copy(merchant_id: str, customer_id: str) -> CustomerState:
    """What a CRC32-partitioned producer left before D100: older rfm, newer points, version 11."""
    state = CustomerState(merchant_id, customer_id, email=None, email_hash=None)
    return replace(
        state,
        rfm_score={"recency": 1, "frequency": 1, "monetary": 1},
        metadata={"points": {"balance": 777, "lifetime_earned": 0, "tier": None, "as_of": "x"}},
        version=11,
        applied_as_of={"rfm": int(at(1).timestamp() * 1000), "points": int(at(9).timestamp() * 1000)},
    )


async def test_repair_merges_split_copies_and_rewrites_postgres(
    worker: WorkerProcess,
    settings: Settings,
    codec: EventCodec,
    producer: AIOKafkaProducer,
    worker_env: dict[str, str],
) -> None:
    merchant_id = new_merchant(settings)
    customers = [cid for cid, _ in insert_customers(settings, merchant_id, CUSTOMERS)]
    await produce(producer, codec, [rfm(merchant_id, c, (5, 5, 5), at(5)) for c in customers])

    async def owners_applied() -> bool:
        rows = customer_rows(settings, merchant_id)
        return all(rows[c]["version"] == 1 for c in customers)

    await eventually(owners_applied)
    # The legacy split: a stray copy in another partition's changelog; the sink takes it (version 11).
    for customer_id in customers:
        key = f"{merchant_id}:{customer_id}"
        stray = (key_partition(key, PARTITIONS) + 1) % PARTITIONS
        value = json.dumps(stray_copy(merchant_id, customer_id).to_dict()).encode()
        await producer.send_and_wait("core-customers-changelog", value, json.dumps(key).encode(), stray)

    async def split() -> bool:
        rows = customer_rows(settings, merchant_id)
        return all(rows[c]["version"] == 11 for c in customers)

    await eventually(split)
    summary = await run_repair(worker_env, merchant_id)
    assert summary == {
        "merchant_id": merchant_id,
        "customers_seen": CUSTOMERS,
        "split": CUSTOMERS,
        "repaired": CUSTOMERS,
        "unanswered": 0,
    }

    async def merged() -> bool:
        reads = await rest_states(worker, merchant_id, customers)
        rows = customer_rows(settings, merchant_id)
        want = ({"recency": 5, "frequency": 5, "monetary": 5}, 777)
        return all(
            reads["rest"][c][:2] == want
            and reads["rest"][c][3] == "table"
            and rows[c]["version"] == reads["rest"][c][2] > 11
            and rows[c]["rfm_score"] == want[0]
            and rows[c]["metadata"]["points"]["balance"] == 777
            for c in customers
        )

    await eventually(merged)
    again = await run_repair(worker_env, merchant_id)  # idempotent: nothing left to merge
    assert again["repaired"] == 0 and again["split"] == CUSTOMERS
    with pg(settings) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT actor, details->>'repaired' FROM audit_logs WHERE merchant_id = %s"
            " AND action = 'customers.repair' ORDER BY created_at",
            (merchant_id,),
        )
        assert cur.fetchall() == [("cli:test", str(CUSTOMERS)), ("cli:test", "0")]
