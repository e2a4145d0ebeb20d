"""A broker that comes back empty under two running workers (Tansu in memory, restarted).

`/health` must turn DOWN within 30 s, since the service's topics and offsets are gone; each worker
then rebuilds (ready again, serving) or exits with its reason; no worker crashes its peer.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from core_app.devstack import tansu_argv
from core_app.events.codec import EventCodec
from core_app.settings import Settings
from core_app.worker import EXIT_FATAL
from tests.helpers import free_port, start_worker, stop_process, wait_for_port, wait_ready
from tests.integration.events import at, insert_customers, new_merchant, produce, rfm


class RestartableTansu:
    def __init__(self, log_path: Path) -> None:
        self.port = free_port()
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"kafka://127.0.0.1:{self.port}"

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(tansu_argv(self.port), stdout=log, stderr=subprocess.STDOUT)
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, timeout=5)
            self.process = None


@pytest.fixture
def tansu_wipeable(data_root: Path) -> Iterator[RestartableTansu]:
    broker = RestartableTansu(data_root / "tansu-wipe.log")
    broker.start()
    yield broker
    broker.stop()


async def status(url: str) -> int | str:
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as http:
            async with http.get(url) as response:
                return response.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        return type(exc).__name__


@pytest.mark.slow
async def test_wiped_broker_turns_health_down_and_no_worker_crashes_a_peer(
    worker_env: dict[str, str],
    settings: Settings,
    codec: EventCodec,
    tansu_wipeable: RestartableTansu,
    data_root: Path,
) -> None:
    from aiokafka import AIOKafkaProducer

    env = worker_env | {"KAFKA_BROKER": tansu_wipeable.url, "DATA_DIR": str(data_root / "wipe-data")}
    workers = [start_worker(f"wipe-worker-{n}", env) for n in (1, 2)]
    try:
        await asyncio.gather(*(wait_ready(w) for w in workers))
        merchant_id = new_merchant(settings)
        customers = [cid for cid, _ in insert_customers(settings, merchant_id, 50)]
        producer = AIOKafkaProducer(bootstrap_servers=tansu_wipeable.url.removeprefix("kafka://"))
        await producer.start()
        events = [rfm(merchant_id, c, (1 + s % 5, 2, 3), at(s)) for s in range(10) for c in customers]
        await produce(producer, codec, events)
        await producer.stop()
        await asyncio.sleep(3)

        tansu_wipeable.stop()
        tansu_wipeable.start()  # same address, nothing in it
        wiped_at = time.monotonic()
        down_after: dict[str, float] = {}
        while time.monotonic() - wiped_at < 30 and len(down_after) < len(workers):
            for worker in workers:
                if worker.name not in down_after and worker.process.poll() is None:
                    if await status(f"{worker.url}/health") != 200:
                        down_after[worker.name] = time.monotonic() - wiped_at
                elif worker.process.poll() is not None:
                    down_after.setdefault(worker.name, time.monotonic() - wiped_at)
            await asyncio.sleep(0.5)
        print(f"\nbroker wiped: /health DOWN after {down_after}")
        assert len(down_after) == len(workers), f"/health stayed UP 30 s after the wipe: {down_after}"

        # Then each worker either rebuilds and is ready again, or has exited with its reason.
        async def settled(worker: object) -> str:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                code = worker.process.poll()  # type: ignore[attr-defined]
                if code is not None:
                    return f"exited {code}"
                if await status(f"{worker.url}/ready") == 200:  # type: ignore[attr-defined]
                    return "ready"
                await asyncio.sleep(1)
            return "neither ready nor exited"

        outcomes = {w.name: await settled(w) for w in workers}
        print(f"after the wipe: {outcomes}")
        for worker in workers:
            outcome = outcomes[worker.name]
            assert outcome in ("ready", f"exited {EXIT_FATAL}"), (
                f"{worker.name}: {outcome}\n{worker.log_tail()}"
            )
            if outcome != "ready":
                last = worker.log_path.read_text().strip().splitlines()[-1]
                assert "fatal, exiting:" in last, last
    finally:
        for worker in workers:
            stop_process(worker.process)
