"""The ports of the GDPR use cases (issue 17): request tracking, data exports and the shop purge.
Beside core_app/services/ports.py, which would pass its size limit with them; the same rules apply
(adapters implement them, tests/unit/fakes.py fakes them)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from core_app.domain.gdpr import GdprRequest, OpenRequests, SealedExport
from core_app.security.principal import Principal


class GdprRequestStore(Protocol):
    """`gdpr_requests` (core_app/gdpr_store.PgGdprStore): one row per request, no PII."""

    async def record(self, requests: Sequence[GdprRequest]) -> list[str]:
        """Insert the requests not recorded yet; returns the ids that were new."""
        ...

    async def failed_attempt(self, request_id: str, error: str, final: bool) -> None:
        """One more failed attempt; `final`: no retry is left, the request is `failed` (reported)."""
        ...

    async def finish(self, request_id: str, result: dict[str, Any]) -> bool:
        """`done` with its result (counts, ids); False when it was done already."""
        ...

    async def open_summary(self) -> OpenRequests: ...


class GdprExportStore(Protocol):
    """What a data export reads besides the customer, and where it is kept (`gdpr_exports`)."""

    async def import_logs(self, merchant_id: str, import_ids: Sequence[str]) -> list[dict[str, Any]]: ...

    async def audit_entries(self, merchant_id: str, customer_id: str) -> list[dict[str, Any]]: ...

    async def save(self, export: SealedExport) -> None: ...

    async def load(self, merchant_id: str, export_id: str) -> SealedExport | None: ...


class CustomerReader(Protocol):
    """The customer's current view through the read path (CustomerService.read: table, owner,
    Redis, PostgreSQL), without a caller's check: the service reads for itself."""

    async def read(self, merchant_id: str, customer_id: str) -> tuple[dict[str, Any], str]: ...


class CustomerWriter(Protocol):
    """The customer write path (CustomerService): create and update through the key's owner."""

    async def create(
        self, principal: Principal | None, merchant_id: Any, email: Any, metadata: Any
    ) -> dict[str, Any]: ...

    async def update(
        self, principal: Principal | None, merchant_id: Any, customer_id: Any, email: Any, metadata: Any
    ) -> dict[str, Any]: ...

    async def read(self, merchant_id: str, customer_id: str) -> tuple[dict[str, Any], str]: ...


class ShopData(Protocol):
    """A purged shop's rows in PostgreSQL (core_app/shop_purge_store.PgShopData)."""

    async def shred_data_keys(self, merchant_id: str) -> int:
        """Every data key of the merchant's customers deleted for good; how many were live."""
        ...

    async def delete_rows(self, merchant_id: str) -> tuple[dict[str, int], list[str]]:
        """Customers (in chunks), their data keys, settings, import logs, API keys, exports and
        parked events deleted: (counts by kind, the deleted customers' ids). Idempotent."""
        ...


class TablePurges(Protocol):
    """The owners of every table partition drop a merchant's entries by tombstones through the
    changelogs (core_app/table_purge.TablePurgeClient); returns the entries dropped by table."""

    async def purge(self, merchant_id: str) -> dict[str, int]: ...
