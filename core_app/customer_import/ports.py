"""The ports of one import run (`typing.Protocol`): what the run's collaborators need from the
worker. agents/customer_import.FaustJobIO is the adapter on Faust, PostgreSQL and Redis;
tests/unit/fakes.py holds in-memory ones."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Protocol

from core_app.settings import Settings

if TYPE_CHECKING:
    from core_app.customer_import.fetch import Download
    from core_app.customer_import.job import ImportJob


class CustomerRows(Protocol):
    """The merchant's customers by email hash, looked up and inserted in batches (store.py)."""

    async def existing(self, merchant_id: str, hashes: list[str]) -> dict[str, str]: ...

    async def insert(self, merchant_id: str, rows: list[dict[str, Any]]) -> dict[str, str]: ...


class JobIO(Protocol):
    """What a run needs from the worker (Faust table and topics, Redis, PostgreSQL, the source)."""

    settings: Settings
    rows: CustomerRows
    partitions: int

    def open_source(self, job: ImportJob) -> AbstractAsyncContextManager[Download]: ...

    def save_log(self, state: dict[str, Any]) -> None: ...

    async def publish_progress(self, message: dict[str, Any]) -> None: ...

    async def publish_created(self, records: list[dict[str, Any]]) -> None: ...

    async def seal_emails(self, merchant_id: str, pairs: list[tuple[str, str]]) -> dict[str, str | None]:
        """Each (customer_id, email) sealed under that customer's data key (None: erased)."""
        ...

    async def send_update(self, partition: int, command: dict[str, Any]) -> None: ...

    async def import_enabled(self, merchant_id: str) -> bool: ...

    def replies(self, channel: str) -> AbstractAsyncContextManager[AsyncIterator[dict[str, Any]]]: ...

    def reply_channel(self, import_id: str) -> str: ...
