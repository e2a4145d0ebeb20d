"""The nemeses, and the seeded schedule that orders them.

Each nemesis breaks one thing the way production does and returns what it measured besides the time
to recover (which the run measures after it): the churn step its rebalance times.
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING

from aiokafka import AIOKafkaProducer

from tests.chaos.model import KeyState
from tests.chaos.verifier import pg_states

if TYPE_CHECKING:
    from tests.chaos.run import Chaos

KINDS = ("kill_worker", "churn", "kill_sink", "broker_wipe", "pg_restart", "redis_restart")


def schedule(seed: int, counts: dict[str, int]) -> list[str]:
    """Every kind its count of times, in an order drawn from the seed; two wipes never in a row."""
    rng = random.Random(seed)
    order = [kind for kind, count in counts.items() for _ in range(count)]
    for _ in range(1000):
        rng.shuffle(order)
        if all(pair != ("broker_wipe", "broker_wipe") for pair in pairwise(order)):
            break
    return order


async def kill_worker(chaos: Chaos) -> dict[str, float]:
    """SIGKILL a random worker; a supervisor starts it again under the same name 2 s later."""
    victim = chaos.rng.choice(chaos.stack.cluster.workers)
    chaos.stack.cluster.kill(victim, signal.SIGKILL)
    await asyncio.sleep(2)
    chaos.stack.cluster.start(victim.name)
    return {}


async def churn(chaos: Chaos) -> dict[str, float]:
    """A scale-down and a scale-up (3 -> 2 -> 3): one worker leaves for good (SIGTERM), a new one joins.
    Each step's rebalance time is until every remaining worker holds a stable assignment again."""
    cluster = chaos.stack.cluster
    cluster.kill(chaos.rng.choice(cluster.workers), signal.SIGTERM)
    down = await rebalanced(chaos, time.monotonic())
    started = time.monotonic()
    cluster.start(chaos.stack.next_name())
    return {"rebalance_down": down, "rebalance_up": await rebalanced(chaos, started)}


async def rebalanced(chaos: Chaos, since: float) -> float:
    """Seconds from `since` until every worker is ready again (a stable assignment, D116), once the
    rebalance began (a worker not ready, looked for up to 10 s: a worker stays ready until its
    heartbeat learns of the rebalance); -1 if not within the timeout."""
    cluster = chaos.stack.cluster
    while time.monotonic() - since < 10 and await cluster.ready_count() == len(cluster.workers):
        await asyncio.sleep(0.2)
    try:
        await cluster.all_ready(timeout=chaos.config.recover_timeout)
    except (AssertionError, RuntimeError):
        return -1.0
    return time.monotonic() - since


async def kill_sink(chaos: Chaos) -> dict[str, float]:
    chaos.stack.kill_sink()
    await asyncio.sleep(1)
    chaos.stack.start_sink()
    return {}


async def pg_restart(chaos: Chaos) -> dict[str, float]:
    """PostgreSQL goes away (an immediate stop, as a crash or failover) and comes back 3 s later."""
    await asyncio.to_thread(chaos.stack.pg.stop, "immediate")
    await asyncio.sleep(3)
    await asyncio.to_thread(chaos.stack.pg.start)
    return {}


async def redis_restart(chaos: Chaos) -> dict[str, float]:
    """Redis stops and comes back on its port 2 s later with what its AOF kept."""
    chaos.stack.redis.stop()
    await asyncio.sleep(2)
    chaos.stack.redis.start()
    return {}


async def broker_wipe(chaos: Chaos) -> dict[str, float]:
    """The broker restarts empty (Tansu in memory, D231). The load pauses (its producer cannot send to
    a broker that is not there); every key's expectation is rebased on what PostgreSQL holds once
    the sink can write no more (D246); the topics are provisioned again, and the load resumes."""
    generator, stack = chaos.generator, chaos.stack
    generator.paused.set()
    await generator.drain()
    if generator.producer is not None:
        await generator.producer.stop()
        generator.producer = None
    stack.tansu.stop()
    rows = await settled_rows(chaos)
    chaos.log.rebase(dict(rows))
    chaos.readers.log.wiped({key: state.version for key, state in rows.items()})
    stack.tansu.start()
    started = time.monotonic()
    await stack.recreate_topics()
    generator.producer = await new_producer(stack.tansu.bootstrap)
    generator.paused.clear()
    return {"kafka_data_down": await kafka_data_down(chaos, started)}


async def kafka_data_down(chaos: Chaos, since: float, limit: float = 30.0) -> float:
    """Seconds until a worker's /health names `kafka_data` DOWN (D115), so that the recovery after
    the wipe is measured from the rebuild, not from a worker that has not noticed yet; -1 if none
    did within `limit`."""
    while time.monotonic() - since < limit:
        if any("kafka_data" in failing for failing in await chaos.stack.unhealthy()):
            return time.monotonic() - since
        await asyncio.sleep(0.5)
    return -1.0


async def settled_rows(chaos: Chaos) -> dict[tuple[str, str], KeyState]:
    """PostgreSQL's rows once two reads 1 s apart agree (the sink may finish a batch it had fetched)."""
    previous: dict[tuple[str, str], KeyState] | None = None
    for _ in range(15):
        rows = await asyncio.to_thread(pg_states, chaos.stack.settings, chaos.merchants)
        if rows == previous:
            return rows
        previous = rows
        await asyncio.sleep(1)
    raise AssertionError("PostgreSQL kept changing after the broker was stopped")


async def new_producer(bootstrap: str) -> AIOKafkaProducer:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all")
    await producer.start()
    return producer


NEMESES: dict[str, Callable[[Chaos], Awaitable[dict[str, float]]]] = {
    "kill_worker": kill_worker,
    "churn": churn,
    "kill_sink": kill_sink,
    "broker_wipe": broker_wipe,
    "pg_restart": pg_restart,
    "redis_restart": redis_restart,
}


@dataclass
class Outcome:
    kind: str
    at: float  # seconds into the run
    recovered_in: float
    measured: dict[str, float]
    unhealthy: list[str]  # probes still failing at the recovery timeout (empty: recovered)
    restarted: list[str]  # processes that exited and were started again meanwhile
