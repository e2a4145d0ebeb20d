"""Security news every worker must hear within a second: a data key shredded (its cached copies go),
a client address blocked for failed authentications. One Redis pub/sub channel (docs/decisions.md
D183, D184).

Pub/sub delivers to whoever is subscribed at that moment and keeps nothing. A worker whose
subscription broke (Redis restarted, a network blip) may have missed news, so every (re)subscription
runs the `on_resubscribe` hooks, which drop what could be stale: the data-key cache is emptied. In a
Redis Cluster, PUBLISH reaches the subscribers of every node, so any node will do for the listener.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

from redis.exceptions import RedisError

from core_app.security import metrics

log = logging.getLogger(__name__)

CHANNEL = "security:broadcast"
RECONNECT_DELAY = 0.5  # seconds between subscription attempts while Redis is away
POLL = 1.0  # seconds a read waits for a message (the socket timeout must not fire first)

Handler = Callable[[dict[str, Any]], None]


class SecurityBroadcast:
    def __init__(self, redis: Any, prefix: str = "") -> None:
        self.redis = redis
        self.channel = f"{prefix}{CHANNEL}"
        self._handlers: dict[str, list[Handler]] = {}
        self._resubscribe: list[Callable[[], None]] = []
        self._task: asyncio.Task[None] | None = None
        self.subscribed = asyncio.Event()

    def on(self, kind: str, handler: Handler) -> None:
        self._handlers.setdefault(kind, []).append(handler)

    def on_resubscribe(self, hook: Callable[[], None]) -> None:
        self._resubscribe.append(hook)

    async def publish(self, kind: str, **fields: str | float) -> None:
        """Tell every worker (this one too). Raises RedisError/OSError: the caller retries or reports."""
        await self.redis.publish(self.channel, json.dumps({"kind": kind, **fields}))
        metrics.broadcasts.labels(kind, "sent").inc()

    def start(self) -> None:
        """Listen in the background (inside the running loop); idempotent."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._listen(), name="security-broadcast")

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _listen(self) -> None:
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                while True:
                    message = await pubsub.get_message(timeout=POLL)
                    if message is not None:
                        self._receive(message)
            except (RedisError, OSError) as exc:
                self.subscribed.clear()
                metrics.broadcasts.labels("subscription", "lost").inc()
                log.warning("security broadcast unsubscribed; retrying", extra={"error": str(exc)})
                await asyncio.sleep(RECONNECT_DELAY)
            finally:
                try:
                    await pubsub.aclose()
                except (RedisError, OSError):
                    pass

    def _receive(self, message: dict[str, Any]) -> None:
        if message["type"] == "subscribe":
            for hook in self._resubscribe:  # news may have gone by while unsubscribed
                hook()
            self.subscribed.set()
            return
        if message["type"] != "message":
            return
        try:
            news = json.loads(message["data"])
            handlers = self._handlers.get(news["kind"], [])
        except (ValueError, KeyError, TypeError):
            log.warning("unreadable security broadcast ignored")
            return
        for handler in handlers:
            try:
                handler(news)
            except (KeyError, TypeError, ValueError):
                log.warning("malformed security broadcast ignored", extra={"kind": news.get("kind")})
        metrics.broadcasts.labels(str(news["kind"]), "received").inc()
