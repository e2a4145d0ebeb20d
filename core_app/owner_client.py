"""The partition owner of a key (the OwnerClient port, core_app/services/ports.py): reads answered by
the worker that owns the key, over the internal HTTP route, and writes sent to its agent.

A command goes through Kafka keyed like the table, so it lands on the owner's partition whatever
worker received the request. The reply comes back on a Redis channel named for the request; the
caller subscribes before sending, so it cannot miss it.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import aiohttp

from core_app import metrics
from core_app.app import app
from core_app.domain.command_reply import raise_for_error
from core_app.domain.customer import customer_key
from core_app.domain.errors import Unavailable
from core_app.recovery import tables_serving, wait_serving
from core_app.routing import partition_owner, same_worker, table_partition
from core_app.runtime import Runtime
from core_app.services.ports import EventPublisher
from tables.customers import local_view

REPLY_TIMEOUT = 15.0


async def ask_owner(
    runtime: Runtime, publisher: EventPublisher, topic: str, key: str, command: dict[str, Any]
) -> dict[str, Any]:
    """Send `command` on the topic named `topic` keyed `key`; the owner's result, or the domain error
    it reports. Raises Unavailable when no reply comes within REPLY_TIMEOUT.
    """
    request_id = str(uuid.uuid4())
    channel = runtime.redis_key(f"reply:{request_id}")
    pubsub = runtime.redis.pubsub()
    await pubsub.subscribe(channel)
    try:
        body = command | {"request_id": request_id, "reply_to": channel, "key": key}
        await publisher.publish(topic, key, json.dumps(body).encode())
        async with asyncio.timeout(REPLY_TIMEOUT):
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is not None:
                    return raise_for_error(json.loads(message["data"]))
    except TimeoutError:
        raise Unavailable(f"the owner of {key} did not answer within {REPLY_TIMEOUT:.0f}s") from None
    finally:
        await pubsub.unsubscribe(channel)
        await pubsub.aclose()


async def owner_get(runtime: Runtime, owner: str, path: str) -> dict[str, Any] | None:
    """The owner's table value, or None when it has none or cannot be reached in time (counted)."""
    return (await owner_lookup(runtime, owner, path))[1]


async def owner_lookup(runtime: Runtime, owner: str, path: str) -> tuple[str, dict[str, Any] | None]:
    """("found", value), ("absent", None) when the owner's table has no such key, or (why, None) when
    the owner could not answer: its HTTP status or the client error's name (counted)."""
    try:
        async with runtime.peers().get(f"{owner.rstrip('/')}{path}") as response:
            if response.status == 200:
                return "found", dict(await response.json())
            if response.status == 404:
                return "absent", None
            metrics.owner_read_errors.labels(str(response.status)).inc()
            return f"owner answered {response.status}", None
    except (aiohttp.ClientError, TimeoutError) as exc:
        metrics.owner_read_errors.labels(type(exc).__name__).inc()
        return f"owner unreachable ({type(exc).__name__})", None


RECOVERING = "partition recovering"


class TableOwnerClient:
    """OwnerClient on Faust's assignment: this worker's table when it owns the key's partition, the
    owner's internal route otherwise; commands go through Kafka keyed like the table."""

    def __init__(self, runtime: Runtime, publisher: EventPublisher) -> None:
        self.runtime = runtime
        self.publisher = publisher
        self._this_worker: dict[str, bool] = {}  # owner URL -> is it this worker (a handful)

    def _is_this_worker(self, owner: str) -> bool:
        mine = self._this_worker.get(owner)
        if mine is None:
            mine = self._this_worker[owner] = same_worker(owner, self.runtime.settings.web_url)
        return mine

    async def table_read(self, merchant_id: str, customer_id: str) -> tuple[str, dict[str, Any] | None]:
        partition = table_partition(app, "customers", customer_key(merchant_id, customer_id))
        owner = partition_owner(app, "customers", partition)
        if owner is None or self._is_this_worker(owner):
            if not tables_serving(app):
                return RECOVERING, None
            view = local_view(merchant_id, customer_id, partition, active=owner is not None)
            return ("table", view) if view is not None else ("absent", None)
        path = f"/internal/v1/customers/{merchant_id}/{customer_id}"
        outcome, view = await owner_lookup(self.runtime, owner, path)
        return ("owner", view) if view is not None else (outcome, None)

    async def wait(self, why: str, seconds: float) -> None:
        if why == RECOVERING:
            await wait_serving(app, min(seconds, 0.5))
        else:
            await asyncio.sleep(min(seconds, 0.2))

    async def ask(self, topic: str, key: str, command: dict[str, Any]) -> dict[str, Any]:
        return await ask_owner(self.runtime, self.publisher, topic, key, command)
