"""GraphQL subscriptions over `graphql-transport-ws` at /graphql: the protocol's rules (close codes
4401, 4406, 4408, 4409), errors naming the field, and `onImportProgress` fed from `core.updates`."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestServer
from aiokafka import AIOKafkaProducer

from tests.support.live import new_id, produce_updates, progress, wait_subscribers
from tests.support.processes import WorkerProcess
from views.graphql import graphql_handler

PROTOCOL = "graphql-transport-ws"
IMPORT_PROGRESS = """subscription($m: ID!, $i: ID!) {
  onImportProgress(merchant_id: $m, import_id: $i) {
    import_id merchant_id source status record_count error_log created_at
  }
}"""


def subscribe(op_id: str, query: str, variables: dict) -> dict:
    return {"id": op_id, "type": "subscribe", "payload": {"query": query, "variables": variables}}


async def connect(
    http: aiohttp.ClientSession, url: str, init: bool = True
) -> aiohttp.ClientWebSocketResponse:
    ws = await http.ws_connect(url, protocols=(PROTOCOL,))
    assert ws.protocol == PROTOCOL
    if init:
        await ws.send_json({"type": "connection_init", "payload": {}})
        assert (await ws.receive_json(timeout=10))["type"] == "connection_ack"
    return ws


async def closed_with(ws: aiohttp.ClientWebSocketResponse) -> int | None:
    message = await ws.receive(timeout=10)
    assert message.type in (WSMsgType.CLOSE, WSMsgType.CLOSED), message
    return ws.close_code


def gql_url(worker: WorkerProcess) -> str:
    return f"ws://127.0.0.1:{worker.http_port}/graphql"


async def test_subscribe_before_connection_init_is_closed_4401(worker: WorkerProcess) -> None:
    async with aiohttp.ClientSession() as http:
        ws = await connect(http, gql_url(worker), init=False)
        await ws.send_json(subscribe("1", IMPORT_PROGRESS, {"m": new_id(), "i": new_id()}))
        assert await closed_with(ws) == 4401


async def test_a_second_subscribe_with_a_live_id_is_closed_4409(worker: WorkerProcess) -> None:
    async with aiohttp.ClientSession() as http:
        ws = await connect(http, gql_url(worker))
        variables = {"m": new_id(), "i": new_id()}
        await ws.send_json(subscribe("same", IMPORT_PROGRESS, variables))
        await ws.send_json(subscribe("same", IMPORT_PROGRESS, variables))
        assert await closed_with(ws) == 4409


async def test_ping_is_answered_and_legacy_subprotocol_refused(worker: WorkerProcess) -> None:
    async with aiohttp.ClientSession() as http:
        ws = await connect(http, gql_url(worker))
        await ws.send_json({"type": "ping"})
        assert (await ws.receive_json(timeout=10))["type"] == "pong"
        await ws.close()
        legacy = await http.ws_connect(gql_url(worker), protocols=("graphql-ws",))
        assert await closed_with(legacy) == 4406


async def test_a_bad_id_is_an_error_naming_the_field(worker: WorkerProcess) -> None:
    async with aiohttp.ClientSession() as http:
        ws = await connect(http, gql_url(worker))
        await ws.send_json(subscribe("1", IMPORT_PROGRESS, {"m": new_id(), "i": "nope"}))
        answer = await ws.receive_json(timeout=10)
        assert (answer["id"], answer["type"]) == ("1", "error")  # the operation's last message
        [error] = answer["payload"]
        assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "import_id"}
        await ws.send_json({"type": "ping"})  # the connection itself stays up
        assert (await ws.receive_json(timeout=10))["type"] == "pong"
        await ws.close()


async def test_on_import_progress_follows_one_import(
    worker: WorkerProcess, producer: AIOKafkaProducer
) -> None:
    merchant_id, import_id, other_import = new_id(), new_id(), new_id()
    async with aiohttp.ClientSession() as http:
        ws = await connect(http, gql_url(worker))
        await ws.send_json(subscribe("p", IMPORT_PROGRESS, {"m": merchant_id, "i": import_id}))
        await wait_subscribers(worker, "graphql", 1)
        await produce_updates(
            producer, [progress(merchant_id, other_import, 1), progress(merchant_id, import_id, 42)]
        )
        answer = await ws.receive_json(timeout=30)
        assert answer == {
            "id": "p",
            "type": "next",
            "payload": {
                "data": {
                    "onImportProgress": {
                        "import_id": import_id,
                        "merchant_id": merchant_id,
                        "source": "shopify",
                        "status": "processing",
                        "record_count": 42,
                        "error_log": None,
                        "created_at": "2026-01-01T00:00:00.000Z",
                    }
                }
            },
        }
        await ws.send_json({"id": "p", "type": "complete"})
        await ws.close()


@pytest.fixture
async def short_init_server() -> AsyncIterator[TestServer]:
    """The /graphql handler alone, in process, with a 0.3 s connection_init deadline."""
    app = web.Application()
    app.router.add_route("*", "/graphql", graphql_handler(init_timeout=0.3))
    server = TestServer(app)
    await server.start_server()
    yield server
    await server.close()


async def test_no_connection_init_in_time_is_closed_4408(short_init_server: TestServer) -> None:
    async with aiohttp.ClientSession() as http:
        ws = await connect(http, str(short_init_server.make_url("/graphql")), init=False)
        assert await closed_with(ws) == 4408
