"""Shopify's two rate limits, as the fake enforces them.

REST: a leaky bucket per shop and app, 40 requests deep, leaking 2 per second (standard plans); a
request into a full bucket is answered 429 with `Retry-After`. GraphQL: a cost bucket of 1,000
points restoring 50 per second; a query costing more than what is available is answered THROTTLED.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field


@dataclass
class LeakyBucket:
    capacity: float = 40
    leak_per_second: float = 2.0
    level: float = 0.0
    stamp: float = field(default_factory=time.monotonic)
    refused: int = 0  # how many requests were answered 429 (tests assert none in steady state)

    def _leak(self) -> None:
        now = time.monotonic()
        self.level = max(0.0, self.level - (now - self.stamp) * self.leak_per_second)
        self.stamp = now

    def take(self, cost: float = 1.0) -> tuple[bool, float]:
        """(admitted, seconds to wait before retrying when not)."""
        self._leak()
        if self.level + cost > self.capacity:
            self.refused += 1
            return False, (self.level + cost - self.capacity) / self.leak_per_second
        self.level += cost
        return True, 0.0

    @property
    def used(self) -> int:
        self._leak()
        return math.ceil(self.level)

    def header(self) -> str:
        return f"{self.used}/{int(self.capacity)}"


@dataclass
class CostBucket:
    maximum: float = 1000.0
    restore_rate: float = 50.0
    available: float = 1000.0
    stamp: float = field(default_factory=time.monotonic)
    throttled: int = 0

    def _restore(self) -> None:
        now = time.monotonic()
        self.available = min(self.maximum, self.available + (now - self.stamp) * self.restore_rate)
        self.stamp = now

    def spend(self, cost: float) -> bool:
        self._restore()
        if cost > self.available:
            self.throttled += 1
            return False
        self.available -= cost
        return True

    def status(self) -> dict[str, float]:
        self._restore()
        return {
            "maximumAvailable": self.maximum,
            "currentlyAvailable": math.floor(self.available),
            "restoreRate": self.restore_rate,
        }
