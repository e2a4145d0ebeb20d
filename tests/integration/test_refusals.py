"""What an outsider's probe found (issue 22), against real workers: the GraphQL body cap and variables
depth, refusals logged once without a traceback, nesting named by field, and every error aiohttp or
graphql-server raises answered as JSON in the transport's error shape."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from core_app.settings import Settings
from tests.support.events import new_merchant
from tests.support.processes import WorkerProcess, eventually

MIB = 1024 * 1024
TYPENAME = "{ __typename }"
GET_CUSTOMER = "query($m: ID!, $c: ID!) { getCustomer(merchant_id: $m, customer_id: $c) { id } }"


def nested(depth: int) -> str:
    """JSON text of an object nested `depth` levels deep."""
    return '{"a":' * (depth - 1) + "{}" + "}" * (depth - 1)


def graphql_error(body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The one error of a GraphQL error answer: (message, extensions); no REST-shaped `error`."""
    assert set(body) == {"errors"}, body
    [error] = body["errors"]
    return error["message"], error["extensions"]


async def post_graphql(worker: WorkerProcess, data: bytes | AsyncIterator[bytes], **headers: str) -> Any:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{worker.url}/graphql", data=data, headers={"Content-Type": "application/json", **headers}
        ) as response,
    ):
        assert response.content_type == "application/json", await response.text()
        return response.status, await response.json()


# --- 1. the whole GraphQL body is capped (GRAPHQL_MAX_BODY_BYTES), variables are bounded in depth ---


async def test_a_graphql_body_over_the_cap_is_a_413_in_the_graphql_error_shape(worker: WorkerProcess) -> None:
    big = json.dumps({"query": TYPENAME, "variables": {"x": "a" * (MIB + 10)}}).encode()
    status, body = await post_graphql(worker, big)
    assert status == 413
    message, extensions = graphql_error(body)
    assert extensions == {"code": "PAYLOAD_TOO_LARGE"} and "1048576 bytes" in message

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: the cap holds while reading
        for start in range(0, len(big), 64 * 1024):
            yield big[start : start + 64 * 1024]

    status, body = await post_graphql(worker, chunked())
    assert status == 413 and graphql_error(body)[1]["code"] == "PAYLOAD_TOO_LARGE"

    under = json.dumps({"query": TYPENAME, "variables": {"x": "a" * (MIB - 1000)}}).encode()
    assert await post_graphql(worker, under) == (200, {"data": {"__typename": "Query"}})


@pytest.mark.parametrize("depth", [41, 1000])  # 1000: deeper than the JSON parser goes
async def test_graphql_variables_nested_too_deep_are_a_400_naming_variables(
    worker: WorkerProcess, depth: int
) -> None:
    body = f'{{"query": "{TYPENAME}", "variables": {nested(depth)}}}'.encode()
    status, answer = await post_graphql(worker, body)
    assert status == 400
    message, extensions = graphql_error(answer)
    assert message == "variables is nested deeper than 40 levels"
    assert extensions == {"code": "BAD_USER_INPUT", "field": "variables"}
    at_the_limit = f'{{"query": "{TYPENAME}", "variables": {nested(40)}}}'.encode()
    assert (await post_graphql(worker, at_the_limit))[0] == 200


async def test_subscribe_variables_nested_too_deep_get_an_error_naming_variables(
    worker: WorkerProcess,
) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(f"{worker.url}/graphql", protocols=["graphql-transport-ws"]) as ws,
    ):
        await ws.send_json({"type": "connection_init", "payload": {}})
        assert (await ws.receive_json(timeout=10))["type"] == "connection_ack"
        query = "subscription($m: ID!) { onCustomerUpdate(merchant_id: $m) { id } }"
        payload = {"query": query, "variables": {"m": str(uuid.uuid4()), "deep": json.loads(nested(60))}}
        await ws.send_json({"id": "1", "type": "subscribe", "payload": payload})
        reply = await ws.receive_json(timeout=10)
    assert reply["type"] == "error" and reply["id"] == "1"
    [error] = reply["payload"]
    assert error["message"] == "variables is nested deeper than 40 levels"
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "variables"}


# --- 4. REST: nesting beyond the limit names the field, also beyond the parser's recursion ---------


@pytest.mark.parametrize("depth", [33, 1000])
async def test_rest_metadata_nested_too_deep_is_a_400_naming_metadata(
    worker: WorkerProcess, settings: Settings, depth: int
) -> None:
    merchant = new_merchant(settings)
    body = f'{{"merchant_id": "{merchant}", "email": "a@example.com", "metadata": {nested(depth)}}}'
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{worker.url}/core/v1/customers", data=body, headers={"Content-Type": "application/json"}
        ) as response,
    ):
        assert response.status == 400
        answer = await response.json()
    assert answer == {
        "error": {"message": "is nested deeper than 32 levels", "code": "BAD_USER_INPUT", "field": "metadata"}
    }


# --- 6. aiohttp's and graphql-server's own errors are JSON in the documented shape -----------------


async def test_errors_aiohttp_raises_itself_are_json_in_the_rest_error_shape(worker: WorkerProcess) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{worker.url}/no/such/route") as response:
            assert response.status == 404 and response.content_type == "application/json"
            assert await response.json() == {
                "error": {"message": "no route serves this path", "code": "NOT_FOUND"}
            }
        async with http.delete(f"{worker.url}/core/v1/customers") as response:
            assert response.status == 405 and response.headers["Allow"] == "GET,POST"
            error = (await response.json())["error"]
            assert error["code"] == "METHOD_NOT_ALLOWED" and "DELETE" in error["message"]
        too_big = b'{"x": "' + b"a" * (2 * MIB) + b'"}'
        headers = {"Content-Type": "application/json"}
        async with http.post(f"{worker.url}/core/v1/customers", data=too_big, headers=headers) as response:
            assert response.status == 413 and response.content_type == "application/json"
            error = (await response.json())["error"]
            assert error["code"] == "PAYLOAD_TOO_LARGE" and "1048576" in error["message"]


async def test_graphql_servers_own_refusals_are_json_in_the_graphql_error_shape(
    worker: WorkerProcess,
) -> None:
    status, body = await post_graphql(worker, b"{not json")
    assert status == 400 and graphql_error(body) == (
        "Unable to parse request body as JSON",
        {"code": "BAD_REQUEST"},
    )
    async with aiohttp.ClientSession() as http, http.put(f"{worker.url}/graphql", data=b"{}") as response:
        assert response.status == 405 and response.headers["Allow"] == "GET, POST"
        assert response.content_type == "application/json"
        assert graphql_error(await response.json())[1] == {"code": "METHOD_NOT_ALLOWED"}


# --- 2. a refused request is one INFO/WARNING line, no traceback; ERROR is for faults --------------


def log_size(worker: WorkerProcess) -> int:
    return worker.log_path.stat().st_size


async def lines_of(worker: WorkerProcess, since: int, request_id: str) -> tuple[list[str], list[str]]:
    """(the lines naming `request_id`, every line logged since `since`), once the first are there."""

    async def logged() -> tuple[list[str], list[str]] | None:
        with worker.log_path.open("rb") as log:
            log.seek(since)
            segment = log.read().decode(errors="replace").splitlines()
        mine = [line for line in segment if f"request_id={request_id}" in line]
        return (mine, segment) if mine else None

    return await eventually(logged, timeout=10)


def assert_one_refusal_line(mine: list[str], segment: list[str], level: str, *parts: str) -> None:
    assert len(mine) == 1, mine
    [line] = mine
    assert f" {level} " in line and "core_app.refusals" in line, line
    for part in parts:
        assert part in line, (part, line)
    assert not any(" ERROR " in entry or "Traceback" in entry for entry in segment), segment


async def graphql_with_request_id(worker: WorkerProcess, variables: dict[str, str], token: str = "") -> Any:
    request_id = f"probe-{uuid.uuid4().hex[:12]}"
    headers = {"X-Request-Id": request_id} | ({"Authorization": f"Bearer {token}"} if token else {})
    since = log_size(worker)
    body = json.dumps({"query": GET_CUSTOMER, "variables": variables}).encode()
    status, answer = await post_graphql(worker, body, **headers)
    assert status == 200
    return request_id, since, answer["errors"][0]["extensions"]


async def test_graphql_bad_input_and_not_found_are_one_info_line_each(
    worker: WorkerProcess, settings: Settings
) -> None:
    merchant = new_merchant(settings)
    request_id, since, extensions = await graphql_with_request_id(worker, {"m": merchant, "c": "nope"})
    assert extensions == {"code": "BAD_USER_INPUT", "field": "customer_id"}
    mine, segment = await lines_of(worker, since, request_id)
    assert_one_refusal_line(
        mine, segment, "INFO", "code=BAD_USER_INPUT", "field=customer_id", f"merchant_id={merchant}"
    )

    request_id, since, extensions = await graphql_with_request_id(
        worker, {"m": merchant, "c": str(uuid.uuid4())}
    )
    assert extensions["code"] == "NOT_FOUND"
    mine, segment = await lines_of(worker, since, request_id)
    assert_one_refusal_line(mine, segment, "INFO", "code=NOT_FOUND", f"merchant_id={merchant}")


async def test_rest_and_http_refusals_are_one_line_each(worker: WorkerProcess) -> None:
    request_id = f"probe-{uuid.uuid4().hex[:12]}"
    since = log_size(worker)
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{worker.url}/core/v1/customers",
            params={"merchant_id": "bad", "customer_id": "bad"},
            headers={"X-Request-Id": request_id},
        ) as response,
    ):
        assert response.status == 400 and response.headers["X-Request-Id"] == request_id
    mine, segment = await lines_of(worker, since, request_id)
    assert_one_refusal_line(mine, segment, "INFO", "status=400", "code=BAD_USER_INPUT", "field=merchant_id")


async def test_a_forbidden_graphql_read_is_one_warning_line(
    secure_worker: WorkerProcess, settings: Settings
) -> None:
    from tests.support.auth import mint_jwt

    mine_merchant, other = new_merchant(settings), new_merchant(settings)
    token = mint_jwt(mine_merchant, ["admin:customers:view"])
    request_id, since, extensions = await graphql_with_request_id(
        secure_worker, {"m": other, "c": str(uuid.uuid4())}, token
    )
    assert extensions["code"] == "FORBIDDEN"
    mine, segment = await lines_of(secure_worker, since, request_id)
    assert_one_refusal_line(mine, segment, "WARNING", "code=FORBIDDEN", f"merchant_id={other}")


# --- 5. WebSocket refusals: before the upgrade when the request carries the token, else 4403 -------

UPGRADE = {
    "Upgrade": "websocket",
    "Connection": "Upgrade",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
}


async def upgrade_refused(worker: WorkerProcess, path: str, params: dict[str, str], **headers: str) -> Any:
    """The answer to a WebSocket upgrade that should be refused before it is accepted."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{worker.url}{path}", params=params, headers=UPGRADE | headers) as response,
    ):
        assert response.content_type == "application/json"
        return response.status, await response.json()


async def test_a_stream_upgrade_with_a_bad_or_foreign_token_is_refused_before_the_upgrade(
    secure_worker: WorkerProcess, settings: Settings
) -> None:
    from tests.support.auth import mint_jwt

    merchant, other = new_merchant(settings), new_merchant(settings)
    path = "/core/v1/updates/stream"
    status, body = await upgrade_refused(
        secure_worker, path, {"merchant_id": merchant, "access_token": "x.y.z"}
    )
    assert status == 401 and body["error"]["code"] == "UNAUTHENTICATED"
    foreign = mint_jwt(other, ["admin:customers:view"])
    status, body = await upgrade_refused(
        secure_worker, path, {"merchant_id": merchant, "access_token": foreign}
    )
    assert status == 403 and body["error"]["code"] == "FORBIDDEN"
    status, body = await upgrade_refused(
        secure_worker, path, {"merchant_id": merchant}, Authorization="Bearer x.y.z"
    )
    assert status == 401 and body["error"]["code"] == "UNAUTHENTICATED"
    status, body = await upgrade_refused(secure_worker, "/graphql", {"access_token": "x.y.z"})
    assert status == 401 and graphql_error(body)[1]["code"] == "UNAUTHENTICATED"

    token = mint_jwt(merchant, ["admin:customers:view"])
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(
            f"{secure_worker.url}{path}", params={"merchant_id": merchant, "access_token": token}
        ) as ws,
    ):
        assert (await ws.receive_json(timeout=10)) == {"type": "subscribed", "merchant_id": merchant}


async def test_a_rejected_connection_init_closes_4403_naming_the_refusal(
    secure_worker: WorkerProcess, settings: Settings
) -> None:
    merchant = new_merchant(settings)
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(f"{secure_worker.url}/graphql", protocols=["graphql-transport-ws"]) as ws:
            await ws.send_json({"type": "connection_init", "payload": {}})
            message = await ws.receive(timeout=10)
        assert message.type == aiohttp.WSMsgType.CLOSE and message.data == 4403, message
        assert message.extra.startswith("UNAUTHENTICATED: "), message.extra
        url = f"{secure_worker.url}/core/v1/updates/stream?merchant_id={merchant}"
        async with http.ws_connect(url) as ws:
            await ws.send_json({"type": "connection_init", "payload": {"token": "x.y.z"}})
            message = await ws.receive(timeout=10)
        assert message.type == aiohttp.WSMsgType.CLOSE and message.data == 4403, message
        assert message.extra.startswith("UNAUTHENTICATED: "), message.extra
