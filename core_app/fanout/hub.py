"""In-process fan-out: one update to every matching client of this worker, never waiting on any.

Each subscription has a bounded queue. Dispatch only does `put_nowait`; a subscription whose queue is
full is dropped at once (removed, marked `dropped`, its `on_drop` called), so a slow client can
neither block the consumer nor delay the others. The transport then closes the client's socket.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import Counter, Gauge

from core_app.domain.errors import Unavailable
from core_app.fanout.messages import Update

log = logging.getLogger(__name__)

subscribers = Gauge("core_fanout_subscribers", "Live-update subscriptions on this worker", ["transport"])
delivered = Counter("core_fanout_delivered_total", "Updates queued for a client", ["transport"])
dropped = Counter("core_fanout_dropped_total", "Clients dropped for falling behind", ["transport"])


@dataclass(frozen=True, slots=True)
class UpdateFilter:
    """Which updates a subscription wants: one merchant's, optionally narrowed."""

    merchant_id: str
    types: frozenset[str] | None = None  # None: every type
    customer_id: str | None = None
    import_id: str | None = None

    def matches(self, update: Update) -> bool:
        if update.get("merchant_id") != self.merchant_id:
            return False
        if self.types is not None and update.get("type") not in self.types:
            return False
        if self.customer_id is not None and update.get("customer_id") != self.customer_id:
            return False
        return self.import_id is None or update.get("import_id") == self.import_id


class Subscription:
    """One client's updates, as an async iterator that ends when the subscription is closed or dropped."""

    def __init__(
        self,
        hub: FanoutHub,
        update_filter: UpdateFilter,
        transport: str,
        maxsize: int,
        on_drop: Callable[[], None] | None = None,
    ) -> None:
        self.hub = hub
        self.filter = update_filter
        self.transport = transport
        self.on_drop = on_drop
        self.dropped = False
        self.taken = 0  # updates the client has taken from its queue: shows it is making progress
        self.ended = asyncio.Event()
        self._queue: asyncio.Queue[Update | None] = asyncio.Queue(maxsize)

    def offer(self, update: Update) -> bool:
        """Queue `update` without waiting; False when the client is too far behind."""
        try:
            self._queue.put_nowait(update)
        except asyncio.QueueFull:
            return False
        return True

    def end(self, dropped_for_lag: bool = False) -> None:
        """Stop delivering (idempotent). A reader waiting on an empty queue is woken."""
        if self.ended.is_set():
            return
        self.dropped = dropped_for_lag
        self.ended.set()
        if self._queue.empty():
            self._queue.put_nowait(None)

    def close(self) -> None:
        """The client went away: unsubscribe."""
        self.hub.unsubscribe(self)
        self.end()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Update:
        if self.ended.is_set():
            raise StopAsyncIteration
        update = await self._queue.get()
        if update is None or self.ended.is_set():
            raise StopAsyncIteration
        self.taken += 1
        return update

    @property
    def backlog(self) -> int:
        return self._queue.qsize()


class FanoutHub:
    def __init__(self, queue_size: int) -> None:
        self.queue_size = queue_size
        self._by_merchant: dict[str, set[Subscription]] = {}

    def subscribe(
        self, update_filter: UpdateFilter, transport: str, on_drop: Callable[[], None] | None = None
    ) -> Subscription:
        subscription = Subscription(self, update_filter, transport, self.queue_size, on_drop)
        self._by_merchant.setdefault(update_filter.merchant_id, set()).add(subscription)
        subscribers.labels(transport).inc()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        merchant_id = subscription.filter.merchant_id
        group = self._by_merchant.get(merchant_id)
        if group is None or subscription not in group:
            return
        group.discard(subscription)
        if not group:
            del self._by_merchant[merchant_id]
        subscribers.labels(subscription.transport).dec()

    def watches(self, merchant_id: str | None) -> bool:
        """Whether any client here wants this merchant's updates (None: unknown, so maybe)."""
        return merchant_id is None or merchant_id in self._by_merchant

    def dispatch(self, update: Update) -> int:
        """Queue `update` for every matching subscription; returns how many took it."""
        taken = 0
        for subscription in list(self._by_merchant.get(update.get("merchant_id") or "", ())):
            if not subscription.filter.matches(update):
                continue
            if subscription.offer(update):
                taken += 1
                delivered.labels(subscription.transport).inc()
            else:
                self._drop(subscription)
        return taken

    def _drop(self, subscription: Subscription) -> None:
        self.unsubscribe(subscription)
        subscription.end(dropped_for_lag=True)
        dropped.labels(subscription.transport).inc()
        log.warning(
            "live-update client dropped: too far behind",
            extra={"transport": subscription.transport, "merchant_id": subscription.filter.merchant_id},
        )
        if subscription.on_drop is not None:
            try:
                subscription.on_drop()
            except Exception:
                log.exception("on_drop callback failed")

    def behind(self, backlog: int) -> list[Subscription]:
        """Subscriptions with more than `backlog` updates queued."""
        return [sub for group in self._by_merchant.values() for sub in group if sub.backlog > backlog]

    def close_all(self) -> None:
        """Worker shutdown: end every subscription so the transports close their sockets."""
        for group in list(self._by_merchant.values()):
            for subscription in list(group):
                subscription.close()


_current: FanoutHub | None = None


def set_hub(hub: FanoutHub | None) -> None:
    global _current
    _current = hub


def get_hub() -> FanoutHub:
    if _current is None:
        raise Unavailable("live updates are not available yet (worker starting)")
    return _current
