"""Helpers for the live-update tests: stream clients and `core.updates` messages."""

from __future__ import annotations

import asyncio
import json
import secrets
import uuid
from typing import Any

import aiohttp
from aiokafka import AIOKafkaProducer

from core_app.topics import UPDATES
from tests.support.processes import WorkerProcess, eventually, metric


def stream_url(worker: WorkerProcess, merchant_id: str) -> str:
    return f"ws://127.0.0.1:{worker.http_port}/core/v1/updates/stream?merchant_id={merchant_id}"


def progress(merchant_id: str, import_id: str, processed: int, padding: int = 0) -> dict[str, Any]:
    message: dict[str, Any] = {
        "type": "import.progress",
        "merchant_id": merchant_id,
        "import_id": import_id,
        "source": "shopify",
        "status": "processing",
        "processed": processed,
        "succeeded": processed,
        "failed": 0,
        "total": 10_000,
        "created_at": "2026-01-01T00:00:00.000Z",
    }
    if padding:  # random, so that no compression shrinks it
        message["error_log"] = [{"row": processed, "error": secrets.token_hex(padding // 2)}]
    return message


async def produce_updates(producer: AIOKafkaProducer, messages: list[dict[str, Any]]) -> None:
    """Publish to `core.updates` like the import agent: JSON, keyed by merchant_id."""
    futures = [
        await producer.send(UPDATES, key=m["merchant_id"].encode(), value=json.dumps(m).encode())
        for m in messages
    ]
    await asyncio.gather(*futures)


async def open_stream(
    http: aiohttp.ClientSession, worker: WorkerProcess, merchant_id: str
) -> aiohttp.ClientWebSocketResponse:
    ws = await http.ws_connect(stream_url(worker, merchant_id))
    first = await ws.receive_json(timeout=10)
    assert first == {"type": "subscribed", "merchant_id": merchant_id}
    return ws


async def next_of_type(ws: aiohttp.ClientWebSocketResponse, kind: str, timeout: float = 30.0) -> dict:
    """The next message of `kind` on a stream (others are skipped)."""

    async def receive() -> dict:
        while True:
            message = await ws.receive_json()
            if message["type"] == kind:
                return message

    return await asyncio.wait_for(receive(), timeout)


async def wait_subscribers(worker: WorkerProcess, transport: str, at_least: int) -> None:
    """Until the worker's hub holds `at_least` subscriptions of `transport` (they are then live)."""

    async def enough() -> bool:
        return await metric(worker, "core_fanout_subscribers", transport=transport) >= at_least

    await eventually(enough, timeout=30)


def new_id() -> str:
    return str(uuid.uuid4())
