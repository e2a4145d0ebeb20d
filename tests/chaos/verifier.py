"""The independent verifier: after quiescence, every key's expected state (tests/chaos/model.py, from
the generator's log) against every copy the service keeps of it.

Copies: each worker's table over the API (REST: the whole view; gRPC: score and version), the
PostgreSQL row, and the Redis cache entry where one exists. Per key, the worst copy decides:
- regressed: a copy below the version PostgreSQL held at the key's base (its creation, or the last
  broker wipe): state that had been persisted went back;
- lost: a copy below the expected version, or missing: an acknowledged event of the current broker
  epoch did not land;
- diverged: anything else that differs (a version above the expected one, or the right version with
  other values).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field

import aiohttp
import orjson
import psycopg2.extras
from grpclib.client import Channel
from redis.asyncio import Redis

from core_app.rpc.generated.core.v1.core_grpc import CoreServiceStub
from core_app.settings import Settings
from tests.chaos.model import KeyState, Log
from tests.support.db import pg
from tests.support.processes import WorkerProcess
from tests.support.readers import grpc_read

Key = tuple[str, str]
READ_CONCURRENCY = 16
RANK = {"ok": 0, "diverged": 1, "lost": 2, "regressed": 3}


@dataclass
class Verdict:
    keys: int = 0
    worst: dict[Key, str] = field(default_factory=dict)  # the worst class per key that is not ok
    by_copy: Counter[str] = field(default_factory=Counter)  # "worker rest lost", "pg diverged", ...
    examples: list[str] = field(default_factory=list)
    example_keys: list[Key] = field(default_factory=list)
    histories: list[str] = field(default_factory=list)  # the timelines of the first examples
    cached: int = 0  # Redis entries compared

    def count(self, kind: str) -> int:
        return sum(1 for worst in self.worst.values() if worst == kind)

    def note(self, key: Key, copy: str, kind: str, got: object, want: KeyState) -> None:
        if kind == "ok":
            return
        self.by_copy[f"{copy} {kind}"] += 1
        if RANK[kind] > RANK[self.worst.get(key, "ok")]:
            self.worst[key] = kind
        if len(self.examples) < 8:
            self.examples.append(f"{key[1]} {copy} {kind}: got {got} want {want}")
            if key not in self.example_keys:
                self.example_keys.append(key)

    def line(self) -> str:
        return (
            f"ALL-RECORDS-DELIVERED keys={self.keys} lost={self.count('lost')} "
            f"regressed={self.count('regressed')} diverged={self.count('diverged')}"
        )

    @property
    def clean(self) -> bool:
        return not self.worst


def classify(got: KeyState | None, want: KeyState, floor: int, version_only: bool = False) -> str:
    if got is None:
        return "lost"
    if got.version < floor:
        return "regressed"
    if got.version < want.version:
        return "lost"
    if version_only:
        same = (got.version, got.rfm) == (want.version, want.rfm)
    else:
        same = got == want
    return "ok" if same else "diverged"


def pg_states(settings: Settings, merchants: list[str]) -> dict[Key, KeyState]:
    with pg(settings) as conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
        cur.execute(
            """SELECT merchant_id::text AS merchant_id, id::text AS id, rfm_score, metadata, version,
                      redacted_at FROM customers WHERE merchant_id = ANY(%s::uuid[])""",
            (merchants,),
        )
        return {
            (row["merchant_id"], row["id"]): KeyState.of_view(row, redacted=row["redacted_at"] is not None)
            for row in cur.fetchall()
        }


async def api_states(workers: list[WorkerProcess], keys: list[Key]) -> dict[tuple[str, str], dict]:
    """(worker name, transport) -> key -> KeyState or None (a failed read counts as a missing copy)."""
    found: dict[tuple[str, str], dict] = {(w.name, t): {} for w in workers for t in ("rest", "grpc")}
    gate = asyncio.Semaphore(READ_CONCURRENCY)
    channels = {w.name: Channel("127.0.0.1", w.grpc_port) for w in workers}
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:

            async def rest(worker: WorkerProcess, key: Key) -> None:
                params = {"merchant_id": key[0], "customer_id": key[1]}
                async with gate:
                    try:
                        async with http.get(f"{worker.url}/core/v1/customers", params=params) as response:
                            body = await response.json() if response.status == 200 else None
                    except (aiohttp.ClientError, TimeoutError):
                        body = None
                found[(worker.name, "rest")][key] = KeyState.of_view(body) if body else None

            async def grpc(worker: WorkerProcess, key: Key) -> None:
                async with gate:
                    answer = await grpc_read(CoreServiceStub(channels[worker.name]), *key)
                if isinstance(answer, str):
                    found[(worker.name, "grpc")][key] = None
                    return
                score = answer[0]
                rfm = (score["recency"], score["frequency"], score["monetary"]) if score else None
                found[(worker.name, "grpc")][key] = KeyState(answer[1], rfm)

            await asyncio.gather(*(call(w, k) for w in workers for k in keys for call in (rest, grpc)))
    finally:
        for channel in channels.values():
            channel.close()
    return found


async def redis_states(settings: Settings, port: int, keys: list[Key]) -> dict[Key, KeyState]:
    redis = Redis(port=port)
    try:
        names = [f"{settings.redis_key_prefix}customer:{m}:{c}" for m, c in keys]
        values = []
        for start in range(0, len(names), 1000):
            values += await redis.mget(names[start : start + 1000])
    finally:
        await redis.aclose()
    return {
        key: KeyState.of_view(orjson.loads(value)) for key, value in zip(keys, values, strict=True) if value
    }


async def verify(
    log: Log,
    settings: Settings,
    redis_port: int,
    workers: list[WorkerProcess],
    merchants: list[str],
    final: bool = False,
) -> Verdict:
    """One full comparison of every key and copy (while PostgreSQL trails, only PostgreSQL's unless
    this is the `final` one, whose report names every copy)."""
    keys = list(log.keys)
    verdict = Verdict(keys=len(keys))
    rows = await asyncio.to_thread(pg_states, settings, merchants)
    for key in keys:
        want, floor = log.keys[key].expected(), log.keys[key].floor
        verdict.note(key, "pg", classify(rows.get(key), want, floor), rows.get(key), want)
    if not verdict.clean and not final:
        return verdict  # PostgreSQL trails: no need to read the rest yet
    for (name, transport), states in (await api_states(workers, keys)).items():
        for key in keys:
            want, floor = log.keys[key].expected(), log.keys[key].floor
            got = states.get(key)
            kind = classify(got, want, floor, version_only=transport == "grpc")
            verdict.note(key, f"worker {transport}", kind, (name, got), want)
    cached = await redis_states(settings, redis_port, keys)
    verdict.cached = len(cached)
    for key, got in cached.items():
        want, floor = log.keys[key].expected(), log.keys[key].floor
        verdict.note(key, "redis", classify(got, want, floor), got, want)
    return verdict


async def verify_quiesced(
    log: Log,
    settings: Settings,
    redis_port: int,
    workers: list[WorkerProcess],
    merchants: list[str],
    timeout: float,
) -> tuple[Verdict, float]:
    """`verify` again until it is clean or `timeout` passes: (the last verdict, seconds taken)."""
    started = time.monotonic()
    while True:
        verdict = await verify(log, settings, redis_port, workers, merchants)
        if verdict.clean:
            return verdict, time.monotonic() - started
        if time.monotonic() - started > timeout:
            verdict = await verify(log, settings, redis_port, workers, merchants, final=True)
            verdict.histories = await asyncio.to_thread(timelines, settings, verdict.example_keys[:3])
            return verdict, time.monotonic() - started
        await asyncio.sleep(2)


def timelines(settings: Settings, keys: list[Key]) -> list[str]:
    """The PostgreSQL timeline of each key (version, kind, source, event): how a diverged row got there."""
    lines = []
    with pg(settings) as conn, conn.cursor() as cur:
        for merchant_id, customer_id in keys:
            cur.execute(
                """SELECT version, kind, source, event_id, recorded_at::time FROM customer_timeline
                    WHERE merchant_id = %s AND customer_id = %s ORDER BY version""",
                (merchant_id, customer_id),
            )
            lines.append(f"{customer_id} timeline: " + "; ".join(map(str, cur.fetchall())))
    return lines
