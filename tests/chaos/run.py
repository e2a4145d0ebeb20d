"""One chaos run: the stack up, the keyed load and the readers on, the seeded nemeses one after the
other (each followed by the time the stack takes to be healthy again), customers created and erased
between them, then quiescence and the verifier. Shared by tests/chaos/test_chaos.py (the short run)
and bench/chaos.py (the long one).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field

import orjson
from redis.asyncio import Redis

from core_app.events.codec import EventCodec
from tests.chaos.creations import create_by_api, create_by_import, erase
from tests.chaos.model import Generator, KeyState, Log
from tests.chaos.nemesis import NEMESES, Outcome, new_producer, schedule
from tests.chaos.reader import KeyReaders
from tests.chaos.stack import Stack
from tests.chaos.verifier import Verdict, verify_quiesced
from tests.support.events import insert_customers, new_merchant


@dataclass
class Config:
    seed: int
    merchants: int
    customers_per_merchant: int
    rate: float  # events per second
    read_rate: float  # reads per second per worker
    counts: dict[str, int]  # nemeses of each kind
    gap: float  # seconds of plain load before each nemesis
    tail: float = 3.0  # seconds of load after the last nemesis
    workers: int = 3
    created_per_step: int = 10  # customers per API creation and per import
    erased_per_step: int = 5
    recover_timeout: float = 90.0
    verify_timeout: float = 60.0

    @staticmethod
    def seed_from_env() -> int:
        """CHAOS_SEED when set, else a new one (printed, so the run can be repeated)."""
        return int(os.environ.get("CHAOS_SEED") or random.SystemRandom().randrange(1, 10**6))


@dataclass
class Chaos:
    config: Config
    stack: Stack
    generator: Generator
    log: Log
    readers: KeyReaders
    merchants: list[str] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    created: Counter[str] = field(default_factory=Counter)  # api, import, erased, failures
    pending_erase: list[tuple[str, str]] = field(default_factory=list)
    rng: random.Random = field(default_factory=random.Random)
    started: float = field(default_factory=time.monotonic)


@dataclass
class Report:
    seed: int
    verdict: Verdict
    reads: dict[str, object]
    outcomes: list[Outcome]
    lines: list[str]


async def run_chaos(config: Config, stack: Stack, codec: EventCodec) -> Report:
    print(f"\nCHAOS seed={config.seed} (CHAOS_SEED={config.seed} repeats this schedule)", flush=True)
    log = Log()
    readers = KeyReaders("", [], config.read_rate)
    generator = Generator(codec, log, config.rate, config.seed)
    chaos = Chaos(config, stack, generator, log, readers, rng=random.Random(config.seed + 1))
    await asyncio.to_thread(stack.start, readers)
    load = asyncio.create_task(generator.run())
    try:
        await populate(chaos)
        await chaos_phase(chaos)
        generator.paused.set()
        await generator.drain()
        verdict, took = await verify_quiesced(
            log,
            stack.settings,
            stack.redis.port,
            stack.cluster.workers,
            chaos.merchants,
            config.verify_timeout,
        )
    finally:
        load.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await load
        await readers.close()
        if generator.producer is not None:
            await generator.producer.stop()
    lines = report_lines(chaos, verdict, took)
    print("\n".join(lines), flush=True)
    return Report(config.seed, verdict, readers.log.summary(), chaos.outcomes, lines)


async def populate(chaos: Chaos) -> None:
    """Merchants and their customers in PostgreSQL, then the workers and the sink, then the load."""
    config, stack = chaos.config, chaos.stack
    for _ in range(config.merchants):
        merchant_id = await asyncio.to_thread(new_merchant, stack.settings)
        chaos.merchants.append(merchant_id)
        people = await asyncio.to_thread(
            insert_customers, stack.settings, merchant_id, config.customers_per_merchant
        )
        for customer_id, _ in people:
            chaos.log.add(merchant_id, customer_id, KeyState(0))
            chaos.readers.keys.append((merchant_id, customer_id))
    await prime_cache(chaos)
    for _ in range(config.workers):
        stack.cluster.start(stack.next_name())
    stack.start_sink()
    _, failing, _ = await stack.recovered(timeout=180)
    assert not failing, f"the stack did not start: {failing}"
    chaos.generator.producer = await new_producer(stack.tansu.bootstrap)


async def prime_cache(chaos: Chaos) -> None:
    """Every customer cached as a fallback read caches it (version 0, 24 h): each persisted change
    must invalidate its entry (D113), so the verifier's Redis comparison has entries to catch."""
    redis = Redis(port=chaos.stack.redis.port)
    try:
        async with redis.pipeline(transaction=False) as pipe:
            for merchant_id, customer_id in chaos.log.keys:
                view = {"id": customer_id, "merchant_id": merchant_id, "rfm_score": {}, "metadata": {}}
                name = f"{chaos.stack.settings.redis_key_prefix}customer:{merchant_id}:{customer_id}"
                pipe.set(name, orjson.dumps(view | {"version": 0, "redacted": False}), ex=24 * 3600)
            await pipe.execute()
    finally:
        await redis.aclose()


STEPS = (create_by_api, erase, create_by_import, erase)  # between nemeses, by turns


async def chaos_phase(chaos: Chaos) -> None:
    plan = schedule(chaos.config.seed, chaos.config.counts)
    print(f"CHAOS schedule: {' '.join(plan)}", flush=True)
    for n, kind in enumerate(plan):
        await asyncio.sleep(chaos.config.gap)
        at = time.monotonic() - chaos.started
        measured = await NEMESES[kind](chaos)
        recovered_in, failing, restarted = await chaos.stack.recovered(chaos.config.recover_timeout)
        chaos.outcomes.append(Outcome(kind, at, recovered_in, measured, failing, restarted))
        state = f"NOT recovered in {recovered_in:.0f}s: {failing}" if failing else "recovered"
        print(f"CHAOS {at:6.1f}s {kind}: {state} in {recovered_in:.1f}s {fmt(measured)}", flush=True)
        if restarted:
            print(f"CHAOS   exited and started again: {restarted}", flush=True)
        await STEPS[n % len(STEPS)](chaos)
    await erase(chaos, retire=False)  # the last keys waiting for their erasure
    await asyncio.sleep(chaos.config.tail)


def fmt(measured: dict[str, float]) -> str:
    return " ".join(f"{name}={value:.1f}s" for name, value in measured.items())


def report_lines(chaos: Chaos, verdict: Verdict, took: float) -> list[str]:
    reads = chaos.readers.log.summary()
    by_kind: dict[str, list[float]] = {}
    for outcome in chaos.outcomes:
        by_kind.setdefault(outcome.kind, []).append(outcome.recovered_in)
    churn = [o.measured for o in chaos.outcomes if o.kind == "churn"]
    lines = [
        f"CHAOS seed={chaos.config.seed} run={time.monotonic() - chaos.started:.0f}s "
        f"nemeses={len(chaos.outcomes)} {dict(Counter(o.kind for o in chaos.outcomes))}",
        "CHAOS recovery (s) by kind: "
        + "; ".join(
            f"{kind} n={len(v)} median={statistics.median(v):.1f} max={max(v):.1f}"
            for kind, v in by_kind.items()
        ),
        "CHAOS churn rebalance (s): "
        + "; ".join(f"3->2 {m['rebalance_down']:.1f} 2->3 {m['rebalance_up']:.1f}" for m in churn),
        f"CHAOS events acked={sum(chaos.log.acked.values())} {dict(chaos.log.acked)} "
        f"unacked={dict(chaos.log.unacked)} wipes={chaos.log.wipes} customers={dict(chaos.created)}",
        f"CHAOS verify: quiescent in {took:.1f}s, redis entries compared={verdict.cached}, "
        f"by copy={dict(verdict.by_copy)}",
        *(f"CHAOS example: {example}" for example in verdict.examples),
        *(f"CHAOS history: {history}" for history in verdict.histories),
        verdict.line(),
        f"READS answered={reads['answered']} {reads['by_transport']} failed={reads['failed']} "
        f"stale={reads['stale']} stale_after_wipe={reads['stale_after_wipe']}",
        *(f"READS stale example: {example}" for example in reads["stale_examples"]),  # type: ignore[attr-defined]
    ]
    return lines
