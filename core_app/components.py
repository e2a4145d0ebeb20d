"""`Components`: every collaborator of one worker, built once by the composition root
(core_app/bootstrap.py) and handed to agents, views, gRPC handlers and the CLI explicitly."""

from __future__ import annotations

from functools import cached_property

from core_app import stream_topics
from core_app.adminfeatures import adminfeatures_for
from core_app.customer_adapters import PgCustomerStore, RedisReadCache
from core_app.customer_import.fetch import FileUrlChecker
from core_app.customer_import.store import PostgresImportLogs
from core_app.dead_lettering import DeadLetterProducer, FaustSend
from core_app.dlq_topic import dead_letter_service
from core_app.gdpr_store import PgGdprStore
from core_app.owner_client import TableOwnerClient
from core_app.program_settings_store import OwnerCommands, PgProgramSettings, RedisProgramSettingsCache
from core_app.runtime import Runtime, open_runtime
from core_app.security.audit import PoolAuditTrail
from core_app.security.layer import SecurityLayer
from core_app.security.pii import PiiAuditLog
from core_app.services.admin_dlq import AdminDeadLetters
from core_app.services.customer_import import CustomerImportService
from core_app.services.customer_list import ListDeps, build_deps
from core_app.services.customer_timeline import TimelineDeps
from core_app.services.customer_timeline import build_deps as build_timeline_deps
from core_app.services.customers import CustomerService
from core_app.services.gdpr_deps import GdprDeps
from core_app.services.health import HealthService
from core_app.services.ports import (
    CustomerStore,
    DeadLetters,
    EventPublisher,
    FeatureFlags,
    OwnerClient,
    ReadCache,
)
from core_app.services.program_settings import ProgramSettingsService
from core_app.services.segments import SegmentDeps
from core_app.services.shopify_app import ShopifyDeps, kek_of
from core_app.settings import Settings
from core_app.shop_purge_store import PgShopData
from core_app.shopify_wiring import AckedPublisher, build_shopify_deps, record_publisher
from core_app.sink import SinkResources
from core_app.stream_topics import TopicPublisher
from core_app.table_purge import TablePurgeClient
from core_app.timeline_store import PgTimelineStore
from tables.program_settings import OwnerReads

_CUSTOMERS_BUILT = (
    "gdpr",
    "customer_store",
    "read_cache",
    "owners",
    "pii_audit",
    "customers",
    "customer_list",
    "segments",
    "customer_timeline",
)


class NotOpen(RuntimeError):
    def __init__(self, what: str) -> None:
        super().__init__(f"the {what} is not open yet (worker still starting)")


class Components:
    """Everything a worker's use cases depend on. Built unopened (agents and routes are wired before
    the event loop runs); `open()` connects PostgreSQL, Redis, the codec and the security layer at
    worker start, `close()` releases them at shutdown."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.publisher: EventPublisher = TopicPublisher()
        self._runtime: Runtime | None = None
        self._security: SecurityLayer | None = None
        self._shopify: ShopifyDeps | None = None  # -- shopify --
        self._customer_import: CustomerImportService | None = None  # -- customer import --
        # -- pipeline, dead letters, health (helper 2) --
        # The one dead-letter path of the worker: agents, parked events and the in-worker sink.
        self.dead_letters: DeadLetters = DeadLetterProducer(FaustSend(stream_topics.dead_letter))
        self._program_settings: ProgramSettingsService | None = None

    @classmethod
    def of(cls, runtime: Runtime, security: SecurityLayer | None = None) -> Components:
        """Components around parts opened elsewhere (in-process tests of one transport)."""
        components = cls(runtime.settings)
        components._runtime = runtime
        components._security = security or SecurityLayer(runtime.settings, runtime.redis, runtime.pool)
        return components

    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            raise NotOpen("runtime")
        return self._runtime

    @property
    def security(self) -> SecurityLayer:
        if self._security is None:
            raise NotOpen("security layer")
        return self._security

    # -- pipeline, dead letters, health (helper 2) --

    def sink_resources(self) -> SinkResources:
        """The in-worker sink's PostgreSQL and Redis: the runtime's (open once the worker starts)."""
        runtime = self.runtime
        return SinkResources(runtime.pool, runtime.redis, runtime.settings.redis_key_prefix)

    @property
    def health(self) -> HealthService:
        runtime = self.runtime
        return HealthService(runtime.health, runtime)

    @property
    def admin_dead_letters(self) -> AdminDeadLetters:
        return AdminDeadLetters(
            dead_letter_service(self.settings), self.security, PoolAuditTrail(self.runtime.pool)
        )

    # -- program settings (helper 2) --

    @property
    def program_settings(self) -> ProgramSettingsService:
        """Built on first use after the runtime opened (its adapters hold the pool and Redis)."""
        if self._program_settings is None:
            runtime = self.runtime
            self._program_settings = ProgramSettingsService(
                owner=OwnerReads(runtime),
                cache=RedisProgramSettingsCache(runtime.redis, runtime.settings.redis_key_prefix),
                store=PgProgramSettings(runtime.pool),
                commands=OwnerCommands(self.owners),
                guard=self.security,
            )
        return self._program_settings

    @property
    def is_open(self) -> bool:
        return self._runtime is not None

    async def open(self) -> None:
        runtime = await open_runtime(self.settings)
        self._runtime = runtime
        self._security = SecurityLayer(self.settings, runtime.redis, runtime.pool)
        self._security.start()  # the security broadcast's listener (D183, D184)

    async def close(self) -> None:
        await self.close_shopify()  # -- shopify --
        self._program_settings = None
        self._customer_import = None
        for built in _CUSTOMERS_BUILT:  # the customers block's cached parts hold the old pool
            self.__dict__.pop(built, None)
        if self._security is not None:
            self._security.close()
            self._security = None
        if self._runtime is not None:
            await self._runtime.close()
            self._runtime = None

    # -- shopify (issue 16): the install flow, the session exchange and the webhooks ---------------

    @property
    def shopify(self) -> ShopifyDeps:
        """Built at first use, inside the event loop (its HTTP client session needs one)."""
        if self._shopify is None or self._shopify.http.closed:
            deps = build_shopify_deps(self.runtime, AckedPublisher())
            deps.gdpr, deps.customers = self.gdpr, self.customers
            self._shopify = deps
        return self._shopify

    # -- gdpr requests and exports (issue 17) --------------------------------------------------------

    @cached_property
    def gdpr(self) -> GdprDeps:
        runtime, security = self.runtime, self.security
        return GdprDeps(
            requests=PgGdprStore(runtime.pool),
            exports=PgGdprStore(runtime.pool),
            customers=self.customers,
            store=self.customer_store,
            data_keys=security.data_keys,
            kek=kek_of(self.settings),
            publish=record_publisher(runtime.codec, AckedPublisher()),
            guard=security,
            audit=PoolAuditTrail(runtime.pool),
            shop_data=PgShopData(runtime.pool),
            table_purges=TablePurgeClient(runtime, self.settings.kafka_topic_partitions),
        )

    async def close_shopify(self) -> None:
        if self._shopify is not None:
            await self._shopify.http.close()
            self._shopify = None

    # -- customer import ----------------------------------------------------------------------

    @property
    def customer_import(self) -> CustomerImportService:
        """The import use cases, built on first use (after `open()`)."""
        if self._customer_import is None:
            runtime = self.runtime
            logs = PostgresImportLogs(runtime.pool, self.settings.shopify_shop_url)
            files = FileUrlChecker(self.settings)
            self._customer_import = CustomerImportService(
                logs, files, self.security, self.publisher, runtime.codec
            )
        return self._customer_import

    @property
    def feature_flags(self) -> FeatureFlags:
        return self.security.flags

    # -- customers (helper 1): built on first use after open(), then once per worker -----------------

    @cached_property
    def customer_store(self) -> CustomerStore:
        return PgCustomerStore(self.runtime.pool, self.runtime.reads)

    @cached_property
    def read_cache(self) -> ReadCache:
        return RedisReadCache(self.runtime)

    @cached_property
    def owners(self) -> OwnerClient:
        return TableOwnerClient(self.runtime, self.publisher)

    @cached_property
    def pii_audit(self) -> PiiAuditLog:
        return PiiAuditLog(self.runtime.pool)  # one batcher per worker, shared by every read

    @cached_property
    def customers(self) -> CustomerService:
        security = self.security
        return CustomerService(
            self.customer_store,
            self.read_cache,
            self.owners,
            security,
            security.data_keys,
            self.pii_audit,
            read_recovery_wait=self.settings.read_recovery_wait,
        )

    @cached_property
    def customer_list(self) -> ListDeps:
        return build_deps(self.settings, self.customer_store, self.security, self.pii_audit)

    @cached_property
    def segments(self) -> SegmentDeps:
        settings = self.settings  # AdminFeatures answers the counts when configured (D135)
        remote = adminfeatures_for(settings.adminfeatures_grpc_target, settings.adminfeatures_grpc_timeout)
        return SegmentDeps(self.customer_store, self.security, remote)

    @cached_property
    def customer_timeline(self) -> TimelineDeps:
        return build_timeline_deps(self.settings, PgTimelineStore(self.runtime.pool), self.security)
