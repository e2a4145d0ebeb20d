"""What the GDPR use cases take (built once per worker by `Components.gdpr`; the unit tests pass
the fakes of tests/unit/fakes.py)."""

from __future__ import annotations

from dataclasses import dataclass

from core_app.services.gdpr_ports import (
    CustomerReader,
    GdprExportStore,
    GdprRequestStore,
    ShopData,
    TablePurges,
)
from core_app.services.ports import AuditTrail, CustomerStore, DataKeys, Guard
from core_app.services.shopify_app import Publish


@dataclass
class GdprDeps:
    requests: GdprRequestStore
    exports: GdprExportStore
    customers: CustomerReader  # the read path, for the export's profile
    store: CustomerStore  # the email's system of record (pgcrypto), for the export
    data_keys: DataKeys  # seals an export under the customer's own key
    kek: bytes  # seals an export that holds no customer
    publish: Publish  # gdpr_export.ready (Avro)
    guard: Guard
    audit: AuditTrail
    shop_data: ShopData
    table_purges: TablePurges
