"""The ports the use cases depend on (`typing.Protocol`); adapters implement them, tests fake them
(tests/unit/fakes.py). The composition root (core_app/bootstrap.py) picks the adapters."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import aiohttp

from core_app.domain.customer_import import FileUrl
from core_app.domain.health import HealthReport
from core_app.security.principal import Principal

if TYPE_CHECKING:  # the Shopify app's URLs are a value the pull ports hand over, not an edge
    from core_app.services.shopify_app import ShopifyApp
from core_app.domain.customer import CustomerState
from core_app.domain.customer_query import ListQuery
from core_app.security.pii import PiiRead


class Guard(Protocol):
    """Authorizes a caller on a merchant (and checks a feature flag); raises a SecurityError (or
    NotFound for a merchant that is not installed) if not. SecurityLayer is one. The transport reads
    the principal at its edge and the use case passes it in; nothing reads it from a context."""

    async def guard(
        self, principal: Principal | None, merchant_id: str, permission: str, flag: str | None = None
    ) -> Principal: ...


class FeatureFlags(Protocol):
    async def enabled(self, merchant_id: str, flag: str) -> bool: ...


class DataKeys(Protocol):
    """Per-customer envelope encryption of the email (core_app/security/shredding.DataKeyStore)."""

    async def encrypt_email(self, merchant_id: str, customer_id: str, email: str) -> str: ...

    async def decrypt_email(self, merchant_id: str, customer_id: str, token: str) -> str: ...

    async def shred(self, merchant_id: str, customer_id: str) -> bool: ...

    async def seal_field(self, merchant_id: str, customer_id: str, field: str, plaintext: str) -> str:
        """Any text sealed under the customer's data key (a GDPR export); KeyShredded once erased."""
        ...

    async def open_field(self, merchant_id: str, customer_id: str, field: str, token: str) -> str: ...


# -- below: the ports of each feature (issue 16), one section per feature -------------------------


class EventPublisher(Protocol):
    """Sends one record to a topic by name (core_app/stream_topics.TopicPublisher on Faust)."""

    async def publish(
        self, topic: str, key: str, value: bytes, headers: dict[str, bytes] | None = None
    ) -> None: ...


# -- shopify (the merchant store of the install flow and the webhooks) ----------------------------


class MerchantStore(Protocol):
    """What the Shopify use cases read and write about merchants and their customers
    (core_app/services/merchants.PgMerchantStore on PostgreSQL). Merchants are dicts in the shape of
    `merchants.merchant_view`; `ref` is a merchant id or a shop domain."""

    async def find(self, ref: str) -> dict[str, Any] | None: ...

    async def install(
        self, shop: str, token: str, scopes: Sequence[str], actor: str
    ) -> tuple[dict[str, Any], bool]: ...

    async def uninstall(
        self, shop: str, actor: str, triggered_at: datetime | None = None
    ) -> dict[str, Any] | None: ...

    async def customer_by_email(self, merchant_id: str, email: str) -> str | None: ...

    async def audit(
        self,
        merchant_id: str | None,
        actor: str,
        action: str,
        entity: tuple[str, str],
        details: dict[str, Any],
    ) -> None: ...

    async def customer_by_shopify_id(self, merchant_id: str, shopify_id: str) -> str | None:
        """The customer a Shopify customer id was imported or synced as (metadata), or None."""
        ...


# -- customer import ------------------------------------------------------------------------------


class EventEncoder(Protocol):
    """Encodes a record for a topic (core_app/events/codec.EventCodec: Avro with the registry)."""

    async def encode(self, topic: str, record: dict[str, Any]) -> bytes: ...


class ImportLogs(Protocol):
    """The import logs in PostgreSQL, and what starting an import looks up there
    (core_app/customer_import/store.PostgresImportLogs)."""

    async def merchant_exists(self, merchant_id: str) -> bool: ...

    async def insert_log(
        self, import_id: str, merchant_id: str, source: str, file_url: str
    ) -> dict[str, Any]:
        """The `pending` row; NotFound for an unknown merchant."""
        ...

    async def fail_log(self, merchant_id: str, import_id: str, reason: str) -> None: ...

    async def fetch_log(self, merchant_id: str, import_id: str) -> dict[str, Any] | None: ...

    async def list_logs(self, merchant_id: str, status: str | None, limit: int) -> list[dict[str, Any]]: ...

    async def shopify_source_url(self, merchant_id: str, requested: Any) -> str:
        """The job's URL for a `shopify_api` import (ValidationFailed if the merchant cannot have one)."""
        ...

    async def record_audit(
        self, merchant_id: str, actor: str, action: str, import_id: str, details: dict[str, Any]
    ) -> None: ...


class ImportFilePolicy(Protocol):
    """Checks an import file's URL before the import is accepted: the address policy, a file://
    path and its size (core_app/customer_import/fetch.FileUrlChecker). ValidationFailed if refused."""

    async def check(self, file_url: Any) -> FileUrl: ...


class ShopRedis(Protocol):
    """The Redis commands the Shopify pulls use (redis.asyncio.Redis is one)."""

    async def eval(self, script: str, numkeys: int, *keys_and_args: Any) -> Any: ...

    async def set(self, name: str, value: str, *, nx: bool = False, ex: int | None = None) -> Any: ...

    async def delete(self, *names: str) -> Any: ...


class ShopifyCalls(Protocol):
    """What pulling a shop's customers needs (core_app/services/shopify_pull.py, shopify_bulk.py):
    the app's Admin API URLs, an HTTP session and the shared Redis. ShopifyDeps is one."""

    @property
    def app(self) -> ShopifyApp: ...

    @property
    def http(self) -> aiohttp.ClientSession: ...

    @property
    def redis(self) -> ShopRedis: ...

    def key(self, shop: str, *parts: str) -> str: ...


# -- pipeline, dead letters, health (helper 2) ------------------------------------------------------


@dataclass(frozen=True)
class FailedRecord:
    """A consumed record given up on, as its producer sent it, and where it was read."""

    key: bytes | str | None
    value: bytes | None
    origin: str  # the topic the producer sent it to
    partition: int
    offset: int
    received_on: str | None = None  # the topic it was read from, if not `origin` (core.rekeyed)
    headers: tuple[tuple[str, bytes], ...] = ()
    timestamp_ms: int | None = None


class DeadLetters(Protocol):
    """Sends a record to `core.dlq` with the reason (core_app/dead_lettering.DeadLetterProducer)."""

    async def dead_letter(self, record: FailedRecord, kind: str, reason: str) -> None: ...


class Codec(Protocol):
    """Avro with the schema registry's framing (core_app/events/codec.EventCodec)."""

    async def encode(self, topic: str, record: dict[str, Any]) -> bytes: ...

    async def decode(self, payload: bytes | None) -> dict[str, Any]: ...


class HealthProbe(Protocol):
    """Do PostgreSQL, Redis and Kafka answer (core_app/health_probe.DependencyProbe)? And is this
    worker alive: nothing a restart would cure, like a stalled partition (`check_liveness`)?"""

    async def check(self) -> HealthReport: ...

    def check_liveness(self) -> HealthReport: ...


class Readiness(Protocol):
    """Can this worker serve: migrations applied, Redis up, tables and partitions recovered
    (core_app/runtime.Runtime)?"""

    async def is_ready(self) -> dict[str, bool]: ...


class AuditTrail(Protocol):
    """Writes one audit row (core_app/security/audit.PoolAuditTrail)."""

    async def write(
        self,
        *,
        merchant_id: str | None,
        actor: str,
        action: str,
        entity_type: str,
        entity_id: str | None,
        details: dict[str, Any],
    ) -> None: ...


# -- program settings (helper 2) ---------------------------------------------------------------------


class ProgramSettingsOwner(Protocol):
    """The merchant's settings as the owner of its key holds them (tables/program_settings.py):
    (settings or None, "table" when this worker owns the key, else "owner")."""

    async def read(self, merchant_id: str) -> tuple[dict[str, Any] | None, str]: ...


class ProgramSettingsCache(Protocol):
    """Redis `settings:{merchant_id}` (core_app/program_settings_store.py)."""

    async def get(self, merchant_id: str) -> dict[str, Any] | None: ...

    async def put(self, merchant_id: str, settings: dict[str, Any]) -> None: ...


class ProgramSettingsStore(Protocol):
    """PostgreSQL's program settings and merchants, and the audit rows the owner agent writes."""

    async def fetch(self, merchant_id: str) -> dict[str, Any] | None: ...

    async def merchant_exists(self, merchant_id: str) -> bool: ...

    async def record_audit(
        self,
        *,
        merchant_id: str,
        actor: str,
        action: str,
        entity_type: str,
        entity_id: str,
        details: dict[str, Any],
        idempotency_key: str,
    ) -> None: ...


class ProgramSettingsCommands(Protocol):
    """Sends an update to the owner agent of the merchant's key and waits for its result (or the
    domain error it reports)."""

    async def update(self, merchant_id: str, command: dict[str, Any]) -> dict[str, Any]: ...


# -- customers (helper 1) ---------------------------------------------------------------------------


class CustomerStore(Protocol):
    """The customers' PostgreSQL rows (core_app/customer_adapters.PgCustomerStore over
    core_app/repository*.py). Writes report a taken email as Conflict and an unknown merchant as
    NotFound, so use cases and command handlers never see the driver's errors."""

    async def fetch(self, merchant_id: str, customer_id: str) -> CustomerState | None: ...

    async def insert(
        self, merchant_id: str, customer_id: str, email: str, metadata: dict[str, Any]
    ) -> CustomerState: ...

    async def change_email(self, merchant_id: str, customer_id: str, email: str) -> str:
        """Store a new plaintext email (pgcrypto encrypts it); returns its hash."""
        ...

    async def email_of(self, merchant_id: str, customer_id: str) -> StoredEmail | None: ...

    async def rfm_thresholds(self, merchant_id: str) -> tuple[dict[str, Any] | None]:
        """The merchant's thresholds in a 1-tuple (None inside: no program settings), cacheable."""
        ...

    async def page(
        self, query: ListQuery, *, email_hash: str | None, thresholds: dict[str, Any] | None, with_pii: bool
    ) -> list[dict[str, Any]]: ...

    async def segment_counts(self, merchant_id: str) -> dict[str, int]: ...


@dataclass(frozen=True)
class StoredEmail:
    email: str | None  # None once the data key is shredded
    redacted: bool


class ReadCache(Protocol):
    """The Redis read cache of customer views (`customer:{merchant_id}:{customer_id}`, 24 h). An outage
    is a miss, never an error."""

    async def get(self, merchant_id: str, customer_id: str) -> dict[str, Any] | None: ...

    async def put(self, merchant_id: str, customer_id: str, view: dict[str, Any]) -> None: ...


class OwnerClient(Protocol):
    """The worker that owns a key's partition: its table answers reads, its agent applies commands."""

    async def table_read(self, merchant_id: str, customer_id: str) -> tuple[str, dict[str, Any] | None]:
        """("table" | "owner", view); ("absent", None) when the owning table has no such key; or
        (why, None) while the partition cannot answer (recovering, its owner away)."""
        ...

    async def wait(self, why: str, seconds: float) -> None:
        """Wait up to `seconds` for the reason `table_read` gave to pass."""
        ...

    async def ask(self, topic: str, key: str, command: dict[str, Any]) -> dict[str, Any]:
        """Send `command` to the owner of `key` on `topic` and return its result (or raise its error)."""
        ...


class PiiAudit(Protocol):
    """The audit trail of decrypted-email reads (core_app/security/pii.PiiAuditLog)."""

    async def record(self, reads: list[PiiRead]) -> None: ...


class TimelineStore(Protocol):
    """The customers' timelines in PostgreSQL (core_app/timeline_store.PgTimelineStore)."""

    async def erased(self, merchant_id: str, customer_id: str) -> bool | None:
        """Whether the customer was erased (its row redacted or its data key shredded); None when
        the merchant has no such customer."""
        ...

    async def entries(
        self, merchant_id: str, customer_id: str, *, before: int | None, limit: int, retention_days: int
    ) -> list[dict[str, Any]]:
        """Entries newest first (version below `before`), recorded within `retention_days`."""
        ...


class RemoteSegmentCounts(Protocol):
    """AdminFeatures (core_app/adminfeatures.AdminFeaturesClient): None when it does not answer."""

    async def segment_counts(self, merchant_id: str) -> dict[str, int] | None: ...


class RecordCodec(Protocol):
    """Encodes an event record for its topic (core_app/events/codec.EventCodec: Avro, registry)."""

    async def encode(self, topic: str, record: dict[str, Any]) -> bytes: ...


class CustomerTable(Protocol):
    """The owner's `customers` table, read and written through the key's own event (its partition):
    tables/customers.FaustCustomerTable."""

    def read(self, key: str, event: Any) -> CustomerState | None: ...

    def save(self, state: CustomerState, event: Any, timeline: list[dict[str, Any]] | None = None) -> None:
        """Write the state; `timeline`: the entries of the changes it holds (stored by the sink)."""
        ...
