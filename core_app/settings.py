"""Every environment variable the service reads, typed, validated and with a dev default.

The dev defaults work on a developer machine (PostgreSQL and Redis on localhost, Tansu started by
`core dev`). Production sets `CORE_ENV=production`, which refuses the dev-only secrets.
"""

from __future__ import annotations

import base64
import ipaddress
import socket
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import quote, urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from core_app.kafka_settings import KafkaSettings

REPO_ROOT = Path(__file__).resolve().parent.parent

# Dev-only secrets: documented in the README, refused when CORE_ENV=production.
DEV_EMAIL_ENCRYPTION_KEY = "dev-only-email-encryption-key-change-me-0001"
DEV_EMAIL_HASH_KEY = "dev-only-email-hash-key-change-me-000000001"
DEV_SHOPIFY_API_SECRET = "dev-only-shopify-secret"
DEV_SHOPIFY_API_KEY = "dev-shopify-key"
# Where a shop's Admin API and OAuth screens live; `{shop}` is the validated shop domain. Only `core dev
# --fake-shopify` and tests point it elsewhere (the fake shop); production refuses anything else.
SHOPIFY_SHOP_URL = "https://{shop}"
# Security layer (core_app/security): the HS256 JWT key, the worker-to-worker token and the key that
# wraps API key secrets and per-customer data keys (base64 of 32 bytes).
DEV_JWT_HS256_SECRET = "dev-only-jwt-hs256-secret-change-me-000000001"
DEV_INTERNAL_TOKEN = "dev-only-internal-token-change-me-00000000001"
DEV_KEY_ENCRYPTION_KEY = "ZGV2LW9ubHkta2V5LWVuY3J5cHRpb24ta2V5LTAwMDE="
_DEV_SECRETS = {
    DEV_EMAIL_ENCRYPTION_KEY,
    DEV_EMAIL_HASH_KEY,
    DEV_SHOPIFY_API_SECRET,
    DEV_JWT_HS256_SECRET,
    DEV_INTERNAL_TOKEN,
    DEV_KEY_ENCRYPTION_KEY,
}
_SECRET_SETTINGS = (
    "email_encryption_key",
    "email_hash_key",
    "shopify_api_secret",
    "jwt_hs256_secret",
    "internal_token",
    "key_encryption_key",
)


class ConfigError(Exception):
    """Invalid configuration, phrased as one line that names the variable."""


class Settings(KafkaSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    core_env: Literal["development", "test", "production"] = "development"
    service_name: str = "core"
    worker_id: str = Field(default_factory=socket.gethostname)

    # PostgreSQL: CORE_DB_URL wins over the CORE_DB_* parts.
    core_db_url: str | None = None
    core_db_host: str = "127.0.0.1"
    core_db_port: int = Field(default=5432, ge=1, le=65535)
    core_db_name: str = "core"
    core_db_user: str = "postgres"
    core_db_password: SecretStr = SecretStr("")
    core_db_pool_max: int = Field(default=10, ge=1)
    # Streaming replicas for the reads that may trail the primary (core_app/read_replicas.py, D220).
    core_db_read_urls: str = ""  # comma-separated libpq URLs; empty: every read on the primary
    core_db_read_max_lag: float = Field(default=5.0, ge=0)  # seconds; a replica further behind is skipped
    core_db_read_check_interval: float = Field(default=1.0, gt=0)  # seconds between a replica's checks

    table_standby_replicas: int = Field(default=1, ge=0)
    # false: the worker runs no PostgreSQL sink; run `core sink` (one or more) instead.
    sink_in_worker: bool = True
    # Per RocksDB instance (one per table per partition); see tables/rocksdb.py.
    rocksdb_write_buffer_mb: int = Field(default=2, ge=1)
    rocksdb_block_cache_mb: int = Field(default=2, ge=1)
    # One block cache for every instance, holding their memtables, blocks, indexes and filters (D260);
    # 0: a cache of ROCKSDB_BLOCK_CACHE_MB per instance, indexes and filters outside it (before D260).
    rocksdb_memory_mb: int = Field(default=24, ge=0)
    # Decoded customers kept in front of RocksDB for reads (tables/read_memo.py); 0 turns it off.
    table_read_memo_keys: int = Field(default=20_000, ge=0)
    # The pipeline's source topics a fetch at a time, past Faust's per-message path (D234).
    ingest_batch_delivery: bool = True
    ingest_chunk_events: int = Field(default=4000, ge=1)
    # Changelog records (recovery, standbys) into RocksDB a fetch at a time, one WriteBatch a
    # partition, past Faust's per-record path (D238); false: Faust's path (the bench's baseline).
    recovery_batch_apply: bool = True
    # Net container allocations between young GC collections (Python's default is 700); D45.
    gc_gen0_threshold: int = Field(default=50_000, ge=100)
    # glibc malloc (core_app/malloc_tuning.py, D258): arenas for all threads (0: glibc's 8 a core),
    # blocks from this size up mmap'd (0: glibc's sliding threshold; a fixed one cost ~20 % more CPU
    # an event), and seconds between malloc_trim calls returning free memory to the OS (0: never).
    malloc_arena_max: int = Field(default=2, ge=0)
    malloc_mmap_threshold: int = Field(default=0, ge=0, le=32 * 1024 * 1024)
    malloc_trim_interval: float = Field(default=10.0, ge=0)

    schema_registry_url: str = "http://127.0.0.1:8081"
    # Ports `core dev` uses for the broker and registry it starts itself.
    dev_broker_port: int = Field(default=9092, ge=1, le=65535)
    dev_registry_port: int = Field(default=8081, ge=1, le=65535)
    dev_fake_shopify_port: int = Field(default=9300, ge=1, le=65535)  # `core dev --fake-shopify`

    redis_url: str | None = None
    redis_host: str = "127.0.0.1"
    redis_port: int = Field(default=6379, ge=1, le=65535)
    redis_db: int = Field(default=0, ge=0)
    redis_key_prefix: str = ""
    # REDIS_URL names one node of a Redis Cluster; the client finds the others (D180).
    redis_cluster: bool = False

    http_host: str = "0.0.0.0"
    http_port: int = Field(default=8080, ge=1, le=65535)
    grpc_host: str = "0.0.0.0"
    grpc_port: int = Field(default=50051, ge=1, le=65535)
    # How other workers reach this one (owner routing); defaults to this host and HTTP port.
    canonical_url: str | None = None

    launchdarkly_sdk_key: SecretStr | None = None

    # Security layer (core_app/security, README "Security"). AUTH_ENABLED=false turns it off
    # (local runs and tests that are not about security); refused in production.
    auth_enabled: bool = True
    jwt_hs256_secret: SecretStr | None = SecretStr(DEV_JWT_HS256_SECRET)
    jwt_jwks: str | None = None  # JWKS URL (https://...) or file path, for RS256/ES256 tokens
    jwt_issuer: str = "loyalnest-auth"
    jwt_audience: str = "loyalnest-core"
    jwt_leeway: float = Field(default=10.0, ge=0)
    auth_grpc_target: str | None = None  # host:port of auth.v1.AuthService
    roles_grpc_target: str | None = None  # host:port of roles.v1.RolesService
    auth_grpc_timeout: float = Field(default=1.0, gt=0)
    # host:port of adminfeatures.v1.AdminFeaturesService: segment counts from there (issue 18, D135)
    adminfeatures_grpc_target: str | None = None
    adminfeatures_grpc_timeout: float = Field(default=0.5, gt=0)
    # Customer timeline entries are kept this many days after they were recorded (issue 18, D171).
    timeline_retention_days: int = Field(default=365, ge=1, le=36_500)
    auth_cache_ttl: float = Field(default=30.0, ge=0)  # answers of Auth/Roles, API keys, data keys
    signature_max_age: int = Field(default=300, ge=1)
    signature_max_skew: int = Field(default=30, ge=0)
    rate_limit_per_second: int = Field(default=100, ge=1)
    security_redis_fail_mode: Literal["closed", "open"] = "closed"
    # Failed authentications per client address within the window before it is refused pre-auth
    # (429) until the window ends (core_app/security/auth_failures.py); 0 turns the limit off.
    auth_failure_limit: int = Field(default=30, ge=0)
    auth_failure_window: int = Field(default=300, ge=1)
    trusted_proxies: str = ""  # comma-separated CIDRs whose X-Forwarded-For is believed
    internal_token: SecretStr = SecretStr(DEV_INTERNAL_TOKEN)
    key_encryption_key: SecretStr = SecretStr(DEV_KEY_ENCRYPTION_KEY)
    graphql_max_depth: int = Field(default=8, ge=1)
    graphql_max_fields: int = Field(default=200, ge=1)
    graphql_max_query_bytes: int = Field(default=20_000, ge=100)
    # The whole POST /graphql body (and a graphql-transport-ws message); REST bodies are capped at 1 MiB.
    graphql_max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    # `variables`: metadata may nest 32 levels (D65), plus the levels of the variables around it.
    graphql_max_variables_depth: int = Field(default=40, ge=2)
    # Shopify app (README "Shopify"): credentials, scopes, where Shopify reaches this service.
    shopify_api_key: str = DEV_SHOPIFY_API_KEY
    shopify_api_secret: SecretStr = SecretStr(DEV_SHOPIFY_API_SECRET)
    shopify_scopes: str = "read_customers,write_customers,read_orders"
    shopify_app_url: str = "http://127.0.0.1:8080"  # public base URL of /shopify/* (callback, webhooks)
    shopify_shop_url: str = SHOPIFY_SHOP_URL
    shopify_api_version: str = Field(default="2025-01", pattern=r"^\d{4}-\d{2}$")
    shopify_state_ttl: int = Field(default=600, ge=30)  # OAuth state nonce lifetime (s)
    shopify_webhook_max_age: float = Field(default=43_200.0, gt=0)  # older deliveries are stale (s)
    shopify_http_timeout: float = Field(default=10.0, gt=0)
    email_encryption_key: SecretStr = SecretStr(DEV_EMAIL_ENCRYPTION_KEY)
    email_hash_key: SecretStr = SecretStr(DEV_EMAIL_HASH_KEY)

    data_dir: Path = REPO_ROOT / "var" / "data"
    migrations_dir: Path = REPO_ROOT / "migrations"
    avro_dir: Path = REPO_ROOT / "avro"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_json: bool = True
    shutdown_timeout: float = Field(default=15.0, gt=0)
    health_timeout: float = Field(default=2.0, gt=0)
    peer_timeout: float = Field(default=1.0, gt=0)  # an owner read that takes longer falls back
    # A read whose partition is recovering, or whose owner is away, waits this long, then is a 503.
    read_recovery_wait: float = Field(default=5.0, ge=0)
    # /health says DOWN this long after the broker is found to have lost data (wiped, truncated).
    broker_reset_hold_seconds: float = Field(default=120.0, ge=0)
    # A partition with uncommitted records and no progress this long fails /ready, then /health and /live.
    partition_stall_ready_seconds: float = Field(default=60.0, gt=0)
    partition_stall_health_seconds: float = Field(default=300.0, gt=0)
    # Live updates (WebSocket stream, GraphQL subscriptions); see core_app/fanout.
    fanout_queue_size: int = Field(default=512, ge=1)  # per client: a client this far behind is dropped
    ws_heartbeat: float = Field(default=20.0, gt=0)  # WebSocket ping interval; no pong in half of it: closed
    ws_close_timeout: float = Field(default=5.0, gt=0)  # wait for a dropped client's close handshake
    graphql_ws_init_timeout: float = Field(default=10.0, gt=0)  # connection_init deadline (close 4408)

    # Customer imports (docs/imports.md).
    import_allow_private_urls: bool = False  # http(s) imports may reach private/loopback/link-local hosts
    import_private_allowlist: str = ""  # comma-separated CIDRs allowed even when the above is false
    import_file_root: Path | None = None  # file:// imports must lie under it; unset refuses file://
    import_max_file_mb: float = Field(default=100.0, gt=0)
    import_batch_size: int = Field(default=500, ge=1, le=5000)
    import_error_log_max: int = Field(default=100, ge=0, le=10000)  # row errors kept in error_log
    import_retry_attempts: int = Field(default=5, ge=1, le=20)
    import_retry_base_seconds: float = Field(default=0.5, gt=0)  # full-jitter exponential backoff
    import_retry_max_seconds: float = Field(default=10.0, gt=0)
    import_max_concurrent: int = Field(default=2, ge=1)  # import jobs running at once per worker
    import_progress_interval: float = Field(default=0.5, gt=0, le=1.0)
    import_update_timeout: float = Field(default=60.0, gt=0)  # owners confirming existing-customer updates
    # Events for customers that do not exist yet: parked, retried with backoff, then dead-lettered (D103).
    parked_event_ttl_seconds: float = Field(default=7 * 24 * 3600.0, gt=0)
    parked_retry_base_seconds: float = Field(default=1.0, gt=0)
    parked_retry_max_seconds: float = Field(default=60.0, gt=0)

    # Operations (docs/runbook.md): Consul registration and PostHog product events, both off when unset.
    consul_http_addr: str = ""  # e.g. http://consul:8500; the worker registers core-{WORKER_ID}
    consul_check_interval: str = "10s"
    consul_check_timeout: str = "2s"
    consul_deregister_after: str = "1m"  # DeregisterCriticalServiceAfter
    consul_http_token: SecretStr = SecretStr("")  # ACL token, sent as X-Consul-Token
    posthog_api_key: SecretStr = SecretStr("")
    posthog_host: str = "https://us.i.posthog.com"
    otel_exporter_otlp_endpoint: str = ""  # OTLP/HTTP base URL, e.g. http://otel-collector:4318

    @field_validator("core_db_read_urls")
    @classmethod
    def _read_urls(cls, value: str) -> str:
        for url in filter(None, (u.strip() for u in value.split(","))):
            if urlsplit(url).scheme not in {"postgresql", "postgres"} or not urlsplit(url).hostname:
                raise ValueError("expected postgresql://host:port/db URLs, comma-separated")
        return value

    @field_validator("schema_registry_url", "redis_url", "canonical_url", "shopify_app_url")
    @classmethod
    def _http_like(cls, value: str | None) -> str | None:
        if value is not None and not urlsplit(value).hostname:
            raise ValueError("expected an absolute URL such as http://host:port")
        return value

    @field_validator("shopify_shop_url")
    @classmethod
    def _shop_url(cls, value: str) -> str:
        if "{shop}" not in value or not urlsplit(value.replace("{shop}", "x.myshopify.com")).hostname:
            raise ValueError("expected an absolute URL holding {shop}, such as https://{shop}")
        return value.rstrip("/")

    @field_validator("shopify_scopes")
    @classmethod
    def _scopes(cls, value: str) -> str:
        from core_app.domain.shopify import parse_scopes

        try:
            return ",".join(parse_scopes(value))
        except Exception:
            raise ValueError("expected comma-separated Shopify scopes such as read_customers") from None

    @field_validator("import_private_allowlist")
    @classmethod
    def _networks(cls, value: str) -> str:
        for part in filter(None, (p.strip() for p in value.split(","))):
            ipaddress.ip_network(part, strict=False)  # ValueError names the bad entry
        return value

    @field_validator("email_encryption_key", "email_hash_key")
    @classmethod
    def _long_key(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters")
        return value

    @field_validator("key_encryption_key")
    @classmethod
    def _aes256_key(cls, value: SecretStr) -> SecretStr:
        try:
            raw = base64.b64decode(value.get_secret_value(), validate=True)
        except ValueError:
            raw = b""
        if len(raw) != 32:
            raise ValueError("must be the base64 of 32 random bytes")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _cidrs(cls, value: str) -> str:
        for part in filter(None, (p.strip() for p in value.split(","))):
            ipaddress.ip_network(part, strict=False)  # ValueError names the bad entry
        return value

    @model_validator(mode="after")
    def _cluster_has_one_database(self) -> Settings:
        if self.redis_cluster and urlsplit(self.redis_dsn).path.strip("/") not in ("", "0"):
            raise ValueError("REDIS_CLUSTER=true: a Redis Cluster has database 0 only (REDIS_DB / REDIS_URL)")
        return self

    @model_validator(mode="after")
    def _no_dev_secrets_in_production(self) -> Settings:
        if self.core_env == "production":
            for name in _SECRET_SETTINGS:
                secret = getattr(self, name)
                if secret is not None and secret.get_secret_value() in _DEV_SECRETS:
                    raise ValueError(f"{name.upper()} still holds its dev-only default")
            if not self.auth_enabled:
                raise ValueError("AUTH_ENABLED=false is refused in production")
            if self.shopify_api_key == DEV_SHOPIFY_API_KEY:
                raise ValueError("SHOPIFY_API_KEY still holds its dev-only default")
            if self.shopify_shop_url != SHOPIFY_SHOP_URL:
                raise ValueError(f"SHOPIFY_SHOP_URL must be {SHOPIFY_SHOP_URL} in production")
            if not self.shopify_app_url.startswith("https://"):
                raise ValueError("SHOPIFY_APP_URL must be an https:// URL in production")
        return self

    @property
    def db_dsn(self) -> str:
        """libpq DSN of the service database (keys are added per connection, see db.py)."""
        if self.core_db_url:
            return self.core_db_url
        password = quote(self.core_db_password.get_secret_value(), safe="")
        auth = f"{self.core_db_user}:{password}" if password else self.core_db_user
        return f"postgresql://{auth}@{self.core_db_host}:{self.core_db_port}/{self.core_db_name}"

    @property
    def db_read_dsns(self) -> list[str]:
        return [url.strip() for url in self.core_db_read_urls.split(",") if url.strip()]

    @property
    def redis_dsn(self) -> str:
        return self.redis_url or f"redis://{self.redis_host}:{self.redis_port}/{self.redis_db}"

    @property
    def import_private_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        parts = (p.strip() for p in self.import_private_allowlist.split(","))
        return [ipaddress.ip_network(p, strict=False) for p in parts if p]

    def shop_url(self, shop: str) -> str:
        """Base URL of a (validated) shop's Admin API and OAuth screens."""
        return self.shopify_shop_url.replace("{shop}", shop)

    @property
    def import_max_file_bytes(self) -> int:
        return int(self.import_max_file_mb * 1024 * 1024)

    @property
    def worker_data_dir(self) -> Path:
        """Each worker gets its own RocksDB directory (faust-streaming #91/#92 LOCK errors)."""
        return self.data_dir / self.worker_id

    @property
    def web_url(self) -> str:
        return self.canonical_url or f"http://{socket.gethostname()}:{self.http_port}"


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or "settings"
    return f"invalid configuration: {field.upper()}: {first['msg']}"


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
