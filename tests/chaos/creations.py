"""Steps between the nemeses: customers created mid-run through the API and by an import, and erasures.

A created customer joins the load (and the readers) once PostgreSQL holds it, with what PostgreSQL
holds as its base. An erasure goes to keys retired from the load one step earlier, once a read
shows all their acknowledged events applied: a REDACT skips every event applied after it, and the
sources are separate topics, so an erasure racing a key's last events would make its final version
depend on the order the topics are consumed in.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import aiohttp
import psycopg2.extras

from core_app.domain.email import email_hash
from tests.chaos.model import KeyState
from tests.chaos.verifier import api_states, pg_states
from tests.support.db import pg
from tests.support.imports import post_import, wait_final

if TYPE_CHECKING:
    from tests.chaos.run import Chaos


async def create_by_api(chaos: Chaos) -> None:
    """`POST /core/v1/customers` through a random worker, one customer at a time."""
    ids: list[tuple[str, str]] = []
    timeout = aiohttp.ClientTimeout(total=15)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        for n in range(chaos.config.created_per_step):
            worker = chaos.rng.choice(chaos.stack.cluster.workers)
            merchant_id = chaos.rng.choice(chaos.merchants)
            body = {
                "merchant_id": merchant_id,
                "email": f"api-{chaos.config.seed}-{len(chaos.log.keys)}-{n}@ex.com",
            }
            try:
                async with http.post(f"{worker.url}/core/v1/customers", json=body) as response:
                    answer = await response.json()
                    status = response.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                status, answer = 0, {"error": repr(exc)}
            if status == 201:
                ids.append((merchant_id, answer["id"]))
            else:
                chaos.created[f"api failed {status}"] += 1
    chaos.created["api"] += await adopt(chaos, ids)


async def create_by_import(chaos: Chaos) -> None:
    """A `custom` CSV import of new customers (file://, under the stack's import root)."""
    merchant_id = chaos.rng.choice(chaos.merchants)
    tag = f"imp-{chaos.config.seed}-{len(chaos.log.keys)}"
    emails = [f"{tag}-{n}@ex.com" for n in range(chaos.config.created_per_step)]
    path = chaos.stack.workdir / "imports" / f"{tag}.csv"
    path.write_text("email,points\n" + "".join(f"{email},{n}\n" for n, email in enumerate(emails)))
    worker = chaos.rng.choice(chaos.stack.cluster.workers)
    body = {"merchant_id": merchant_id, "source": "custom", "file_url": f"file://{path}"}
    status, started = await post_import(worker, body)
    if status != 202 and status != 201:
        chaos.created[f"import failed {status}"] += 1
        return
    try:
        final = (await wait_final(worker, merchant_id, started["import_id"], timeout=20))["status"]
    except AssertionError:
        final = "not final in 20 s"
    if final != "completed":
        chaos.created[f"import {final}"] += 1
    key = chaos.stack.settings.email_hash_key.get_secret_value()
    hashes = [email_hash(email, key) for email in emails]
    ids = await asyncio.to_thread(ids_by_hash, chaos, merchant_id, hashes)
    chaos.created["import"] += await adopt(chaos, [(merchant_id, cid) for cid in ids])


def ids_by_hash(chaos: Chaos, merchant_id: str, hashes: list[str]) -> list[str]:
    with pg(chaos.stack.settings) as conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
        cur.execute(
            "SELECT id::text AS id FROM customers WHERE merchant_id = %s AND email_hash = ANY(%s)",
            (merchant_id, hashes),
        )
        return [row["id"] for row in cur.fetchall()]


async def adopt(chaos: Chaos, keys: list[tuple[str, str]], timeout: float = 30.0) -> int:
    """Add `keys` to the load once PostgreSQL holds them, unchanged over 1.5 s and as their owners
    read them: their base. (The API inserts a version-0 row at once and its owner's version 1 reaches
    PostgreSQL through the sink, which can lag for seconds after a PostgreSQL or sink restart.)"""
    deadline, previous = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        rows = await asyncio.to_thread(pg_states, chaos.stack.settings, chaos.merchants)
        now = {key: rows.get(key) for key in keys}
        if None not in now.values() and now == previous and now == await owners_read(chaos, keys):
            for key, state in now.items():
                assert state is not None
                chaos.log.add(*key, state)
                chaos.readers.keys.append(key)
            return len(keys)
        previous = now
        await asyncio.sleep(1.5)
    chaos.created["not persisted in time"] += len(keys)
    return 0


async def owners_read(chaos: Chaos, keys: list[tuple[str, str]]) -> dict[tuple[str, str], KeyState | None]:
    """The keys as one worker reads them over REST (from each key's owner: table, else PostgreSQL)."""
    states = await api_states(chaos.stack.cluster.workers[:1], keys)
    rest = next(iter(s for (_, transport), s in states.items() if transport == "rest"))
    return {key: rest.get(key) for key in keys}


async def erase(chaos: Chaos, retire: bool = True) -> None:
    """REDACT the keys retired at the last step whose acknowledged events all read back applied; then
    retire the next few."""
    if chaos.pending_erase:
        rest = await owners_read(chaos, chaos.pending_erase)
        ready = [key for key in chaos.pending_erase if _settled(chaos, key, rest[key])]
        for key in ready:
            await chaos.generator.send(key, "gdpr")
        chaos.created["erased"] += len(ready)
        chaos.pending_erase = [key for key in chaos.pending_erase if key not in ready]
    if retire:
        for key in chaos.rng.sample(chaos.log.active(), chaos.config.erased_per_step):
            chaos.log.keys[key].retired = True
            chaos.pending_erase.append(key)


def _settled(chaos: Chaos, key: tuple[str, str], got: KeyState | None) -> bool:
    return got is not None and got.version == chaos.log.keys[key].expected().version
