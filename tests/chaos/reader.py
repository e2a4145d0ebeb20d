"""The chaos run's reader: through every live worker, by turns over REST and gRPC, random keys of every
merchant (customers created mid-run included), all through the run. Every answer is logged.

Out of the log: reads answered, failed by reason, and stale ones (a version lower than one that same
reader, i.e. the reader of that worker slot, had already seen for the key). A stale read whose higher
version was seen before a broker wipe, and is above what PostgreSQL held then, is counted apart: the
wipe lost it by definition (D231, D246).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field

import aiohttp

from core_app.rpc.generated.core.v1.core_grpc import CoreServiceStub
from tests.support.processes import WorkerProcess
from tests.support.readers import Answer, Readers, ReadTally, WorkerReader, grpc_read, rest_read


@dataclass(frozen=True)
class Read:
    at: float  # issued
    done: float  # answered (or failed)
    reader: str
    transport: str
    key: tuple[str, str]
    answer: Answer
    epoch: int  # broker wipes before the read was issued


@dataclass
class ReadLog:
    reads: list[Read] = field(default_factory=list)
    epoch: int = 0
    wipe_floors: list[dict[tuple[str, str], int]] = field(default_factory=list)  # per wipe: PG versions

    def wiped(self, floors: dict[tuple[str, str], int]) -> None:
        self.epoch += 1
        self.wipe_floors.append(floors)

    def summary(self) -> dict[str, object]:
        answered: Counter[str] = Counter()
        failed: Counter[str] = Counter()
        groups: dict[tuple[str, tuple[str, str]], list[Read]] = {}
        for read in self.reads:
            if isinstance(read.answer, str):
                failed[read.answer] += 1
            else:
                answered[read.transport] += 1
                groups.setdefault((read.reader, read.key), []).append(read)
        stale, stale_wipe, examples = 0, 0, []
        for group in groups.values():
            for read, floor in self._drops(group):
                if floor.epoch < read.epoch and self._lost_by_wipe(read.key, floor.epoch, _version(read)):
                    stale_wipe += 1
                    continue
                stale += 1
                where = f"{read.reader} {read.transport}"
                examples.append(f"{read.key[1]}: {_version(floor)} -> {_version(read)} via {where}")
        return {
            "answered": sum(answered.values()),
            "by_transport": dict(answered),
            "failed": dict(failed),
            "stale": stale,
            "stale_after_wipe": stale_wipe,
            "stale_examples": examples[:5],
        }

    @staticmethod
    def _drops(group: list[Read]) -> list[tuple[Read, Read]]:
        """(read, the highest read answered before it was issued) where the read's version is lower."""
        drops = []
        for read in group:
            before = [other for other in group if other.done < read.at]
            if before:
                floor = max(before, key=_version)
                if _version(read) < _version(floor):
                    drops.append((read, floor))
        return drops

    def _lost_by_wipe(self, key: tuple[str, str], seen_epoch: int, version: int) -> bool:
        """The read is not below what PostgreSQL held at the first wipe after the higher version."""
        return version >= self.wipe_floors[seen_epoch].get(key, 0)


@dataclass
class KeyReader(WorkerReader):
    keys: list[tuple[str, str]] = field(default_factory=list)  # shared, grows as customers are created
    log: ReadLog = field(default_factory=ReadLog)

    async def _read_one(self, http: aiohttp.ClientSession, stub: CoreServiceStub, over_grpc: bool) -> None:
        merchant_id, customer_id = key = random.choice(self.keys)
        epoch, started = self.log.epoch, time.monotonic()
        if over_grpc:
            answer = await grpc_read(stub, merchant_id, customer_id)
        else:
            answer = await rest_read(http, self.worker, merchant_id, customer_id)
        transport = "grpc" if over_grpc else "rest"
        read = Read(started, time.monotonic(), self.worker.name, transport, key, answer, epoch)
        self.log.reads.append(read)


@dataclass
class KeyReaders(Readers):
    """`Readers` (attached and detached by the cluster as workers come and go) over many merchants."""

    keys: list[tuple[str, str]] = field(default_factory=list)
    log: ReadLog = field(default_factory=ReadLog)

    def attach(self, worker: WorkerProcess) -> None:
        reader = KeyReader(worker, "", [], self.rate_per_worker, ReadTally(), keys=self.keys, log=self.log)
        self._tasks[worker.name] = asyncio.create_task(reader.run(), name=f"reader-{worker.name}")


def _version(read: Read) -> int:
    assert not isinstance(read.answer, str)
    return read.answer[1]
