"""CustomerImportService through fakes: start an import, list and get its logs, with the refusals."""

from __future__ import annotations

import json
import uuid

import pytest

from core_app import topics
from core_app.customer_import.job import ImportJob
from core_app.domain.errors import NotFound, Unavailable, ValidationFailed
from core_app.security.errors import FeatureDisabled, Forbidden, Unauthenticated
from core_app.security.flags import CUSTOMER_IMPORT
from core_app.security.principal import EDIT, VIEW
from core_app.services.customer_import import CustomerImportService
from tests.unit.fakes import (
    FakeEncoder,
    FakeFilePolicy,
    FakeGuard,
    FakeImportLogs,
    FakePublisher,
    caller,
)

URL = "https://files.example.com/customers.csv?signature=secret"


class World:
    def __init__(self) -> None:
        self.merchant = str(uuid.uuid4())
        self.guard = FakeGuard(installed={self.merchant})
        self.logs = FakeImportLogs(merchants={self.merchant})
        self.files = FakeFilePolicy()
        self.publisher = FakePublisher()
        self.service = CustomerImportService(self.logs, self.files, self.guard, self.publisher, FakeEncoder())
        self.editor = caller(self.merchant, EDIT)
        self.viewer = caller(self.merchant, VIEW)


@pytest.fixture
def world() -> World:
    return World()


async def test_start_import_writes_the_pending_log_and_hands_the_job_over(world: World) -> None:
    started = await world.service.start_import(world.editor, world.merchant, "custom", URL)
    assert started["status"] == "pending" and started["source"] == "custom"
    assert started["file_url"] == "https://files.example.com/customers.csv"  # the secret stays out
    ((_, initiated),) = world.publisher.on(topics.IMPORT_INITIATED)
    assert json.loads(initiated)["import_id"] == started["import_id"]
    ((key, raw),) = world.publisher.on(topics.IMPORT_JOBS)
    job = ImportJob.from_json(raw)
    assert key == job.import_id == started["import_id"] and job.file_url == URL  # the agent fetches it
    assert world.guard.checked == [(world.merchant, EDIT, CUSTOMER_IMPORT)]
    (audit,) = world.logs.audits
    assert audit["action"] == "import.start" and audit["actor"] == world.editor.subject


async def test_start_import_refuses_a_caller_without_edit(world: World) -> None:
    with pytest.raises(Forbidden):
        await world.service.start_import(world.viewer, world.merchant, "custom", URL)
    assert world.publisher.sent == [] and world.logs.logs == {}


async def test_start_import_refuses_another_merchants_caller(world: World) -> None:
    with pytest.raises(Forbidden):
        await world.service.start_import(caller(str(uuid.uuid4()), EDIT), world.merchant, "custom", URL)


async def test_start_import_needs_a_caller(world: World) -> None:
    with pytest.raises(Unauthenticated):
        await world.service.start_import(None, world.merchant, "custom", URL)


async def test_start_import_refuses_when_the_feature_is_disabled(world: World) -> None:
    world.guard.disabled_flags.add(CUSTOMER_IMPORT)
    with pytest.raises(FeatureDisabled):
        await world.service.start_import(world.editor, world.merchant, "custom", URL)
    assert world.publisher.sent == []


async def test_start_import_for_a_merchant_not_installed_is_not_found(world: World) -> None:
    world.guard.installed.clear()
    with pytest.raises(NotFound):
        await world.service.start_import(world.editor, world.merchant, "custom", URL)


async def test_start_import_for_a_merchant_missing_in_postgres_is_not_found(world: World) -> None:
    world.logs.merchants.clear()
    with pytest.raises(NotFound):
        await world.service.start_import(world.editor, world.merchant, "custom", URL)
    assert world.logs.logs == {}


@pytest.mark.parametrize(
    ("source", "url", "field"),
    [
        ("csv", URL, "source"),
        ("custom", "ftp://files.example.com/a.csv", "file_url"),
        ("custom", "", "file_url"),
        ("custom", "https:///nohost.csv", "file_url"),
    ],
)
async def test_start_import_rejects_bad_input(world: World, source: str, url: str, field: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        await world.service.start_import(world.editor, world.merchant, source, url)
    assert refused.value.field == field


async def test_start_import_rejects_a_bad_merchant_id(world: World) -> None:
    with pytest.raises(ValidationFailed) as refused:
        await world.service.start_import(world.editor, "not-a-uuid", "custom", URL)
    assert refused.value.field == "merchant_id"


async def test_start_import_refuses_a_blocked_address(world: World) -> None:
    world.files.blocked.add("files.example.com")
    with pytest.raises(ValidationFailed):
        await world.service.start_import(world.editor, world.merchant, "custom", URL)
    assert world.logs.logs == {}


async def test_start_import_from_shopify_pulls_the_shops_admin_api(world: World) -> None:
    world.logs.shopify_shops[world.merchant] = "quirky.myshopify.com"
    await world.service.start_import(world.editor, world.merchant, "shopify_api", None)
    ((_, raw),) = world.publisher.on(topics.IMPORT_JOBS)
    assert ImportJob.from_json(raw).file_url == "https://quirky.myshopify.com/admin/customers.json"


async def test_start_import_from_shopify_needs_an_installed_app(world: World) -> None:
    with pytest.raises(ValidationFailed) as refused:
        await world.service.start_import(world.editor, world.merchant, "shopify_api", None)
    assert refused.value.field == "source"


async def test_start_import_that_cannot_be_queued_fails_its_log(world: World) -> None:
    async def broken(*_args: object, **_kwargs: object) -> None:
        raise ConnectionError("broker down")

    world.publisher.publish = broken  # type: ignore[method-assign]
    with pytest.raises(Unavailable):
        await world.service.start_import(world.editor, world.merchant, "custom", URL)
    ((import_id, reason),) = world.logs.failed
    assert world.logs.logs[import_id]["status"] == "failed" and "ConnectionError" in reason
    assert world.logs.audits == []


async def test_list_import_logs_newest_first_by_status(world: World) -> None:
    first = await world.service.start_import(world.editor, world.merchant, "custom", URL)
    second = await world.service.start_import(world.editor, world.merchant, "smile_io", URL)
    world.logs.logs[first["import_id"]]["status"] = "completed"
    listed = await world.service.list_import_logs(world.viewer, world.merchant)
    assert [log["import_id"] for log in listed] == [second["import_id"], first["import_id"]]
    done = await world.service.list_import_logs(world.viewer, world.merchant, "completed", "1")
    assert [log["import_id"] for log in done] == [first["import_id"]]


@pytest.mark.parametrize(("status", "limit", "field"), [("done", None, "status"), (None, "0", "limit")])
async def test_list_import_logs_rejects_bad_filters(
    world: World, status: str | None, limit: str | None, field: str
) -> None:
    with pytest.raises(ValidationFailed) as refused:
        await world.service.list_import_logs(world.viewer, world.merchant, status, limit)
    assert refused.value.field == field


async def test_list_import_logs_refuses_another_merchant(world: World) -> None:
    with pytest.raises(Forbidden):
        await world.service.list_import_logs(caller(str(uuid.uuid4()), VIEW), world.merchant)


async def test_get_import_log(world: World) -> None:
    started = await world.service.start_import(world.editor, world.merchant, "custom", URL)
    got = await world.service.get_import_log(world.viewer, world.merchant, started["import_id"])
    assert got == started


async def test_get_import_log_unknown_is_not_found(world: World) -> None:
    with pytest.raises(NotFound):
        await world.service.get_import_log(world.viewer, world.merchant, str(uuid.uuid4()))


async def test_get_import_log_refuses_a_caller_without_view(world: World) -> None:
    with pytest.raises(Forbidden):
        await world.service.get_import_log(caller(world.merchant), world.merchant, str(uuid.uuid4()))
