"""A real streaming replica (pg_basebackup of a private primary, a second postmaster): the customer
store's fallback and list reads are served by it, writes never are, the writer reads its own writes,
and reads go back to the primary while the replica lags beyond the bound or is stopped (D220).

The primary is a private cluster, not the shared server: the shared one allows no replication
connections, and it must never be reconfigured or restarted by a test.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import aiopg
import psycopg2
import pytest
from prometheus_client import REGISTRY

from core_app.customer_adapters import PgCustomerStore
from core_app.db import create_pool
from core_app.domain.customer_query import parse_list_query
from core_app.migrate import migrate
from core_app.read_replicas import ReadRouter
from core_app.runtime import read_router
from core_app.settings import Settings
from tests.support.events import insert_customers, new_merchant
from tests.support.postgres import ThrowawayPostgres
from tests.support.processes import eventually


@dataclass
class Replicated:
    primary: ThrowawayPostgres
    replica: ThrowawayPostgres
    settings: Settings  # the primary, with CORE_DB_READ_URLS naming the replica


@pytest.fixture(scope="module")
def replicated(settings: Settings) -> Iterator[Replicated]:
    primary, replica = ThrowawayPostgres(), ThrowawayPostgres()
    try:
        primary.init()
        own = settings.model_copy(update={"core_db_port": primary.port})
        migrate(own)
        replica.replica_of(primary)
        url = f"postgresql://postgres@127.0.0.1:{replica.port}/{own.core_db_name}"
        yield Replicated(primary, replica, own.model_copy(update={"core_db_read_urls": url}))
    finally:
        replica.remove()
        primary.remove()


@pytest.fixture
async def store(replicated: Replicated) -> AsyncIterator[tuple[PgCustomerStore, ReadRouter]]:
    settings = replicated.settings.model_copy(update={"core_db_read_check_interval": 0.1})
    pool = await create_pool(settings, minsize=0)
    reads = read_router(settings, pool)
    reads.max_lag = 30.0  # lowered where the lag bound is the point
    yield PgCustomerStore(pool, reads), reads
    await reads.close()
    pool.close()
    await pool.wait_closed()


def counted(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def on_replica(replicated: Replicated, sql: str) -> None:
    with psycopg2.connect(
        host="127.0.0.1", port=replicated.replica.port, user="postgres", dbname="postgres"
    ) as conn:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql)


def set_version(settings: Settings, merchant_id: str, customer_id: str, version: int) -> None:
    """A write on the primary by someone else (not through the store: not the store's own write)."""
    with psycopg2.connect(settings.db_dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "UPDATE customers SET version = %s WHERE merchant_id = %s AND id = %s",
            (version, merchant_id, customer_id),
        )


async def version_of(store: PgCustomerStore, merchant_id: str, customer_id: str) -> int | None:
    state = await store.fetch(merchant_id, customer_id)
    return state.version if state is not None else None


async def replicated_row(store: PgCustomerStore, settings: Settings) -> tuple[str, str]:
    """A merchant and customer written on the primary and already replayed by the replica."""
    merchant_id = new_merchant(settings)
    [(customer_id, _)] = insert_customers(settings, merchant_id, 1)

    async def on_replica_too() -> bool:
        return await version_of(store, merchant_id, customer_id) is not None

    await eventually(on_replica_too, timeout=20)
    return merchant_id, customer_id


async def page_ids(store: PgCustomerStore, merchant_id: str) -> set[str]:
    query = parse_list_query({"merchant_id": merchant_id, "limit": "50"}, b"k" * 32)
    return {row["id"] for row in await store.page(query, email_hash=None, thresholds=None, with_pii=False)}


async def test_replica_serves_reads_writer_reads_its_writes_lag_goes_to_primary(
    replicated: Replicated, store: tuple[PgCustomerStore, ReadRouter]
) -> None:
    customers, reads = store
    settings = replicated.settings
    merchant_id, customer_id = await replicated_row(customers, settings)
    other_merchant, other_customer = await replicated_row(customers, settings)
    on_replica(replicated, "SELECT pg_wal_replay_pause()")
    try:
        # Served by the replica: a write made on the primary since the pause is not there yet.
        set_version(settings, merchant_id, customer_id, 7)
        [(unreplayed, _)] = insert_customers(settings, merchant_id, 1)
        on_replica_before = counted("core_db_reads_total", target="replica")
        assert await version_of(customers, merchant_id, customer_id) == 0
        assert await page_ids(customers, merchant_id) == {customer_id}
        assert counted("core_db_reads_total", target="replica") == on_replica_before + 2

        # The writer's own write goes to the primary (the replica is read-only and paused) and its
        # reads of that merchant follow it there; other merchants still read the replica.
        own_before = counted("core_db_read_fallbacks_total", reason="read_your_writes")
        created = await customers.insert(other_merchant, str(uuid.uuid4()), "new@example.com", {})
        assert await version_of(customers, other_merchant, created.customer_id) == created.version
        assert await page_ids(customers, other_merchant) == {other_customer, created.customer_id}
        assert counted("core_db_read_fallbacks_total", reason="read_your_writes") == own_before + 2
        assert await version_of(customers, merchant_id, customer_id) == 0  # still the replica

        # Beyond the lag bound every read goes back to the primary, and sees the latest writes.
        reads.max_lag = 0.3
        lag_before = counted("core_db_read_fallbacks_total", reason="lag")

        async def fresh() -> bool:
            return await version_of(customers, merchant_id, customer_id) == 7

        await eventually(fresh, timeout=10, interval=0.1)
        assert await page_ids(customers, merchant_id) == {customer_id, unreplayed}
        assert counted("core_db_read_fallbacks_total", reason="lag") >= lag_before + 2
        assert counted("core_db_replica_up", replica=f"127.0.0.1:{replicated.replica.port}") == 0
    finally:
        on_replica(replicated, "SELECT pg_wal_replay_resume()")
    # Caught up again: the replica serves once more.
    before = counted("core_db_reads_total", target="replica")

    async def replica_serves() -> bool:
        await version_of(customers, merchant_id, customer_id)
        return counted("core_db_reads_total", target="replica") > before

    await eventually(replica_serves, timeout=10, interval=0.1)


async def test_a_stopped_replica_sends_reads_to_the_primary(
    replicated: Replicated, store: tuple[PgCustomerStore, ReadRouter]
) -> None:
    customers, _reads = store
    settings = replicated.settings
    merchant_id, customer_id = await replicated_row(customers, settings)
    replicated.replica.stop("immediate")
    try:
        down_before = counted("core_db_read_fallbacks_total", reason="down")
        set_version(settings, merchant_id, customer_id, 3)
        assert await version_of(customers, merchant_id, customer_id) == 3
        assert await page_ids(customers, merchant_id) == {customer_id}
        assert counted("core_db_read_fallbacks_total", reason="down") >= down_before + 2
    finally:
        replicated.replica.start()
    before = counted("core_db_reads_total", target="replica")

    async def replica_serves() -> bool:
        return await version_of(customers, merchant_id, customer_id) == 3 and (
            counted("core_db_reads_total", target="replica") > before
        )

    await eventually(replica_serves, timeout=20, interval=0.2)


async def test_the_replica_refuses_writes(replicated: Replicated) -> None:
    """What makes "never serves writes" checkable: a write sent to the replica would fail."""
    replica_pool: aiopg.Pool = await create_pool(replicated.settings, dsn=replicated.settings.db_read_dsns[0])
    try:
        async with replica_pool.acquire() as conn, conn.cursor() as cur:
            with pytest.raises(psycopg2.errors.ReadOnlySqlTransaction):
                await cur.execute(
                    "INSERT INTO merchants (id, shop_domain) VALUES (%s, 'x.myshopify.com')",
                    (str(uuid.uuid4()),),
                )
    finally:
        replica_pool.close()
        await replica_pool.wait_closed()
