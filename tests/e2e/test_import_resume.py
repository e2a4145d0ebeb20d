"""An import survives a worker restart: the run stops with the worker, and resumes when the worker
recovers the import's `import_logs` partition, ending with the same counts as an uninterrupted run."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from core_app.settings import Settings
from tests.support.db import pg
from tests.support.events import new_merchant
from tests.support.file_server import FileServer
from tests.support.imports import get_imports, post_import, shopify_csv, wait_final
from tests.support.processes import (
    eventually,
    running_tansu,
    start_worker,
    stop_process,
    wait_ready,
)


@pytest.fixture(scope="module")
def own_tansu() -> Iterator[str]:
    with running_tansu() as url:
        yield url


@pytest.fixture
async def server() -> AsyncIterator[FileServer]:
    files = FileServer()
    await files.start()
    yield files
    await files.stop()


async def test_an_interrupted_import_resumes_after_a_restart(
    worker_env: dict[str, str], own_tansu: str, data_root: Path, settings: Settings, server: FileServer
) -> None:
    env = worker_env | {"KAFKA_BROKER": own_tansu, "DATA_DIR": str(data_root / "resume-data")}
    merchant_id = new_merchant(settings)
    data, bad_rows = shopify_csv(30_000)
    url = server.add(f"{uuid.uuid4().hex[:8]}.csv", data)

    worker = start_worker("worker-import-resume", env)
    try:
        await wait_ready(worker)
        status, log = await post_import(
            worker, {"merchant_id": merchant_id, "source": "shopify", "file_url": url}
        )
        assert status == 202, log
        import_id = log["import_id"]

        async def halfway() -> bool:
            _, current = await get_imports(worker, merchant_id=merchant_id, import_id=import_id)
            assert current["status"] != "completed", "the import ended before the restart"
            return current["status"] == "processing" and current["record_count"] >= 2_000

        await eventually(halfway, timeout=60, interval=0.2)
        stop_process(worker.process)
        assert worker.process.returncode == 0, worker.log_tail()
        with pg(settings) as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM customers WHERE merchant_id = %s", (merchant_id,))
            before = cur.fetchone()[0]
        assert 0 < before < 30_000 - len(bad_rows)

        offset = worker.log_path.stat().st_size
        worker = start_worker("worker-import-resume", env)
        await wait_ready(worker)
        log = await wait_final(worker, merchant_id, import_id, timeout=120)
    finally:
        stop_process(worker.process)

    assert log["status"] == "completed", log
    assert (log["record_count"], log["error_count"]) == (30_000 - len(bad_rows), len(bad_rows))
    with pg(settings) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM customers WHERE merchant_id = %s", (merchant_id,))
        assert cur.fetchone()[0] == 30_000 - len(bad_rows)
    assert "resuming an interrupted import" in worker.log_path.read_text()[offset:]
    assert server.requests[f"/files/{url.rsplit('/', 1)[1]}"] == 2
