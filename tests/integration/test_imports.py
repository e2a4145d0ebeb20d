"""Customer imports end to end on the session worker: every source format over every transport,
the customers and log row in PostgreSQL, the events, retries, refusals and the progress stream."""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
import time
import uuid
from pathlib import Path

import aiohttp
import psycopg2.extras
import pytest
from aiokafka import AIOKafkaConsumer
from grpclib import GRPCError
from grpclib.const import Status

from core_app.domain.email import email_hash
from core_app.domain.pii import PII_KEYS
from core_app.events.codec import EventCodec
from core_app.rpc.generated.core.v1 import core_pb2 as pb
from core_app.rpc.generated.core.v1.core_grpc import CoreServiceStub
from core_app.security.cli import set_flag
from core_app.security.flags import CUSTOMER_IMPORT
from core_app.settings import Settings
from core_app.topics import CUSTOMER_CREATED, CUSTOMER_UPDATED, IMPORT_INITIATED, UPDATES
from tests.support.api import graphql
from tests.support.db import pg
from tests.support.events import customer_rows, get_customer, new_merchant, read_topic
from tests.support.file_server import FileServer
from tests.support.imports import DATA, get_imports, import_root, post_import, shopify_csv, wait_final
from tests.support.processes import WorkerProcess, eventually, metric

RETURNING = "returning.customer@example.com"
START = """mutation($m: ID!, $s: String!, $u: String!) {
  importCustomers(merchant_id: $m, source: $s, file_url: $u) {
    import_id merchant_id source status record_count error_log created_at
  }
}"""
LOGS = """query($m: ID!, $s: String) {
  getImportLogs(merchant_id: $m, status: $s) { import_id status record_count error_log }
}"""


async def create_customer(worker: WorkerProcess, merchant_id: str, email: str, metadata: dict) -> str:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{worker.url}/core/v1/customers",
            json={"merchant_id": merchant_id, "email": email, "metadata": metadata},
        ) as response,
    ):
        assert response.status == 201, await response.text()
        return (await response.json())["id"]


async def start(
    transport: str, worker: WorkerProcess, stub: CoreServiceStub, merchant_id: str, source: str, url: str
) -> str:
    """Start an import over `transport`; the import_id."""
    if transport == "rest":
        status, log = await post_import(
            worker, {"merchant_id": merchant_id, "source": source, "file_url": url}
        )
        assert status == 202, log
        assert (log["status"], log["record_count"], log["source"]) == ("pending", 0, source)
        return log["import_id"]
    if transport == "graphql":
        answer = await graphql(worker, START, {"m": merchant_id, "s": source, "u": url})
        log = answer["data"]["importCustomers"]
        assert (log["status"], log["merchant_id"], log["record_count"]) == ("pending", merchant_id, 0)
        return log["import_id"]
    reply = await stub.ImportCustomers(
        pb.ImportCustomersRequest(merchant_id=merchant_id, source=source, file_url=url)
    )
    return reply.import_id


# Each sample holds two new customers, the merchant's existing customer, and some bad rows.
SAMPLES = [
    pytest.param(
        "shopify",
        "shopify_customers.csv",
        "rest",
        "files",
        ["ada.lovelace@example.com", "grace.hopper@example.com"],
        [
            (4, "email: not a valid email address"),
            (5, "Total Orders: not a whole number"),
            (6, "duplicate email in this file (first at row 3)"),
            (8, "email: is required"),
        ],
        id="shopify-rest",
    ),
    pytest.param(
        "smile_io",
        "smile_io_customers.csv",
        "graphql",
        "files",
        ["mia.wong@example.com", "liam.smith@example.com"],
        [
            (4, "points: not a whole number"),
            (5, "email: not a valid email address"),
            (7, "duplicate email in this file (first at row 2)"),
        ],
        id="smile_io-graphql",
    ),
    pytest.param(
        "loyaltylion",
        "loyaltylion_customers.csv",
        "grpc",
        "chunked",
        ["olivia.brown@example.com", "ethan.davis@example.com"],
        [(4, "points: must be between 0 and 1000000000000"), (6, "enrolled: expected yes/no or true/false")],
        id="loyaltylion-grpc",
    ),
    pytest.param(
        "custom",
        "custom_customers.csv",
        "rest",
        "file",
        ["zoe.taylor@example.com", "lucas.moore@example.com"],
        [(5, "email: not a valid email address"), (6, "points: not a whole number")],
        id="custom-csv-file",
    ),
    pytest.param(
        "custom",
        "custom_customers.jsonl",
        "rest",
        "files",
        ["henry.clark@example.com", "amelia.lewis@example.com"],
        [
            (4, "not valid JSON"),
            (5, "duplicate email in this file (first at row 1)"),
            (6, "points: not a whole number"),
            (7, "not a JSON object"),
        ],
        id="custom-jsonl",
    ),
]
PII_VALUES = ("lovelace", "hopper", "+44", "555", "1990-04-12", "1979-01-01", "pop-up", "wong", "clark")


@pytest.mark.parametrize(("source", "sample", "transport", "served", "new_emails", "errors"), SAMPLES)
async def test_each_source_format_imports_into_postgres_with_its_events(
    worker: WorkerProcess,
    settings: Settings,
    stub: CoreServiceStub,
    codec: EventCodec,
    tansu: str,
    data_root: Path,
    file_server: FileServer,
    source: str,
    sample: str,
    transport: str,
    served: str,
    new_emails: list[str],
    errors: list[tuple[int, str]],
) -> None:
    merchant_id = new_merchant(settings)
    returning_id = await create_customer(worker, merchant_id, RETURNING, {"tier": "legacy"})
    name = f"{uuid.uuid4().hex[:8]}-{sample}"
    if served == "file":
        shutil.copy(DATA / sample, import_root(data_root) / name)
        url = f"file://{import_root(data_root) / name}"
    else:
        file_server.add(name, (DATA / sample).read_bytes())
        url = file_server.url(f"/{served}/{name}")

    import_id = await start(transport, worker, stub, merchant_id, source, url)
    log = await wait_final(worker, merchant_id, import_id)

    # The log row: completed, every row accounted for, bad rows named.
    assert log["status"] == "completed", log
    assert (log["record_count"], log["error_count"]) == (3, len(errors))
    assert log["error_log"]["count"] == len(errors) and not log["error_log"]["truncated"]
    assert [(e["row"], e["error"]) for e in log["error_log"]["errors"]] == errors
    assert log["failure_reason"] is None

    # PostgreSQL: two new customers, the existing one updated (not duplicated); emails encrypted,
    # deduplicated by keyed hash; metadata holds only whitelisted, non-PII fields.
    key = settings.email_hash_key.get_secret_value()
    rows = customer_rows(settings, merchant_id)
    assert len(rows) == 3
    by_hash = {row["email_hash"]: row for row in rows.values()}
    assert set(by_hash) == {email_hash(e, key) for e in [*new_emails, RETURNING]}
    for customer_id, row in rows.items():
        assert row["email"].startswith("aes256:")
        assert "@example.com" not in row["row_text"].lower()
        block = row["metadata"]["imports"][source]
        # Generated values (a random uuid, a timestamp's milliseconds) can contain "555" by chance.
        text = json.dumps(row["metadata"]).lower()
        text = text.replace(block["import_id"], "").replace(block["imported_at"].lower(), "")
        assert not any(value in text for value in PII_VALUES), text
        assert block["import_id"] == import_id and not {k.lower() for k in block} & PII_KEYS
        if customer_id != returning_id:
            assert set(row["metadata"]) == {"imports"}
    if source == "shopify":
        ada = by_hash[email_hash("ada.lovelace@example.com", key)]["metadata"]["imports"]["shopify"]
        assert (
            ada["total_orders"] == 12
            and ada["tags"] == ["vip", "newsletter"]
            and ada["external_id"] == "7001"
        )

    # The existing customer was updated by its owner: fresh in the table at once, then in PostgreSQL.
    status, returning = await get_customer(worker, merchant_id, returning_id)
    assert status == 200 and returning["source"] == "table", returning
    assert returning["metadata"]["tier"] == "legacy"
    assert returning["metadata"]["imports"][source]["import_id"] == import_id
    assert returning["version"] == 2

    async def persisted() -> bool:
        row = customer_rows(settings, merchant_id)[returning_id]
        return row["version"] == 2 and source in row["metadata"].get("imports", {})

    await eventually(persisted, timeout=30)

    # Events: import.initiated keyed by import_id; customer.created for the two new customers only,
    # carrying the email hash and never the email; customer.updated for the existing one.
    [initiated] = await read_topic(tansu, IMPORT_INITIATED, lambda r: r.key == import_id.encode(), 1)
    decoded = await codec.decode(initiated.value)
    assert [str(decoded["import_id"]), str(decoded["merchant_id"]), decoded["source"]] == [
        import_id,
        merchant_id,
        source,
    ]
    created = await read_topic(tansu, CUSTOMER_CREATED, lambda r: r.key.startswith(merchant_id.encode()), 3)
    created_ids = {r.key.decode().split(":")[1] for r in created} - {returning_id}
    assert created_ids == set(rows) - {returning_id}
    for record in created:
        event = await codec.decode(record.value)
        assert event["email_hash"] == rows[str(event["customer_id"])]["email_hash"]
        assert b"@example.com" not in record.value
    updated_key = f"{merchant_id}:{returning_id}".encode()
    updates = await read_topic(tansu, CUSTOMER_UPDATED, lambda r: r.key == updated_key, 1)
    versions = [(await codec.decode(r.value))["version"] for r in updates]
    assert 2 in versions, versions


async def test_50k_shopify_rows_with_bad_ones_complete_and_progress_streams_every_second(
    worker: WorkerProcess, settings: Settings, tansu: str, file_server: FileServer
) -> None:
    merchant_id = new_merchant(settings)
    data, bad_rows = shopify_csv(50_000)
    assert len(bad_rows) == 500
    url = file_server.add(f"{uuid.uuid4().hex[:8]}-50k.csv", data)

    consumer = AIOKafkaConsumer(
        UPDATES,
        bootstrap_servers=tansu.removeprefix("kafka://"),
        auto_offset_reset="latest",
        enable_auto_commit=False,
        fetch_max_wait_ms=100,
    )
    await consumer.start()
    await consumer.getmany(timeout_ms=500)  # joined and positioned at the end before the import starts
    messages: list[tuple[float, int, dict]] = []
    import_id = ""

    async def watch() -> None:
        while True:
            batches = await consumer.getmany(timeout_ms=200)
            arrived = time.monotonic()
            for records in batches.values():
                for record in records:
                    message = json.loads(record.value)
                    if message.get("import_id") == import_id:
                        messages.append((arrived, record.timestamp, message))
            if messages and messages[-1][2]["status"] in ("completed", "failed"):
                return

    streamed: list[tuple[float, dict]] = []  # what a WebSocket client of the worker receives
    http = aiohttp.ClientSession()
    ws = await http.ws_connect(f"{worker.url}/core/v1/updates/stream", params={"merchant_id": merchant_id})
    assert (await ws.receive_json(timeout=10))["type"] == "subscribed"

    async def stream() -> None:
        async for frame in ws:
            message = json.loads(frame.data)
            if message["type"] == "import.progress" and message.get("import_id") == import_id:
                streamed.append((time.monotonic(), message))
                if message["status"] in ("completed", "failed"):
                    return

    try:
        started = time.monotonic()
        status, log = await post_import(
            worker, {"merchant_id": merchant_id, "source": "shopify", "file_url": url}
        )
        assert status == 202, log
        import_id = log["import_id"]
        await asyncio.wait_for(asyncio.gather(watch(), stream()), timeout=180)
        elapsed = time.monotonic() - started
    finally:
        await consumer.stop()
        await ws.close()
        await http.close()

    log = await wait_final(worker, merchant_id, import_id)
    assert log["status"] == "completed", log
    assert (log["record_count"], log["error_count"]) == (49_500, 500)
    error_log = log["error_log"]
    assert (error_log["count"], len(error_log["errors"]), error_log["truncated"]) == (500, 100, True)
    assert [e["row"] for e in error_log["errors"]] == bad_rows[:100]
    assert error_log["errors"][:3] == [
        {"row": 101, "error": "email: not a valid email address"},
        {"row": 201, "error": "Total Orders: not a whole number"},
        {"row": 301, "error": "duplicate email in this file (first at row 300)"},
    ]
    with pg(settings) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM customers WHERE merchant_id = %s", (merchant_id,))
        assert cur.fetchone()[0] == 49_500

    final = messages[-1][2]
    assert final["status"] == "completed"
    assert (final["processed"], final["succeeded"], final["failed"], final["total"]) == (
        50_000,
        49_500,
        500,
        50_000,
    )
    running = [m for m in messages if m[2]["status"] == "processing"]
    assert len(running) >= 2, messages
    processed = [m[2]["processed"] for m in messages]
    assert processed == sorted(processed)
    stamps = [m[1] for m in messages]
    arrivals = [m[0] for m in messages]
    stamp_gaps = [(b - a) / 1000 for a, b in itertools.pairwise(stamps)]
    arrival_gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    print(
        f"\n50k import: {elapsed:.1f}s end to end, {49_500 / elapsed:.0f} customers/s; "
        f"{len(messages)} progress messages, max gap {max(stamp_gaps):.2f}s produced, "
        f"{max(arrival_gaps):.2f}s received"
    )
    assert max(stamp_gaps) <= 1.0, stamp_gaps
    assert max(arrival_gaps) <= 1.0, arrival_gaps

    # The WebSocket client saw the same progress: at least once a second throughout, then completed.
    assert [m["processed"] for _, m in streamed] == processed
    assert streamed[-1][1]["status"] == "completed" and streamed[-1][1]["succeeded"] == 49_500
    ws_gaps = [b - a for (a, _), (b, _) in itertools.pairwise(streamed)]
    print(f"WebSocket: {len(streamed)} progress messages, max gap {max(ws_gaps):.2f}s")
    assert max(ws_gaps) <= 1.0, ws_gaps


async def test_a_flaky_server_is_retried_and_a_dead_one_fails_after_five_tries(
    worker: WorkerProcess, settings: Settings, file_server: FileServer
) -> None:
    merchant_id = new_merchant(settings)
    name = f"{uuid.uuid4().hex[:8]}.csv"
    file_server.add(name, (DATA / "custom_customers.csv").read_bytes())

    _, flaky = await post_import(
        worker,
        {"merchant_id": merchant_id, "source": "custom", "file_url": file_server.url(f"/flaky/3/{name}")},
    )
    _, down = await post_import(
        worker, {"merchant_id": merchant_id, "source": "custom", "file_url": file_server.url(f"/down/{name}")}
    )
    log = await wait_final(worker, merchant_id, flaky["import_id"])
    assert (log["status"], log["record_count"], log["error_count"]) == ("completed", 3, 2), log
    assert file_server.requests[f"/flaky/3/{name}"] == 4

    log = await wait_final(worker, merchant_id, down["import_id"])
    assert log["status"] == "failed", log
    assert log["failure_reason"] == "download failed after 5 tries: HTTP 503 Service Unavailable"
    assert log["error_log"]["failure_reason"] == log["failure_reason"]  # GraphQL's ImportLog shows it
    assert file_server.requests[f"/down/{name}"] == 5


@pytest.mark.parametrize(
    ("body", "status", "field", "message"),
    [
        ({"source": "magento", "file_url": "https://example.com/a.csv"}, 400, "source", "must be one of"),
        ({"source": "custom", "file_url": "ftp://example.com/a.csv"}, 400, "file_url", "http://"),
        (
            {"source": "custom", "file_url": "http://169.254.169.254/latest/meta-data/"},
            400,
            "file_url",
            "private",
        ),
        ({"source": "custom", "file_url": "http://10.0.0.7/a.csv"}, 400, "file_url", "private"),
        ({"source": "custom", "file_url": "http://127.0.0.2:8080/a.csv"}, 400, "file_url", "private"),
        ({"source": "custom", "file_url": "http://[::1]:8080/a.csv"}, 400, "file_url", "private"),
        ({"source": "custom", "file_url": "http://167772167/a.csv"}, 400, "file_url", "private"),
        ({"source": "custom", "file_url": "file:///etc/passwd"}, 400, "file_url", "import directory"),
        ({"source": "custom", "file_url": "file://{root}/missing.csv"}, 400, "file_url", "no such file"),
        ({"source": "custom", "file_url": "file://{root}/huge.csv"}, 400, "file_url", "larger than 32 MiB"),
        ({"source": "custom"}, 400, "file_url", "is required"),
        (
            {"merchant_id": "nope", "source": "custom", "file_url": "https://e.com/a"},
            400,
            "merchant_id",
            "UUID",
        ),
    ],
)
async def test_refusals_at_start_name_the_field(
    worker: WorkerProcess,
    settings: Settings,
    data_root: Path,
    body: dict,
    status: int,
    field: str,
    message: str,
) -> None:
    root = import_root(data_root)
    with open(root / "huge.csv", "wb") as huge:
        huge.truncate(33 * 1024 * 1024)  # sparse: over the 32 MiB cap without writing it
    body = {"merchant_id": new_merchant(settings), **body}
    body = {k: v.replace("{root}", str(root)) for k, v in body.items()}
    got, answer = await post_import(worker, body)
    assert (got, answer["error"].get("field")) == (status, field), answer
    assert message in answer["error"]["message"], answer


async def test_refusals_found_while_downloading_fail_the_import(
    worker: WorkerProcess, settings: Settings, file_server: FileServer
) -> None:
    merchant_id = new_merchant(settings)
    cases = {
        file_server.url("/endless"): "download failed: the file is larger than 32 MiB",
        file_server.url("/redirect?to=http://169.254.169.254/latest/meta-data/"): (
            "download failed: the URL points to a private or reserved address"
        ),
        file_server.url("/files/never-added.csv"): "download failed: HTTP 404 Not Found",
    }
    started = {}
    for url in cases:
        status, log = await post_import(
            worker, {"merchant_id": merchant_id, "source": "custom", "file_url": url}
        )
        assert status == 202, log
        started[url] = log["import_id"]
    for url, reason in cases.items():
        log = await wait_final(worker, merchant_id, started[url])
        assert log["status"] == "failed" and reason in log["failure_reason"], (url, log)


async def test_flag_off_is_refused_on_every_transport(
    worker: WorkerProcess, settings: Settings, stub: CoreServiceStub
) -> None:
    merchant_id = new_merchant(settings)
    set_flag(settings, merchant_id, CUSTOMER_IMPORT, False, "cli:test")
    body = {"merchant_id": merchant_id, "source": "custom", "file_url": "https://example.com/a.csv"}
    status, answer = await post_import(worker, body)
    assert (status, answer["error"].get("flag")) == (403, CUSTOMER_IMPORT), answer
    with pytest.raises(GRPCError) as caught:
        await stub.ImportCustomers(pb.ImportCustomersRequest(**body))
    assert caught.value.status == Status.PERMISSION_DENIED
    answer = await graphql(worker, START, {"m": merchant_id, "s": "custom", "u": body["file_url"]})
    assert answer["errors"][0]["extensions"]["code"] == "FEATURE_DISABLED"


async def test_bad_input_on_grpc_and_graphql_names_the_field(
    worker: WorkerProcess, settings: Settings, stub: CoreServiceStub
) -> None:
    merchant_id = new_merchant(settings)
    with pytest.raises(GRPCError) as caught:
        await stub.ImportCustomers(
            pb.ImportCustomersRequest(merchant_id=merchant_id, source="csv", file_url="https://e.com/a")
        )
    assert caught.value.status == Status.INVALID_ARGUMENT and caught.value.message.startswith("source:")
    answer = await graphql(worker, START, {"m": merchant_id, "s": "custom", "u": "gopher://x"})
    assert answer["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "file_url"}
    with pytest.raises(GRPCError) as caught:
        await stub.ImportCustomers(
            pb.ImportCustomersRequest(
                merchant_id=str(uuid.uuid4()), source="custom", file_url="https://e.com/a"
            )
        )
    assert caught.value.status == Status.NOT_FOUND


async def test_logs_are_listed_newest_first_and_filtered(
    worker: WorkerProcess, settings: Settings, file_server: FileServer
) -> None:
    merchant_id = new_merchant(settings)
    name = f"{uuid.uuid4().hex[:8]}.csv"
    good = file_server.add(name, (DATA / "custom_customers.csv").read_bytes())
    before = await metric(worker, "core_imports_initiated_total", source="custom")
    ids = []
    for url in (good, file_server.url("/files/absent.csv")):
        _, log = await post_import(worker, {"merchant_id": merchant_id, "source": "custom", "file_url": url})
        ids.append(log["import_id"])
        await wait_final(worker, merchant_id, log["import_id"])
    assert await metric(worker, "core_imports_initiated_total", source="custom") == before + 2

    status, listed = await get_imports(worker, merchant_id=merchant_id)
    assert status == 200 and [log["import_id"] for log in listed["imports"]] == ids[::-1]
    status, failed = await get_imports(worker, merchant_id=merchant_id, status="failed")
    assert [log["import_id"] for log in failed["imports"]] == [ids[1]]
    answer = await graphql(worker, LOGS, {"m": merchant_id, "s": "completed"})
    [completed] = answer["data"]["getImportLogs"]
    assert (completed["import_id"], completed["record_count"]) == (ids[0], 3)

    status, answer = await get_imports(worker, merchant_id=merchant_id, status="done")
    assert (status, answer["error"]["field"]) == (400, "status")
    status, answer = await get_imports(worker, merchant_id=merchant_id, import_id=str(uuid.uuid4()))
    assert status == 404
    # An empty import_id is refused, not read as "no import_id" (found by schemathesis).
    status, answer = await get_imports(worker, merchant_id=merchant_id, import_id="")
    assert (status, answer["error"]["field"]) == (400, "import_id")
    with pg(settings) as conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
        cur.execute("SELECT status, file_url FROM customer_import_logs WHERE import_id = %s", (ids[0],))
        assert cur.fetchone() == {"status": "completed", "file_url": good}
    assert (await metric(worker, "core_import_duration_seconds_count", source="custom")) >= 2
