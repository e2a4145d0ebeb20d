"""The chaos run's keyed generator and its log: what was acknowledged, per key, and what that means.

The generator is deterministic from the seed: which key and which source each step picks, and the
values it sends (derived from the step). It records an event only once the broker acknowledged it.
The model is independent of the service's code: per key a base (the state at creation, or the
PostgreSQL row when the broker was wiped, docs/decisions.md D246) plus the acknowledged events since.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

from aiokafka import AIOKafkaProducer

from core_app.events.codec import EventCodec
from tests.support.events import at, gdpr, points, referral, rfm

SOURCES = ("rfm", "points", "referral")
WEIGHTS = (45, 35, 20)  # rfm, points, referral: a step picks one by these odds


@dataclass(frozen=True)
class KeyState:
    """The part of a customer the verifier compares: one copy (API, PostgreSQL, Redis) or expected."""

    version: int
    rfm: tuple[int, int, int] | None = None
    points: int | None = None
    referrals: int | None = None
    redacted: bool = False

    @classmethod
    def of_view(cls, view: dict[str, Any], redacted: bool | None = None) -> KeyState:
        """From the public view (REST, Redis) or a PostgreSQL row (`redacted` from `redacted_at`)."""
        score = view.get("rfm_score") or {}
        rfm_value = (score["recency"], score["frequency"], score["monetary"]) if score else None
        metadata = view.get("metadata") or {}
        balance = (metadata.get("points") or {}).get("balance")
        total = (metadata.get("referrals") or {}).get("total")
        gone = bool(view.get("redacted")) if redacted is None else redacted
        return cls(int(view["version"]), rfm_value, balance, total, gone)


@dataclass
class KeyLog:
    """One key: its base and the acknowledged events applied on top of it since."""

    base: KeyState
    floor: int  # the version PostgreSQL held at the base (creation, or the last wipe)
    applied: int = 0
    last: dict[str, Any] = field(default_factory=dict)  # source -> last acknowledged value
    retired: bool = False  # no more events: waiting for, or past, its erasure

    def expected(self) -> KeyState:
        state = replace(self.base, version=self.base.version + self.applied)
        if "rfm" in self.last:
            state = replace(state, rfm=self.last["rfm"])
        if "points" in self.last:
            state = replace(state, points=self.last["points"])
        if "referral" in self.last:
            state = replace(state, referrals=self.last["referral"])
        if "gdpr" in self.last:  # the redaction empties the metadata, keeps the rfm score
            state = replace(state, points=None, referrals=None, redacted=True)
        return state


@dataclass
class Log:
    """Every key of the run and what the generator got acknowledged for it."""

    keys: dict[tuple[str, str], KeyLog] = field(default_factory=dict)
    acked: Counter[str] = field(default_factory=Counter)  # per source
    unacked: Counter[str] = field(default_factory=Counter)  # per reason
    wipes: int = 0

    def add(self, merchant_id: str, customer_id: str, base: KeyState) -> None:
        self.keys[(merchant_id, customer_id)] = KeyLog(base, base.version)

    def rebase(self, rows: dict[tuple[str, str], KeyState | None]) -> None:
        """The broker was wiped: each key starts again from what PostgreSQL held (D246)."""
        self.wipes += 1
        for key, log in self.keys.items():
            row = rows.get(key)
            base = row if row is not None else KeyState(0)
            self.keys[key] = KeyLog(base, base.version, retired=log.retired)

    def active(self) -> list[tuple[str, str]]:
        return [key for key, log in self.keys.items() if not log.retired]


def event_for(step: int, source: str, key: tuple[str, str]) -> tuple[str, dict[str, Any], Any]:
    """(topic, record, the value the model keeps) of one step, from the step alone."""
    merchant_id, customer_id = key
    when = at(step)
    if source == "rfm":
        score = (1 + step % 5, 1 + (step // 5) % 5, 1 + (step // 25) % 5)
        topic, record = rfm(merchant_id, customer_id, score, when)
        return topic, record, score
    if source == "points":
        balance = step % 100_000
        topic, record = points(merchant_id, customer_id, balance, when)
        return topic, record, balance
    if source == "referral":
        total = step % 1000
        topic, record = referral(merchant_id, customer_id, total, when)
        return topic, record, total
    topic, record = gdpr(merchant_id, customer_id, when)
    return topic, record, True


@dataclass
class Generator:
    """Sends `rate` events per second over the log's active keys, chosen by a seeded RNG."""

    codec: EventCodec
    log: Log
    rate: float
    seed: int
    producer: AIOKafkaProducer | None = None
    paused: asyncio.Event = field(default_factory=asyncio.Event)
    step: int = 0
    _rng: random.Random = field(init=False)
    _pending: set[asyncio.Task[None]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    async def run(self) -> None:
        tick, started, sent = 0.05, time.monotonic(), 0
        while True:
            await asyncio.sleep(tick)
            if self.paused.is_set() or self.producer is None:
                started, sent = time.monotonic(), 0
                continue
            owed = int((time.monotonic() - started) * self.rate) - sent
            keys = self.log.active()
            for _ in range(max(0, min(owed, int(self.rate)))):
                key = self._rng.choice(keys)
                source = self._rng.choices(SOURCES, WEIGHTS)[0]
                await self.send(key, source)
                sent += 1

    async def send(self, key: tuple[str, str], source: str) -> None:
        """Send one event; the model counts it when (and only if) the broker acknowledges it."""
        assert self.producer is not None
        self.step += 1
        topic, record, value = event_for(self.step, source, key)
        payload = await self.codec.encode(topic, record)
        try:
            future = await self.producer.send(topic, key=f"{key[0]}:{key[1]}".encode(), value=payload)
        except Exception as exc:
            self.log.unacked[type(exc).__name__] += 1
            return
        task = asyncio.create_task(self._acked(future, key, source, value))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _acked(
        self, future: asyncio.Future[Any], key: tuple[str, str], source: str, value: Any
    ) -> None:
        try:
            await future
        except Exception as exc:
            self.log.unacked[type(exc).__name__] += 1
            return
        keylog = self.log.keys[key]
        keylog.applied += 1
        keylog.last[source] = value
        self.log.acked[source] += 1

    async def drain(self) -> None:
        """Wait until every event sent has been acknowledged or refused."""
        if self.producer is not None:
            await self.producer.flush()
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)
