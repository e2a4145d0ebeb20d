"""The owner-update sender of a run: existing customers are changed by the worker that owns them.

The `customers` table is the read path's first source and must not go stale (docs/decisions.md
D51), so a batch's existing customers go, grouped by partition, as commands on core.import.commands
(at most UPDATE_COMMAND_MAX customers each). Their owners confirm on the import's Redis channel; the
import completes once every command is confirmed.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from core_app.customer_import import metrics
from core_app.customer_import.job import ImportJob
from core_app.customer_import.retries import ImportFailed, Retries
from core_app.customer_import.tally import Tally
from core_app.customer_import.writer import Assigned, row_fields
from core_app.domain.customer import customer_key
from core_app.domain.customer_import import RowError
from core_app.routing import key_partition

# Customers per owner command. It was 100 while table writes went through Faust's producer buffer
# (D27); they and the command's events go through the record writer now (D71, D242).
UPDATE_COMMAND_MAX = 500
SendUpdate = Callable[[int, dict[str, Any]], Awaitable[None]]


class OwnerUpdates:
    def __init__(
        self,
        job: ImportJob,
        run: int,
        partitions: int,
        reply_channel: str,
        send_update: SendUpdate,
        retries: Retries,
        tally: Tally,
    ) -> None:
        self.job = job
        self.run = run
        self.partitions = partitions
        self.reply_channel = reply_channel
        self.send_update = send_update
        self.retries = retries
        self.tally = tally
        self.awaiting: dict[str, list[int]] = {}  # owner command id -> rows it carries
        self.all_confirmed = asyncio.Event()
        self.all_confirmed.set()
        self.commands_sent = 0
        self.gathered: dict[int, list[dict[str, Any]]] = defaultdict(list)  # per partition, unsent

    def _by_partition(self, updates: Assigned) -> dict[int, list[dict[str, Any]]]:
        by_partition: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for item, customer_id in updates:
            key = customer_key(self.job.merchant_id, customer_id)
            fields = row_fields(item.row, self.job.import_id, self.job.created_at)
            by_partition[key_partition(key, self.partitions)].append(
                {"customer_id": customer_id, "row": item.row.row, "fields": fields}
            )
        return by_partition

    async def send(self, updates: Assigned) -> None:
        for partition, customers in self._by_partition(updates).items():
            for start in range(0, len(customers), UPDATE_COMMAND_MAX):
                await self._send_command(partition, customers[start : start + UPDATE_COMMAND_MAX])

    async def gather(self, updates: Assigned) -> None:
        """Like `send`, but a partition's customers wait for full commands across batches (D244):
        a 500-row batch spread over the partitions made commands of ~40, one round trip each."""
        for partition, customers in self._by_partition(updates).items():
            self.gathered[partition].extend(customers)
            while len(self.gathered[partition]) >= UPDATE_COMMAND_MAX:
                chunk = self.gathered[partition][:UPDATE_COMMAND_MAX]
                del self.gathered[partition][:UPDATE_COMMAND_MAX]  # taken before the await
                await self._send_command(partition, chunk)

    async def flush(self) -> None:
        """Send what `gather` holds (the end of the file)."""
        while self.gathered:
            partition, customers = self.gathered.popitem()
            for start in range(0, len(customers), UPDATE_COMMAND_MAX):
                await self._send_command(partition, customers[start : start + UPDATE_COMMAND_MAX])

    def abandon(self) -> None:
        self.gathered.clear()

    async def _send_command(self, partition: int, chunk: list[dict[str, Any]]) -> None:
        self.commands_sent += 1
        command = self._command(f"{self.job.import_id}:{self.run}:{self.commands_sent}", chunk)
        self.awaiting[command["command_id"]] = [customer["row"] for customer in chunk]
        self.all_confirmed.clear()
        await self.retries.call("broker", lambda: self.send_update(partition, command))

    def _command(self, command_id: str, customers: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "kind": "import_update",
            "command_id": command_id,
            "import_id": self.job.import_id,
            "merchant_id": self.job.merchant_id,
            "source": self.job.source,
            "occurred_at_ms": self.job.requested_at_ms,
            "reply_to": self.reply_channel,
            "customers": customers,
        }

    async def listen(self, replies: AsyncIterator[dict[str, Any]]) -> None:
        async for reply in replies:
            rows = self.awaiting.pop(str(reply.get("command_id")), None)
            if rows is None:
                continue  # a replayed command answered twice, or another run's
            updated = int(reply.get("updated", 0))
            self.tally.progress.updated += updated
            metrics.import_customers.labels(self.tally.source, "updated").inc(updated)
            for error in reply.get("errors", []):
                self.tally.row_error(RowError(error.get("row"), str(error.get("error"))))
            if not self.awaiting:
                self.all_confirmed.set()

    async def confirmed(self, timeout: float) -> None:
        """Wait for every command's confirmation; ImportFailed after `timeout` seconds."""
        try:
            await asyncio.wait_for(self.all_confirmed.wait(), timeout)
        except TimeoutError:
            waiting = sum(len(rows) for rows in self.awaiting.values())
            raise ImportFailed(
                f"{waiting} updates of existing customers were not confirmed by their owners within "
                f"{timeout:g}s; they apply when the owners catch up"
            ) from None
