"""Send a write to the agent that owns the key and wait for its reply (Redis pub/sub).

The command goes through Kafka keyed like the table, so it lands on the owner's partition whatever
worker received the request. The reply comes back on a Redis channel named for the request; the
caller subscribes before sending, so it cannot miss it.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from faust.types import TopicT

from core_app.domain.errors import Conflict, NotFound, Unavailable, ValidationFailed
from core_app.runtime import get_runtime

REPLY_TIMEOUT = 15.0


async def ask_owner(topic: TopicT, key: str, command: dict[str, Any]) -> dict[str, Any]:
    """Send `command` on `topic` keyed `key`; the owner's result, or the domain error it reports.

    Raises Unavailable when no reply comes within REPLY_TIMEOUT.
    """
    runtime = get_runtime()
    request_id = str(uuid.uuid4())
    channel = runtime.redis_key(f"reply:{request_id}")
    pubsub = runtime.redis.pubsub()
    await pubsub.subscribe(channel)
    try:
        body = command | {"request_id": request_id, "reply_to": channel, "key": key}
        await topic.send(key=key, value=json.dumps(body).encode())
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


def raise_for_error(reply: dict[str, Any]) -> dict[str, Any]:
    if reply.get("ok"):
        return dict(reply["result"])
    field, message = reply.get("field") or "request", reply.get("message", "")
    reason = message.split(": ", 1)[-1]
    match reply.get("kind"):
        case "invalid":
            raise ValidationFailed(field, reason)
        case "not_found":
            raise NotFound(field, message)
        case "conflict":
            raise Conflict(field, reason)
    raise RuntimeError(f"the owner failed the command: {message}")
