"""`GET /core/v1/updates/stream` against a worker: validation before the upgrade, delivery, and
clients that stop reading (a stream and a GraphQL subscription) are dropped with close code 4008
while a fast one on the same worker goes on."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from aiokafka import AIOKafkaProducer
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.support.live import (
    new_id,
    next_of_type,
    open_stream,
    produce_updates,
    progress,
    stream_url,
    wait_subscribers,
)
from tests.support.processes import WorkerProcess, eventually, metric

TRANSPORTS = ("websocket", "graphql")
BURST = 400  # updates produced at once in the slow-client test: fewer than the 512 a client may lag


@pytest.mark.parametrize("query", ["", "?merchant_id=", "?merchant_id=not-a-uuid"])
async def test_a_bad_merchant_id_is_a_400_naming_it_before_any_upgrade(
    worker: WorkerProcess, query: str
) -> None:
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(f"ws://127.0.0.1:{worker.http_port}/core/v1/updates/stream{query}")
        assert refused.value.status == 400
        async with http.get(f"{worker.url}/core/v1/updates/stream{query}") as response:
            assert response.status == 400
            assert (await response.json())["error"]["field"] == "merchant_id"


async def test_a_plain_get_is_told_to_upgrade(worker: WorkerProcess) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{worker.url}/core/v1/updates/stream", params={"merchant_id": new_id()}) as response,
    ):
        assert response.status == 426
        assert "error" in await response.json()


async def test_import_progress_reaches_the_merchants_stream_only(
    worker: WorkerProcess, producer: AIOKafkaProducer
) -> None:
    merchant_id, other_merchant, import_id = new_id(), new_id(), new_id()
    async with aiohttp.ClientSession() as http:
        mine = await open_stream(http, worker, merchant_id)
        theirs = await open_stream(http, worker, other_merchant)
        await produce_updates(producer, [progress(merchant_id, import_id, 7)])
        message = await next_of_type(mine, "import.progress")
        assert message == progress(merchant_id, import_id, 7)
        with pytest.raises(asyncio.TimeoutError):
            await theirs.receive(timeout=1.0)
        await mine.close()
        await theirs.close()


ON_IMPORT_PROGRESS = """subscription($m: ID!, $i: ID!) {
  onImportProgress(merchant_id: $m, import_id: $i) { import_id status record_count error_log }
}"""


async def stalled_client(url: str, subprotocols: list[str] | None = None) -> ClientConnection:
    """A client that reads nothing until told to: websockets stops reading the socket once one
    frame is pending, so the worker's send buffers fill. (A tiny SO_RCVBUF would be more faithful
    but on loopback, whose MSS is 64 KiB, the window then reopens only on TCP persist probes.)"""
    return await connect(url, subprotocols=subprotocols, compression=None, max_queue=1, ping_interval=None)


async def stalled_stream(worker: WorkerProcess, merchant_id: str) -> ClientConnection:
    client = await stalled_client(stream_url(worker, merchant_id))
    assert json.loads(await client.recv())["type"] == "subscribed"
    return client


async def stalled_subscription(worker: WorkerProcess, merchant_id: str, import_id: str) -> ClientConnection:
    url = f"ws://127.0.0.1:{worker.http_port}/graphql"
    client = await stalled_client(url, subprotocols=["graphql-transport-ws"])
    await client.send(json.dumps({"type": "connection_init"}))
    assert json.loads(await client.recv())["type"] == "connection_ack"
    variables = {"m": merchant_id, "i": import_id}
    payload = {"query": ON_IMPORT_PROGRESS, "variables": variables}
    await client.send(json.dumps({"id": "slow", "type": "subscribe", "payload": payload}))
    return client


async def close_code_after_reading(client: ClientConnection) -> tuple[int | None, int]:
    """Read what is on its way until the close frame; the close code and how many frames came first."""
    received = 0
    try:
        while True:
            await asyncio.wait_for(client.recv(), 10)
            received += 1
    except ConnectionClosed as closed:
        return (closed.rcvd.code if closed.rcvd else None), received


async def test_clients_that_stop_reading_are_dropped_with_4008_and_others_keep_receiving(
    worker: WorkerProcess, producer: AIOKafkaProducer
) -> None:
    merchant_id, import_id = new_id(), new_id()
    total = 2500  # ~1 KiB each: more than the socket buffers plus the 512-update queue
    dropped = {t: await metric(worker, "core_fanout_dropped_total", transport=t) for t in TRANSPORTS}
    subscribed = await metric(worker, "core_fanout_subscribers", transport="graphql")
    slow_stream = await stalled_stream(worker, merchant_id)
    slow_subscription = await stalled_subscription(worker, merchant_id, import_id)
    await wait_subscribers(worker, "graphql", subscribed + 1)
    async with aiohttp.ClientSession() as http:
        fast = await open_stream(http, worker, merchant_id)

        seen: list[int] = []

        async def read_all() -> list[int]:
            while len(seen) < total:
                seen.append((await next_of_type(fast, "import.progress"))["processed"])
            return seen

        reader = asyncio.create_task(read_all())

        async def caught_up(end: int) -> bool:
            return len(seen) >= end or reader.done()  # done: its error shows at the assert below

        # In bursts smaller than the 512-update queue, each after the fast client has read the one
        # before: the test process's own pauses (late in a full run) must not make it a slow client.
        # The slow clients read nothing, so the bursts overflow them all the same.
        for start in range(0, total, BURST):
            burst = range(start, min(start + BURST, total))
            updates = [progress(merchant_id, import_id, n, padding=1000) for n in burst]
            await produce_updates(producer, updates)
            await eventually(lambda end=burst.stop: caught_up(end), timeout=60)
        assert await asyncio.wait_for(reader, 90) == list(range(total))

        async def both_dropped() -> bool:
            now = {t: await metric(worker, "core_fanout_dropped_total", transport=t) for t in TRANSPORTS}
            return now == {t: dropped[t] + 1 for t in TRANSPORTS}

        await eventually(both_dropped, timeout=30)
        # Reading again, each slow client gets what was already on its way, then the close frame.
        for client in (slow_stream, slow_subscription):
            code, received = await close_code_after_reading(client)
            assert code == 4008
            assert received < total
        # The fast client is still subscribed and served.
        await produce_updates(producer, [progress(merchant_id, import_id, total)])
        assert (await next_of_type(fast, "import.progress"))["processed"] == total
        await fast.close()
