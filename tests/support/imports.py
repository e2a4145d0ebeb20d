"""Import helpers: generated import files (shared with bench/imports.py), the directory file://
imports may read, and calls to a worker's import routes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp

from core_app.settings import REPO_ROOT
from tests.support.processes import WorkerProcess, eventually


def shopify_csv(rows: int, bad_every: int = 100) -> tuple[bytes, list[int]]:
    """A Shopify export of `rows` customers, one in `bad_every` bad; (file, bad row numbers)."""
    header = (
        "Customer ID,First Name,Last Name,Email,Accepts Email Marketing,Default Address Company,"
        "Default Address Address1,Default Address Address2,Default Address City,"
        "Default Address Province Code,Default Address Country Code,Default Address Zip,"
        "Default Address Phone,Phone,Accepts SMS Marketing,Total Spent,Total Orders,Note,Tax Exempt,Tags\n"
    )
    lines, bad = [header], []
    for i in range(rows):
        email, orders = f"customer{i:06d}@bulk.example.com", str(i % 40)
        if i % bad_every == bad_every - 1:
            bad.append(i + 2)
            kind = (i // bad_every) % 3
            if kind == 0:
                email = f"customer{i:06d}.bulk.example.com"
            elif kind == 1:
                orders = "many"
            else:
                email = f"customer{i - 1:06d}@bulk.example.com"  # the row above: a duplicate
        lines.append(
            f"'{6000000 + i},First{i},Last{i},{email},yes,,{i} Main Street,,Springfield,IL,US,62701,,"
            f'+1 555 {i % 10000:04d},no,{i % 500}.25,{orders},"Note for, customer {i}",no,'
            f'"tag{i % 7}, bulk"\n'
        )
    return "".join(lines).encode(), bad


def import_root(data_root: Path) -> Path:
    """The directory file:// imports of the test workers may read (IMPORT_FILE_ROOT)."""
    root = data_root / "imports"
    root.mkdir(exist_ok=True)
    return root


DATA = REPO_ROOT / "tests" / "data"


async def post_import(worker: WorkerProcess, body: object) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{worker.url}/core/v1/imports", json=body) as response,
    ):
        return response.status, await response.json()


async def get_imports(worker: WorkerProcess, **params: str) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{worker.url}/core/v1/imports", params=params) as response,
    ):
        return response.status, await response.json()


async def wait_final(worker: WorkerProcess, merchant_id: str, import_id: str, timeout: float = 90) -> dict:
    async def final() -> dict | None:
        status, log = await get_imports(worker, merchant_id=merchant_id, import_id=import_id)
        assert status == 200, log
        return log if log["status"] in ("completed", "failed") else None

    return await eventually(final, timeout=timeout, interval=0.3)
