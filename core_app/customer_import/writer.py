"""The store writer of a run: one batch of rows to PostgreSQL, and `customer.created` for the new.

One query finds the merchant's existing customers among the batch's email hashes, one statement
inserts the new ones with their `imported` timeline entries (D170), their emails encrypted and
hashed here in the trigger's format (D253). New customers get a deterministic id,
uuid5(import_id, email_hash), so a re-run of the same import recognises the customers it created
and announces them again with the same event id instead of treating them as updates. Each
announcement carries the email sealed under the customer's own data key, as API creates do (D172).
Existing customers are handed back: their owners change them (owner_updates.py, D51).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from core_app.customer_import import metrics
from core_app.customer_import.ports import CustomerRows
from core_app.customer_import.retries import Retries
from core_app.customer_import.tally import Pending, Tally
from core_app.domain.customer_import import ImportedRow, RowError, imported_metadata
from core_app.domain.timeline import imported_entry
from core_app.email_cipher import encrypt_email

Assigned = list[tuple[Pending, str]]  # a row and its customer id
PublishCreated = Callable[[list[dict[str, Any]]], Awaitable[None]]
# (merchant_id, [(customer_id, email)]) -> customer_id -> sealed email (None: the customer was erased)
SealEmails = Callable[[str, list[tuple[str, str]]], Awaitable[dict[str, str | None]]]


def row_fields(row: ImportedRow, import_id: str, imported_at: str) -> dict[str, Any]:
    """The row's `metadata.imports.{source}` block."""
    return {**row.fields, "import_id": import_id, "imported_at": imported_at}


class StoreWriter:
    def __init__(
        self,
        import_id: str,
        merchant_id: str,
        created_at: str,
        rows: CustomerRows,
        publish_created: PublishCreated,
        retries: Retries,
        tally: Tally,
        db_slots: asyncio.Semaphore,
        seal_emails: SealEmails,
        email_key: str,
    ) -> None:
        self.seal_emails = seal_emails
        self.email_key = email_key  # the key PostgreSQL connections carry as core.email_key
        self.db_slots = db_slots  # batches in PostgreSQL at once (the run's other batches announce)
        self.import_id = import_id
        self.merchant_id = merchant_id
        self.created_at = created_at
        self.rows = rows
        self.publish_created = publish_created
        self.retries = retries
        self.tally = tally
        self.namespace = uuid.UUID(import_id)
        self.created_ms = int(datetime.fromisoformat(created_at.replace("Z", "+00:00")).timestamp() * 1000)

    def new_id(self, digest: str) -> str:
        return str(uuid.uuid5(self.namespace, digest))

    async def write(self, batch: list[Pending]) -> Assigned:
        """Store the batch and announce its new customers; returns the existing ones to update."""
        async with self.db_slots:
            began = time.perf_counter()
            existing, inserted = await self._store(batch)
            self.tally.seconds["database"] += time.perf_counter() - began
        created: Assigned = []
        updates: Assigned = []
        for item in batch:
            if item.email_hash in inserted:
                created.append((item, inserted[item.email_hash]))
            elif item.email_hash in existing:
                customer_id = existing[item.email_hash]
                if customer_id == self.new_id(item.email_hash):
                    created.append((item, customer_id))  # created by an earlier run of this import
                else:
                    updates.append((item, customer_id))
            else:
                error = RowError(item.row.row, "conflicts with an existing customer id; run the import again")
                self.tally.row_error(error)
        began = time.perf_counter()
        await self._announce(created)
        self.tally.seconds["announce"] += time.perf_counter() - began
        self.tally.progress.created += len(created)
        metrics.import_customers.labels(self.tally.source, "created").inc(len(created))
        return updates

    async def _store(self, batch: list[Pending]) -> tuple[dict[str, str], dict[str, str]]:
        """(existing customers, customers inserted now), each email_hash -> customer_id."""
        merchant_id = self.merchant_id
        hashes = [item.email_hash for item in batch]
        existing = await self.retries.call("database", lambda: self.rows.existing(merchant_id, hashes))
        fresh = [item for item in batch if item.email_hash not in existing]
        rows = [
            {
                "id": self.new_id(item.email_hash),
                **self._email_columns(item),
                "metadata": imported_metadata(
                    {}, self.tally.source, row_fields(item.row, self.import_id, self.created_at)
                ),
                "entry": imported_entry(self.import_id, self.tally.source, item.row.row, self.created_ms),
            }
            for item in fresh
        ]
        inserted = await self.retries.call("database", lambda: self.rows.insert(merchant_id, rows))
        raced = [item.email_hash for item in fresh if item.email_hash not in inserted]
        if raced:  # created meanwhile by someone else (or an id clash): look them up again
            existing |= await self.retries.call("database", lambda: self.rows.existing(merchant_id, raced))
        return existing, inserted

    def _email_columns(self, item: Pending) -> dict[str, str]:
        """The stored email and hash, made here so PostgreSQL skips pgcrypto per row (D253)."""
        email = item.row.email
        if not email.isascii():  # PostgreSQL's lower() may fold it otherwise: the trigger hashes it
            return {"email": email}
        return {"email": encrypt_email(email, self.email_key), "email_hash": item.email_hash}

    async def _announce(self, created: Assigned) -> None:
        if not created:
            return
        now = datetime.now(UTC)
        pairs = [(customer_id, item.row.email) for item, customer_id in created]
        sealed = await self.retries.call("database", lambda: self.seal_emails(self.merchant_id, pairs))
        records = [
            {
                # The same customer from a re-run of this import gets the same event id.
                "event_id": str(uuid.uuid5(self.namespace, f"created:{customer_id}")),
                "customer_id": customer_id,
                "merchant_id": self.merchant_id,
                "email_hash": item.email_hash,
                "email": sealed.get(customer_id),  # for Campaign; None once the customer was erased
                "created_at": now,
            }
            for item, customer_id in created
        ]
        await self.retries.call("broker", lambda: self.publish_created(records))
