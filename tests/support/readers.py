"""Readers for the multi-worker scenarios: one per worker, reading random keys through that worker
all along, by turns over REST and gRPC.

Every answer is checked against what any reader had seen before the read was issued: a version
lower than that is a regression (issue 15: a reader must never see a version lower than one it saw
before, through any worker). Reads run concurrently at a fixed rate, so a slow answer (a read waits
up to READ_RECOVERY_WAIT for a recovering partition) does not slow the others down.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from dataclasses import dataclass, field

import aiohttp
from grpclib.client import Channel
from grpclib.exceptions import GRPCError, StreamTerminatedError

from core_app.rpc.generated.core.v1 import core_pb2 as pb
from core_app.rpc.generated.core.v1.core_grpc import CoreServiceStub
from tests.support.processes import WorkerProcess

READ_TIMEOUT = 10.0  # above the workers' READ_RECOVERY_WAIT (5 s) plus an owner hop
IN_FLIGHT = 20  # reads in flight per reader at most; beyond it a read is skipped, not queued

Answer = tuple[dict[str, int], int] | str  # (rfm score, version), or why there is none


async def rest_read(
    http: aiohttp.ClientSession, worker: WorkerProcess, merchant_id: str, customer_id: str
) -> Answer:
    params = {"merchant_id": merchant_id, "customer_id": customer_id}
    try:
        async with http.get(f"{worker.url}/core/v1/customers", params=params) as response:
            if response.status != 200:
                return f"rest {response.status}"
            body = await response.json()
    except (aiohttp.ClientError, TimeoutError) as exc:
        return f"rest {type(exc).__name__}"
    return dict(body["rfm_score"] or {}), int(body["version"])


async def grpc_read(stub: CoreServiceStub, merchant_id: str, customer_id: str) -> Answer:
    request = pb.GetCustomerRequest(merchant_id=merchant_id, customer_id=customer_id)
    try:
        reply = await stub.GetCustomer(request, timeout=READ_TIMEOUT)
    except GRPCError as exc:
        return f"grpc {exc.status.name}"
    except (OSError, StreamTerminatedError, TimeoutError) as exc:
        return f"grpc {type(exc).__name__}"
    score = reply.rfm_score
    rfm = (
        {"recency": score.recency, "frequency": score.frequency, "monetary": score.monetary}
        if reply.HasField("rfm_score")
        else {}
    )
    return rfm, int(reply.version)


@dataclass
class ReadTally:
    """What all readers saw: answers per transport, failures by reason, regressions."""

    answered: Counter[str] = field(default_factory=Counter)  # per transport
    by_worker: Counter[str] = field(default_factory=Counter)  # answers per worker name
    failed: Counter[str] = field(default_factory=Counter)
    regressions: list[str] = field(default_factory=list)
    highest: dict[str, int] = field(default_factory=dict)  # customer -> highest version answered
    latencies: list[float] = field(default_factory=list)  # seconds, of the answered reads
    started_at: float = field(default_factory=time.monotonic)

    def record(
        self, worker: str, transport: str, customer_id: str, floor: int, answer: Answer, seconds: float
    ) -> None:
        if isinstance(answer, str):
            self.failed[answer] += 1
            return
        self.latencies.append(seconds)
        self.answered[transport] += 1
        self.by_worker[worker] += 1
        version = answer[1]
        if version < floor:
            self.regressions.append(f"{customer_id}: {floor} -> {version} via {worker} ({transport})")
        self.highest[customer_id] = max(self.highest.get(customer_id, -1), version)

    def summary(self) -> str:
        seconds = max(time.monotonic() - self.started_at, 1e-9)
        total = sum(self.answered.values())
        ranked = sorted(self.latencies) or [0.0]
        p50, p99 = ranked[len(ranked) // 2], ranked[min(len(ranked) - 1, len(ranked) * 99 // 100)]
        return (
            f"reads answered={total} ({dict(self.answered)}, {total / seconds:.0f}/s, "
            f"p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms), failed={dict(self.failed)}"
        )


@dataclass
class WorkerReader:
    """Reads through one worker at `rate` per second, once it has been ready."""

    worker: WorkerProcess
    merchant_id: str
    customers: list[str]
    rate: float
    tally: ReadTally

    async def run(self) -> None:
        await self._until_listening()
        channel = Channel("127.0.0.1", self.worker.grpc_port)
        stub = CoreServiceStub(channel)
        in_flight: set[asyncio.Task[None]] = set()
        timeout = aiohttp.ClientTimeout(total=READ_TIMEOUT)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as http:
                turn = 0
                while True:
                    await asyncio.sleep(1 / self.rate)
                    if len(in_flight) >= IN_FLIGHT:
                        self.tally.failed["skipped: too many in flight"] += 1
                        continue
                    turn += 1
                    task = asyncio.create_task(self._read_one(http, stub, turn % 2 == 0))
                    in_flight.add(task)
                    task.add_done_callback(in_flight.discard)
        finally:
            for task in list(in_flight):
                task.cancel()
            channel.close()

    async def _until_listening(self) -> None:
        """As a load balancer would: no reads before the worker was ready once."""
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as http:
            while True:
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with http.get(f"{self.worker.url}/ready") as response:
                        if response.status == 200:
                            return
                await asyncio.sleep(0.5)

    async def _read_one(self, http: aiohttp.ClientSession, stub: CoreServiceStub, over_grpc: bool) -> None:
        customer_id = random.choice(self.customers)
        floor = self.tally.highest.get(customer_id, -1)
        started = time.monotonic()
        if over_grpc:
            answer = await grpc_read(stub, self.merchant_id, customer_id)
        else:
            answer = await rest_read(http, self.worker, self.merchant_id, customer_id)
        transport = "grpc" if over_grpc else "rest"
        self.tally.record(self.worker.name, transport, customer_id, floor, answer, time.monotonic() - started)


@dataclass
class Readers:
    """One reader per live worker; the cluster attaches and detaches them as workers come and go."""

    merchant_id: str
    customers: list[str]
    rate_per_worker: float
    tally: ReadTally = field(default_factory=ReadTally)
    _tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)

    def attach(self, worker: WorkerProcess) -> None:
        reader = WorkerReader(worker, self.merchant_id, self.customers, self.rate_per_worker, self.tally)
        self._tasks[worker.name] = asyncio.create_task(reader.run(), name=f"reader-{worker.name}")

    def detach(self, worker: WorkerProcess) -> None:
        task = self._tasks.pop(worker.name, None)
        if task is not None:
            task.cancel()

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
