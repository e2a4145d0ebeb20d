"""`core dlq list | show | replay` (D104): 50 records dead-lettered as `unknown_schema` (the producer
wrote with a schema not registered yet), then the schema is registered; replay applies each exactly
once, and a second replay re-injects nothing."""

from __future__ import annotations

import asyncio
import io
import json
import os
import struct
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiokafka import AIOKafkaProducer
from fastavro import parse_schema, schemaless_writer

from core_app.settings import Settings
from core_app.topics import DEAD_LETTER, RFM_UPDATED
from tests.support.db import pg
from tests.support.events import at, common, customer_rows, insert_customers, new_merchant, read_topic
from tests.support.partitioning import rest_states
from tests.support.processes import WorkerProcess, eventually

POISON = 50
CONTRACT = Path(__file__).resolve().parents[2] / "avro" / "rfm.updated.avsc"


def v2_schema() -> dict[str, Any]:
    """rfm.updated with one more optional field: what a producer's newer contract looks like."""
    schema = json.loads(CONTRACT.read_text())
    schema["fields"].append({"name": "model", "type": ["null", "string"], "default": None})
    return dict(schema)


def next_schema_id(settings: Settings) -> int:
    with pg(settings) as conn, conn.cursor() as cur:
        cur.execute("SELECT last_value, is_called FROM schema_registry_schemas_id_seq")
        last, called = cur.fetchone()
        return int(last) + 1 if called else int(last)


def framed(schema_id: int, record: dict[str, Any]) -> bytes:
    body = io.BytesIO()
    schemaless_writer(body, parse_schema(v2_schema()), record | {"model": "rfm-v2"})
    return b"\0" + struct.pack(">I", schema_id) + body.getvalue()


async def core(worker_env: dict[str, str], *argv: str) -> str:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "core_app", *argv, "--actor", "test",
        env={**os.environ, **worker_env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()[-2000:]
    return out.decode()


async def test_replay_of_poison_then_fixed_records_applies_them_exactly_once(
    worker: WorkerProcess,
    settings: Settings,
    producer: AIOKafkaProducer,
    tansu: str,
    registry_url: str,
    worker_env: dict[str, str],
) -> None:
    since = datetime.now(UTC).isoformat()
    merchant_id = new_merchant(settings)
    customers = [cid for cid, _ in insert_customers(settings, merchant_id, POISON)]
    schema_id = next_schema_id(settings)
    keys = {f"{merchant_id}:{c}".encode() for c in customers}
    for n, customer_id in enumerate(customers):
        record = common(merchant_id, customer_id, at(7)) | {
            "rfm_score": {"recency": 7, "frequency": n, "monetary": 70 + n}
        }
        await producer.send(RFM_UPDATED, framed(schema_id, record), f"{merchant_id}:{customer_id}".encode())
    await producer.flush()
    letters = await read_topic(tansu, DEAD_LETTER, lambda r: r.key in keys, POISON)
    assert {dict(letter.headers)["error_kind"] for letter in letters} == {b"unknown_schema"}

    listed = await core(worker_env, "dlq", "list", "--reason", "unknown_schema", "--since", since)
    mine = [
        json.loads(line) for line in listed.splitlines() if json.loads(line)["key"].startswith(merchant_id)
    ]
    assert len(mine) == POISON and {item["source_topic"] for item in mine} == {RFM_UPDATED}

    async with aiohttp.ClientSession() as http:
        params = {"merchant_id": merchant_id, "reason": "unknown_schema", "limit": "500"}
        async with http.get(f"{worker.url}/core/v1/admin/dlq", params=params) as response:
            assert response.status == 200
            listed_api = (await response.json())["dead_letters"]
        other = {"merchant_id": str(uuid.uuid4())}
        async with http.get(f"{worker.url}/core/v1/admin/dlq", params=other) as response:
            assert (await response.json())["dead_letters"] == []  # another merchant sees none of them
        bad = {"merchant_id": merchant_id, "since": "yesterday"}
        async with http.get(f"{worker.url}/core/v1/admin/dlq", params=bad) as response:
            assert response.status == 400 and (await response.json())["error"]["field"] == "since"
    assert sorted(item["ref"] for item in listed_api) == sorted(item["ref"] for item in mine)

    # The fix: the producer's schema reaches the registry, under the id its records carry.
    async with aiohttp.ClientSession() as http:
        subject = f"{registry_url}/subjects/{RFM_UPDATED}-value/versions"
        async with http.post(subject, json={"schema": json.dumps(v2_schema())}) as response:
            assert response.status == 200, await response.text()
            assert (await response.json())["id"] == schema_id

    shown = json.loads(await core(worker_env, "dlq", "show", mine[0]["ref"]))
    assert (
        shown["payload"]["merchant_id"] == merchant_id and shown["headers"]["error_kind"] == "unknown_schema"
    )

    first = json.loads(
        await core(worker_env, "dlq", "replay", "--reason", "unknown_schema", "--since", since)
    )
    assert first == {"matched": POISON, "replayed": POISON, "already_replayed": 0}

    async def applied_once() -> bool:
        rows = customer_rows(settings, merchant_id)
        return all(
            rows[c]["version"] == 1
            and rows[c]["rfm_score"] == {"recency": 7, "frequency": n, "monetary": 70 + n}
            for n, c in enumerate(customers)
        )

    await eventually(applied_once)
    second = json.loads(
        await core(worker_env, "dlq", "replay", "--reason", "unknown_schema", "--since", since)
    )
    assert second == {"matched": POISON, "replayed": 0, "already_replayed": POISON}
    await asyncio.sleep(2)  # anything re-applied would have moved a version by now
    assert await applied_once()
    reads = await rest_states(worker, merchant_id, customers)
    assert all(reads["rest"][c][2] == 1 and reads["rest"][c][3] == "table" for c in customers)
    again = await read_topic(tansu, DEAD_LETTER, lambda r: r.key in keys, POISON)
    assert len(again) == POISON  # nothing was dead-lettered a second time

    with pg(settings) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT action, count(*) FROM audit_logs WHERE actor = 'cli:test' AND action LIKE 'dlq.%%'"
            " AND created_at >= %s GROUP BY action",
            (since.replace("+00:00", ""),),
        )
        assert dict(cur.fetchall()) == {"dlq.list": 1, "dlq.show": 1, "dlq.replay": 2}
