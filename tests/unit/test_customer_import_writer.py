"""StoreWriter: a batch to the store, new customers announced with stable ids, existing ones
handed back for their owners, transient database errors retried."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from core_app.customer_import.retries import ImportFailed
from core_app.customer_import.tally import Pending
from core_app.customer_import.writer import StoreWriter
from core_app.domain.customer_import import ImportedRow
from core_app.domain.email import email_hash
from core_app.domain.timeline import describe
from tests.support.customer_import import SETTINGS, a_job, a_tally, retries
from tests.unit.fakes import FakeCustomerRows, FakeSealingKeys, seal_all

KEY = SETTINGS.email_hash_key.get_secret_value()


def pending(row: int, email: str) -> Pending:
    return Pending(ImportedRow(row, email, {"points": row}), email_hash(email, KEY))


class World:
    def __init__(self, rows: FakeCustomerRows | None = None) -> None:
        self.job = a_job()
        self.tally = a_tally(self.job)
        self.rows = rows or FakeCustomerRows()
        self.announced: list[dict[str, object]] = []
        self.keys = FakeSealingKeys()
        self.writer = StoreWriter(
            self.job.import_id,
            self.job.merchant_id,
            self.job.created_at,
            self.rows,
            self.publish,
            retries(),
            self.tally,
            asyncio.Semaphore(2),
            lambda merchant, pairs: seal_all(self.keys, merchant, pairs),
            SETTINGS.email_encryption_key.get_secret_value(),
        )

    async def publish(self, records: list[dict[str, object]]) -> None:
        self.announced += records


async def test_new_customers_are_inserted_and_announced_with_stable_ids() -> None:
    world = World()
    batch = [pending(2, "a@example.com"), pending(3, "b@example.com")]
    assert await world.writer.write(batch) == []
    namespace = uuid.UUID(world.job.import_id)
    ids = [str(uuid.uuid5(namespace, item.email_hash)) for item in batch]
    assert [row["id"] for row in world.rows.inserted] == ids
    metadata = world.rows.inserted[0]["metadata"]["imports"]["custom"]
    assert metadata == {"points": 2, "import_id": world.job.import_id, "imported_at": world.job.created_at}
    assert [record["customer_id"] for record in world.announced] == ids
    assert world.announced[0]["event_id"] == str(uuid.uuid5(namespace, f"created:{ids[0]}"))
    assert world.tally.progress.created == 2
    # The email travels sealed under each customer's own key (D172), never in plaintext.
    merchant = world.job.merchant_id
    for record, email in zip(world.announced, ["a@example.com", "b@example.com"], strict=True):
        assert record["email"] != email and email not in str(record)
        assert (
            await world.keys.decrypt_email(merchant, str(record["customer_id"]), str(record["email"]))
            == email
        )
    # Each new row carries its `imported` timeline entry, naming the import and the row.
    entry = world.rows.inserted[0]["entry"]
    assert entry["kind"] == "imported" and entry["version"] == 0
    reason = describe(entry["kind"], entry["change"], entry["source"])
    assert reason == f"imported from custom (import {world.job.import_id}, row 2)"


async def test_new_rows_carry_the_worker_made_ciphertext_and_hash() -> None:
    # D253: PostgreSQL gets the trigger's `aes256:` ciphertext and the hash, never the address; an
    # address outside ASCII goes as before, for the trigger to fold, hash and encrypt.
    world = World()
    batch = [pending(2, "a@example.com"), pending(3, "ünï@example.com")]
    await world.writer.write(batch)
    plain, folded = world.rows.inserted
    assert plain["email"].startswith("aes256:") and "a@example.com" not in str(plain)
    assert plain["email_hash"] == batch[0].email_hash
    assert folded["email"] == "ünï@example.com" and "email_hash" not in folded


async def test_an_erased_customer_is_announced_without_an_email() -> None:
    world = World()
    item = pending(2, "gone@example.com")
    customer_id = world.writer.new_id(item.email_hash)
    world.keys.shredded.add((world.job.merchant_id, customer_id))
    await world.writer.write([item])
    assert world.announced[0]["customer_id"] == customer_id and world.announced[0]["email"] is None


async def test_existing_customers_are_handed_back_for_their_owners() -> None:
    existing = pending(2, "known@example.com")
    world = World(FakeCustomerRows(customers={existing.email_hash: "c-1"}))
    updates = await world.writer.write([existing, pending(3, "new@example.com")])
    assert [(item.row.row, customer_id) for item, customer_id in updates] == [(2, "c-1")]
    assert world.tally.progress.created == 1 and len(world.announced) == 1


async def test_a_rerun_announces_the_customers_it_created_again() -> None:
    world = World()
    batch = [pending(2, "a@example.com")]
    await world.writer.write(batch)
    first = list(world.announced)
    assert await world.writer.write(batch) == []  # found, with this import's id: created, not updated
    assert world.announced[1]["event_id"] == first[0]["event_id"]


async def test_a_customer_created_meanwhile_is_an_update() -> None:
    item = pending(2, "raced@example.com")
    world = World(FakeCustomerRows(steal={item.email_hash}))
    updates = await world.writer.write([item])
    assert [customer_id for _, customer_id in updates] == [f"someone-else-{item.email_hash[:8]}"]
    assert world.announced == []


async def test_a_transient_database_error_is_retried() -> None:
    world = World(FakeCustomerRows(fail_times=2))
    await world.writer.write([pending(2, "a@example.com")])
    assert world.tally.progress.created == 1


async def test_a_database_that_stays_down_fails_the_import() -> None:
    world = World(FakeCustomerRows(fail_times=10))
    with pytest.raises(ImportFailed, match="database unavailable after 3 tries: OperationalError"):
        await world.writer.write([pending(2, "a@example.com")])
