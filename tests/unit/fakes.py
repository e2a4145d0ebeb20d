"""In-memory implementations of the ports (core_app/services/ports.py) for the unit tests: no
PostgreSQL, Redis or Kafka. One section per feature."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import Any

import aiohttp
import psycopg2

from core_app.customer_import.fetch import Download, FetchError
from core_app.customer_import.job import ImportJob
from core_app.domain.customer import CustomerState
from core_app.domain.customer_import import FileUrl, parse_file_url
from core_app.domain.customer_query import ListQuery
from core_app.domain.errors import Conflict, NotFound, Unavailable, ValidationFailed
from core_app.domain.gdpr import GdprRequest, OpenRequests, SealedExport
from core_app.domain.health import HealthReport
from core_app.events.codec import DecodeError
from core_app.security.crypto import DecryptionFailed
from core_app.security.errors import FeatureDisabled
from core_app.security.pii import PiiRead
from core_app.security.principal import Principal, authorize
from core_app.security.shredding import KeyShredded
from core_app.services.dead_letters import DeadLetter, Filters
from core_app.services.gdpr_deps import GdprDeps
from core_app.services.ports import FailedRecord, StoredEmail
from core_app.services.shopify_app import ShopifyApp, ShopifyDeps
from core_app.settings import Settings


@dataclass
class FakePublisher:
    """EventPublisher: keeps what was sent, in order."""

    sent: list[tuple[str, str, bytes, dict[str, bytes] | None]] = field(default_factory=list)

    async def publish(
        self, topic: str, key: str, value: bytes, headers: dict[str, bytes] | None = None
    ) -> None:
        self.sent.append((topic, key, value, headers))

    def on(self, topic: str) -> list[tuple[str, bytes]]:
        return [(key, value) for name, key, value, _ in self.sent if name == topic]


def caller(merchant_id: str, *permissions: str) -> Principal:
    """A merchant's caller holding `permissions` (the real Principal: the fake guard uses the real
    `authorize`, so tenant and permission checks in unit tests are the production ones)."""
    return Principal(f"user@{merchant_id}", merchant_id, frozenset(permissions), "jwt")


@dataclass
class FakeGuard:
    """Guard and FeatureFlags: the real authorization rule over merchants installed and flags
    switched off per test (the IP allow-list and the Auth service are the adapter's business)."""

    installed: set[str] = field(default_factory=set)
    disabled_flags: set[str] = field(default_factory=set)
    checked: list[tuple[str, str, str | None]] = field(default_factory=list)

    async def guard(
        self, principal: Principal | None, merchant_id: str, permission: str, flag: str | None = None
    ) -> Principal:
        self.checked.append((merchant_id, permission, flag))
        authorize(principal, merchant_id, permission)
        assert principal is not None
        if merchant_id not in self.installed:
            raise NotFound("merchant", merchant_id)
        if flag is not None and flag in self.disabled_flags:
            raise FeatureDisabled(flag)
        return principal

    async def enabled(self, merchant_id: str, flag: str) -> bool:
        return flag not in self.disabled_flags


@dataclass
class FakeDataKeys:
    """DataKeys: a reversible 'seal' so tests can tell sealed from plain; shredded keys refuse."""

    shredded: set[tuple[str, str]] = field(default_factory=set)

    async def encrypt_email(self, merchant_id: str, customer_id: str, email: str) -> str:
        return f"ce1:fake:{merchant_id}:{customer_id}:{email[::-1]}"

    async def decrypt_email(self, merchant_id: str, customer_id: str, token: str) -> str:
        if (merchant_id, customer_id) in self.shredded:
            raise KeyShredded(f"{merchant_id}/{customer_id}")
        prefix = f"ce1:fake:{merchant_id}:{customer_id}:"
        if not token.startswith(prefix):
            raise DecryptionFailed("sealed for another customer")
        return token[len(prefix) :][::-1]

    async def shred(self, merchant_id: str, customer_id: str) -> bool:
        fresh = (merchant_id, customer_id) not in self.shredded
        self.shredded.add((merchant_id, customer_id))
        return fresh

    async def seal_field(self, merchant_id: str, customer_id: str, field: str, plaintext: str) -> str:
        if (merchant_id, customer_id) in self.shredded:
            raise KeyShredded(f"{merchant_id}/{customer_id}")
        return f"sealed:{merchant_id}:{customer_id}:{field}:{plaintext[::-1]}"

    async def open_field(self, merchant_id: str, customer_id: str, field: str, token: str) -> str:
        if (merchant_id, customer_id) in self.shredded:
            raise KeyShredded(f"{merchant_id}/{customer_id}")
        prefix = f"sealed:{merchant_id}:{customer_id}:{field}:"
        assert token.startswith(prefix), "sealed for another customer or field"
        return token[len(prefix) :][::-1]


async def seal_all(
    keys: FakeDataKeys, merchant_id: str, pairs: list[tuple[str, str]]
) -> dict[str, str | None]:
    """DataKeyStore.encrypt_emails over a fake: None for an erased customer."""
    sealed: dict[str, str | None] = {}
    for customer_id, email in pairs:
        try:
            sealed[customer_id] = await keys.encrypt_email(merchant_id, customer_id, email)
        except KeyShredded:
            sealed[customer_id] = None
    return sealed


# -- below: the fakes of each feature (issue 16), one section per feature -------------------------


# -- shopify ---------------------------------------------------------------------------------------


@dataclass
class FakeShopRedis:
    """The Redis commands of the Shopify use cases and pulls, on a dict (expiry is recorded, not
    applied; the shared REST bucket's Lua always grants a slot: that is the integration tests' business)."""

    values: dict[str, str] = field(default_factory=dict)
    expiries: dict[str, int | None] = field(default_factory=dict)
    evals: int = 0

    async def eval(self, script: str, numkeys: int, *keys_and_args: Any) -> Any:
        self.evals += 1
        return "0"

    async def set(self, name: str, value: str, *, ex: int | None = None, nx: bool = False) -> bool | None:
        if nx and name in self.values:
            return None
        self.values[name], self.expiries[name] = value, ex
        return True

    async def getdel(self, name: str) -> str | None:
        return self.values.pop(name, None)

    async def delete(self, *names: str) -> int:
        return sum(self.values.pop(name, None) is not None for name in names)

    async def scan_iter(self, match: str = "*", count: int | None = None) -> AsyncIterator[str]:
        pattern = match.replace("\\{", "{").replace("\\}", "}")  # the caller escapes Redis's braces
        for name in [name for name in self.values if fnmatchcase(name, pattern)]:
            yield name

    def pipeline(self, transaction: bool = True) -> FakePipeline:
        return FakePipeline(self)


@dataclass
class FakePipeline:
    """A non-transactional pipeline of UNLINKs, as the shop purge sends them."""

    redis: FakeShopRedis
    queued: list[str] = field(default_factory=list)

    def unlink(self, name: str) -> None:
        self.queued.append(name)

    async def execute(self) -> list[int]:
        return [int(self.redis.values.pop(name, None) is not None) for name in self.queued]


@dataclass
class FakeMerchants:
    """MerchantStore: merchants by shop, live customers by merchant and email, audit rows kept."""

    merchants: dict[str, dict[str, Any]] = field(default_factory=dict)
    customers: dict[str, dict[str, str]] = field(default_factory=dict)  # merchant id -> email -> id
    shopify_ids: dict[str, dict[str, str]] = field(default_factory=dict)  # merchant -> Shopify id -> id
    tokens: dict[str, str] = field(default_factory=dict)
    audits: list[tuple[str | None, str, str, tuple[str, str], dict[str, Any]]] = field(default_factory=list)

    def add(self, shop: str, status: str = "installed") -> dict[str, Any]:
        merchant = {"id": str(uuid.uuid4()), "shop_domain": shop, "status": status, "scopes": []}
        self.merchants[shop] = merchant
        return merchant

    async def find(self, ref: str) -> dict[str, Any] | None:
        return self.merchants.get(ref) or next((m for m in self.merchants.values() if m["id"] == ref), None)

    async def install(
        self, shop: str, token: str, scopes: Sequence[str], actor: str
    ) -> tuple[dict[str, Any], bool]:
        existing = self.merchants.get(shop)
        merchant = existing or self.add(shop)
        merchant.update(status="installed", scopes=list(scopes))
        self.tokens[merchant["id"]] = token
        return dict(merchant), existing is not None

    async def uninstall(
        self, shop: str, actor: str, triggered_at: datetime | None = None
    ) -> dict[str, Any] | None:
        merchant = self.merchants.get(shop)
        if merchant is None:
            return None
        merchant["status"] = "uninstalled"
        self.tokens.pop(merchant["id"], None)
        return dict(merchant)

    async def customer_by_email(self, merchant_id: str, email: str) -> str | None:
        return self.customers.get(merchant_id, {}).get(email.strip().lower())

    async def customer_by_shopify_id(self, merchant_id: str, shopify_id: str) -> str | None:
        return self.shopify_ids.get(merchant_id, {}).get(shopify_id)

    async def audit(
        self,
        merchant_id: str | None,
        actor: str,
        action: str,
        entity: tuple[str, str],
        details: dict[str, Any],
    ) -> None:
        self.audits.append((merchant_id, actor, action, entity, details))


@dataclass
class FakeAnswer:
    status: int
    body: Any

    async def json(self, content_type: str | None = None) -> Any:
        return self.body

    async def __aenter__(self) -> FakeAnswer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


@dataclass
class FakeShopifyHttp:
    """The aiohttp session as the Shopify use cases use it: POSTs answered by path suffix (a status
    and a JSON body, or an exception to raise), every call kept."""

    answers: dict[str, tuple[int, Any] | Exception] = field(default_factory=dict)
    posted: list[tuple[str, Any, dict[str, str] | None]] = field(default_factory=list)
    closed: bool = False

    def post(self, url: str, *, json: Any = None, headers: dict[str, str] | None = None) -> FakeAnswer:
        self.posted.append((url, json, headers))
        answer = next((a for suffix, a in self.answers.items() if url.endswith(suffix)), (404, {}))
        if isinstance(answer, Exception):
            raise answer
        return FakeAnswer(*answer)

    async def close(self) -> None:
        self.closed = True


@dataclass
class FakeRecordPublisher:
    """The Shopify `Publish` callable: (topic, key, dict or bytes), kept in order; `fail` raises."""

    sent: list[tuple[str, str, dict[str, Any] | bytes]] = field(default_factory=list)
    fail: Exception | None = None

    async def __call__(self, topic: str, key: str, value: dict[str, Any] | bytes) -> None:
        if self.fail is not None:
            raise self.fail
        self.sent.append((topic, key, value))

    def on(self, topic: str) -> list[tuple[str, dict[str, Any] | bytes]]:
        return [(key, value) for name, key, value in self.sent if name == topic]


SHOPIFY_SECRET = "unit-test-shopify-secret-of-32-bytes+"
SHOPIFY_KEK = bytes(range(32))


def shopify_deps(**changes: Any) -> ShopifyDeps:
    """ShopifyDeps over the fakes above; the app as configured in development."""
    app = ShopifyApp(
        api_key="unit-app",
        api_secret=SHOPIFY_SECRET,
        scopes=("read_customers", "write_customers"),
        app_url="https://app.example",
        shop_url_template="https://{shop}",
        api_version="2025-01",
        state_ttl=600,
        webhook_max_age=43_200.0,
    )
    parts: dict[str, Any] = {
        "app": app,
        "pool": None,  # every PostgreSQL access goes through `store`
        "redis": FakeShopRedis(),
        "redis_prefix": "t:",
        "kek": SHOPIFY_KEK,
        "http": FakeShopifyHttp(),
        "publish": FakeRecordPublisher(),
        "store": FakeMerchants(),
        "gdpr": None,
        "customers": FakeCustomerWriter(),
    }
    deps = ShopifyDeps(**(parts | changes))
    if deps.gdpr is None:
        deps.gdpr = gdpr_deps(publish=deps.publish)
    return deps


# -- customer import ------------------------------------------------------------------------------


@dataclass
class FakeImportLogs:
    """ImportLogs: logs by import_id, the merchants that exist, the audit rows written."""

    merchants: set[str] = field(default_factory=set)
    logs: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (import_id, reason)
    audits: list[dict[str, Any]] = field(default_factory=list)
    shopify_shops: dict[str, str] = field(default_factory=dict)  # merchant_id -> shop domain

    async def merchant_exists(self, merchant_id: str) -> bool:
        return merchant_id in self.merchants

    async def insert_log(
        self, import_id: str, merchant_id: str, source: str, file_url: str
    ) -> dict[str, Any]:
        if merchant_id not in self.merchants:
            raise NotFound("merchant", merchant_id)
        row = {
            "import_id": import_id,
            "merchant_id": merchant_id,
            "source": source,
            "status": "pending",
            "file_url": file_url,
            "record_count": 0,
            "error_count": 0,
            "error_log": None,
            "failure_reason": None,
            "created_at": f"2026-01-01T00:00:{len(self.logs):02d}.000Z",
            "updated_at": None,
        }
        self.logs[import_id] = row
        return dict(row)

    async def fail_log(self, merchant_id: str, import_id: str, reason: str) -> None:
        self.failed.append((import_id, reason))
        self.logs[import_id] |= {"status": "failed", "failure_reason": reason}

    async def fetch_log(self, merchant_id: str, import_id: str) -> dict[str, Any] | None:
        row = self.logs.get(import_id)
        return dict(row) if row is not None and row["merchant_id"] == merchant_id else None

    async def list_logs(self, merchant_id: str, status: str | None, limit: int) -> list[dict[str, Any]]:
        rows = [r for r in self.logs.values() if r["merchant_id"] == merchant_id]
        rows = [r for r in rows if status is None or r["status"] == status]
        return sorted(rows, key=lambda r: r["created_at"], reverse=True)[:limit]

    async def shopify_source_url(self, merchant_id: str, requested: Any) -> str:
        if requested not in (None, ""):
            raise ValidationFailed("file_url", "must be empty for source shopify_api (the shop's Admin API)")
        if merchant_id not in self.shopify_shops:
            raise ValidationFailed("source", "shopify_api needs a merchant that installed the app")
        return f"https://{self.shopify_shops[merchant_id]}/admin/customers.json"

    async def record_audit(
        self, merchant_id: str, actor: str, action: str, import_id: str, details: dict[str, Any]
    ) -> None:
        self.audits.append(
            {"merchant_id": merchant_id, "actor": actor, "action": action, "import_id": import_id} | details
        )


@dataclass
class FakeFilePolicy:
    """ImportFilePolicy: URL syntax only; hosts in `blocked` are refused like a private address."""

    blocked: set[str] = field(default_factory=set)

    async def check(self, file_url: Any) -> FileUrl:
        url = parse_file_url(file_url)
        if url.host in self.blocked:
            raise ValidationFailed("file_url", "resolves to an address imports may not reach")
        return url


class FakeEncoder:
    """EventEncoder: JSON instead of Avro (the codec has its own tests)."""

    async def encode(self, topic: str, record: dict[str, Any]) -> bytes:
        return json.dumps(record, default=str, sort_keys=True).encode()


@dataclass
class FakeCustomerRows:
    """CustomerRows: the merchant's customers as email_hash -> id; `fail_times` transient errors first."""

    customers: dict[str, str] = field(default_factory=dict)
    inserted: list[dict[str, Any]] = field(default_factory=list)
    fail_times: int = 0
    steal: set[str] = field(default_factory=set)  # hashes someone else inserts first (a race)

    async def existing(self, merchant_id: str, hashes: list[str]) -> dict[str, str]:
        if self.fail_times:
            self.fail_times -= 1
            raise psycopg2.OperationalError("connection reset")
        return {h: self.customers[h] for h in hashes if h in self.customers}

    async def insert(self, merchant_id: str, rows: list[dict[str, Any]]) -> dict[str, str]:
        from core_app.domain.email import email_hash

        done: dict[str, str] = {}
        for row in rows:
            # as the trigger: a given hash (the email is the worker's ciphertext) passes through
            key = Settings().email_hash_key.get_secret_value()
            digest = row.get("email_hash") or email_hash(row["email"], key)
            if digest in self.steal:
                self.customers[digest] = f"someone-else-{digest[:8]}"
                continue
            if digest not in self.customers:
                self.customers[digest] = row["id"]
                self.inserted.append(row)
                done[digest] = row["id"]
        return done


def chunked_download(data: bytes, size: int = 64, break_after: int | None = None) -> Download:
    """A Download of `data` in chunks; a transient FetchError after `break_after` chunks."""

    async def chunks() -> AsyncIterator[bytes]:
        for index, start in enumerate(range(0, len(data), size)):
            if break_after is not None and index == break_after:
                raise FetchError("connection reset", transient=True)
            yield data[start : start + size]

    return Download(chunks(), len(data))


@dataclass
class FakeJobIO:
    """JobIO: the file as bytes, the table writes and messages kept; each owner command is confirmed
    at once on the reply channel (updated = its customers), unless `confirm` is False."""

    settings: Settings
    data: bytes = b""
    rows: FakeCustomerRows = field(default_factory=FakeCustomerRows)
    partitions: int = 4
    enabled: bool = True
    confirm: bool = True
    breaks: list[int] = field(default_factory=list)  # chunk index of a broken download, per attempt
    saved: list[dict[str, Any]] = field(default_factory=list)
    progress: list[dict[str, Any]] = field(default_factory=list)
    created: list[dict[str, Any]] = field(default_factory=list)
    commands: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    keys: FakeDataKeys = field(default_factory=lambda: FakeSealingKeys())
    opened: int = 0
    _replies: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)

    @asynccontextmanager
    async def _open(self) -> AsyncIterator[Download]:
        self.opened += 1
        yield chunked_download(self.data, break_after=self.breaks.pop(0) if self.breaks else None)

    def open_source(self, job: ImportJob) -> AbstractAsyncContextManager[Download]:
        return self._open()

    def save_log(self, state: dict[str, Any]) -> None:
        self.saved.append(dict(state))

    async def publish_progress(self, message: dict[str, Any]) -> None:
        self.progress.append(message)

    async def publish_created(self, records: list[dict[str, Any]]) -> None:
        self.created += records

    async def seal_emails(self, merchant_id: str, pairs: list[tuple[str, str]]) -> dict[str, str | None]:
        return await seal_all(self.keys, merchant_id, pairs)

    async def send_update(self, partition: int, command: dict[str, Any]) -> None:
        self.commands.append((partition, command))
        if self.confirm:
            reply = {"command_id": command["command_id"], "updated": len(command["customers"]), "errors": []}
            self._replies.put_nowait(reply)

    async def import_enabled(self, merchant_id: str) -> bool:
        return self.enabled

    def reply_channel(self, import_id: str) -> str:
        return f"reply:import:{import_id}"

    @asynccontextmanager
    async def replies(self, channel: str) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
        async def messages() -> AsyncIterator[dict[str, Any]]:
            while True:
                yield await self._replies.get()

        yield messages()


@dataclass
class FakeShopifyCalls:
    """ShopifyCalls over the in-process fake Shopify (core_app/devtools/fake_shopify) and FakeShopRedis."""

    app: ShopifyApp
    http: aiohttp.ClientSession
    redis: FakeShopRedis = field(default_factory=FakeShopRedis)

    def key(self, shop: str, *parts: str) -> str:
        return ":".join(["test:shopify", f"{{{shop}}}", *parts])


# -- pipeline, dead letters, health, program settings (helper 2) -----------------------------------


@dataclass
class FakeDeadLetters:
    """DeadLetters: keeps (record, kind, reason) in order."""

    sent: list[tuple[FailedRecord, str, str]] = field(default_factory=list)

    async def dead_letter(self, record: FailedRecord, kind: str, reason: str) -> None:
        self.sent.append((record, kind, reason))

    @property
    def kinds(self) -> list[str]:
        return [kind for _, kind, _ in self.sent]


@dataclass
class FakeMessage:
    """What the agents' handling reads of a Faust message."""

    topic: str
    partition: int
    offset: int
    key: Any
    value: bytes | None
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    timestamp: float | None = 1_700_000_000.25


@dataclass
class FakeEvent:
    """What the agents' handling reads of a Faust EventT."""

    message: FakeMessage

    @property
    def key(self) -> Any:
        return self.message.key

    @property
    def value(self) -> bytes | None:
        return self.message.value

    @property
    def headers(self) -> list[tuple[str, bytes]]:
        return self.message.headers


@dataclass
class FakeCodec:
    """Codec: JSON instead of Avro; a payload in `undecodable` is refused like an unknown schema."""

    undecodable: set[bytes] = field(default_factory=set)

    async def encode(self, topic: str, record: dict[str, Any]) -> bytes:
        return json.dumps(record, default=str).encode()

    async def decode(self, payload: bytes | None) -> dict[str, Any]:
        if payload is None or payload in self.undecodable:
            raise DecodeError("unknown_schema", "not a framed Avro record")
        return dict(json.loads(payload))


@dataclass
class FakeHealthProbe:
    checks: dict[str, str] = field(default_factory=lambda: {"postgres": "UP", "redis": "UP", "kafka": "UP"})

    liveness: dict[str, str] = field(default_factory=dict)

    async def check(self) -> HealthReport:
        return HealthReport(dict(self.checks) | self.liveness)

    def check_liveness(self) -> HealthReport:
        return HealthReport(dict(self.liveness))


@dataclass
class FakeReadiness:
    checks: dict[str, bool] = field(default_factory=lambda: {"migrations": True, "redis": True})

    async def is_ready(self) -> dict[str, bool]:
        return dict(self.checks)


@dataclass
class FakeAuditTrail:
    rows: list[dict[str, Any]] = field(default_factory=list)

    async def write(self, **row: Any) -> None:
        self.rows.append(row)


@dataclass
class FakeDeadLetterTopic:
    """DeadLetterTopic: the letters `core.dlq` holds; what was re-injected."""

    letters: list[DeadLetter] = field(default_factory=list)
    reinjected: list[dict[str, Any]] = field(default_factory=list)

    async def read(self, filters: Filters, limit: int | None = None) -> list[DeadLetter]:
        found = [letter for letter in self.letters if filters.match(letter)]
        return found[:limit] if limit is not None else found

    async def reinject(self, records: Sequence[dict[str, Any]]) -> None:
        self.reinjected.extend(records)


@dataclass
class FakeReplayLog:
    done: dict[tuple[int, int], str] = field(default_factory=dict)  # (partition, offset) -> actor

    async def replayed(self, letters: Sequence[DeadLetter]) -> set[tuple[int, int]]:
        return {(letter.partition, letter.offset) for letter in letters} & set(self.done)

    async def record(self, letters: Sequence[DeadLetter], actor: str) -> None:
        self.done |= {(letter.partition, letter.offset): actor for letter in letters}


@dataclass
class FakeProgramSettings:
    """ProgramSettingsOwner, ProgramSettingsCache and ProgramSettingsStore in one: what the owner's
    table, Redis and PostgreSQL hold, per merchant."""

    table: dict[str, dict[str, Any]] = field(default_factory=dict)
    cache: dict[str, dict[str, Any]] = field(default_factory=dict)
    postgres: dict[str, dict[str, Any]] = field(default_factory=dict)
    merchants: set[str] = field(default_factory=set)
    audits: list[dict[str, Any]] = field(default_factory=list)
    source: str = "table"  # "owner": another worker owns the keys

    async def read(self, merchant_id: str) -> tuple[dict[str, Any] | None, str]:
        return self.table.get(merchant_id), self.source

    async def get(self, merchant_id: str) -> dict[str, Any] | None:
        return self.cache.get(merchant_id)

    async def put(self, merchant_id: str, settings: dict[str, Any]) -> None:
        self.cache[merchant_id] = settings

    async def fetch(self, merchant_id: str) -> dict[str, Any] | None:
        return self.postgres.get(merchant_id)

    async def merchant_exists(self, merchant_id: str) -> bool:
        return merchant_id in self.merchants

    async def record_audit(self, **row: Any) -> None:
        self.audits.append(row)


@dataclass
class FakeSettingsCommands:
    """ProgramSettingsCommands: the owner's answer is `reply(command)`, or `error` is raised."""

    commands: list[dict[str, Any]] = field(default_factory=list)
    error: Exception | None = None

    async def update(self, merchant_id: str, command: dict[str, Any]) -> dict[str, Any]:
        self.commands.append(command)
        if self.error is not None:
            raise self.error
        return command | {"id": "settings-1", "version": 1, "request_id": "r-1"}


@dataclass
class FakeSettingsTable:
    """The owner agent's table (agents/program_settings_commands.SettingsTable)."""

    rows: dict[str, dict[str, Any]] = field(default_factory=dict)

    def read(self, merchant_id: str) -> dict[str, Any] | None:
        return self.rows.get(merchant_id)

    def save(self, settings: dict[str, Any]) -> None:
        self.rows[settings["merchant_id"]] = settings


# -- customers (helper 1) ---------------------------------------------------------------------------


def customer_state(merchant_id: str, customer_id: str, **fields: Any) -> CustomerState:
    """A stored customer as PostgreSQL or the table would hold it."""
    base: dict[str, Any] = {"email": "sealed", "email_hash": "h", "created_at": "2026-01-01T00:00:00Z"}
    return CustomerState(merchant_id, customer_id, **(base | fields))


@dataclass
class FakeCustomerStore:
    """CustomerStore: rows by (merchant_id, customer_id); emails unique per merchant, like the index."""

    rows: dict[tuple[str, str], CustomerState] = field(default_factory=dict)
    emails: dict[tuple[str, str], str] = field(default_factory=dict)  # plaintext, as pgcrypto sees it
    merchants: set[str] = field(default_factory=set)
    shredded: set[tuple[str, str]] = field(default_factory=set)
    thresholds: dict[str, dict[str, Any]] = field(default_factory=dict)
    listed: list[dict[str, Any]] = field(default_factory=list)  # what `page` answers, in id order
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)

    def _taken(self, merchant_id: str, customer_id: str, email: str) -> bool:
        return any(m == merchant_id and c != customer_id and e == email for (m, c), e in self.emails.items())

    async def fetch(self, merchant_id: str, customer_id: str) -> CustomerState | None:
        self.calls.append("fetch")
        return self.rows.get((merchant_id, customer_id))

    async def insert(
        self, merchant_id: str, customer_id: str, email: str, metadata: dict[str, Any]
    ) -> CustomerState:
        self.calls.append("insert")
        if merchant_id not in self.merchants:
            raise NotFound("merchant", merchant_id)
        if self._taken(merchant_id, customer_id, email):
            raise Conflict("email", "another customer of this merchant has this email")
        self.emails[(merchant_id, customer_id)] = email
        row = self.rows.setdefault(
            (merchant_id, customer_id),
            customer_state(
                merchant_id, customer_id, email="pg-cipher", email_hash=f"hash:{email}", metadata=metadata
            ),
        )
        return row

    async def change_email(self, merchant_id: str, customer_id: str, email: str) -> str:
        self.calls.append("change_email")
        if self._taken(merchant_id, customer_id, email):
            raise Conflict("email", "another customer of this merchant has this email")
        self.emails[(merchant_id, customer_id)] = email
        return f"hash:{email}"

    async def email_of(self, merchant_id: str, customer_id: str) -> StoredEmail | None:
        key = (merchant_id, customer_id)
        if key not in self.emails:
            return None
        shredded = key in self.shredded
        return StoredEmail(None if shredded else self.emails[key], shredded)

    async def rfm_thresholds(self, merchant_id: str) -> tuple[dict[str, Any] | None]:
        self.calls.append("thresholds")
        return (self.thresholds.get(merchant_id),)

    async def page(
        self, query: ListQuery, *, email_hash: str | None, thresholds: dict[str, Any] | None, with_pii: bool
    ) -> list[dict[str, Any]]:
        self.calls.append(f"page with_pii={with_pii} email_hash={email_hash}")
        after = query.after or ""
        rows = [
            dict(row) for row in self.listed if row["merchant_id"] == query.merchant_id and row["id"] > after
        ]
        if not with_pii:
            rows = [{k: v for k, v in row.items() if k != "email"} for row in rows]
        return rows[: query.limit + 1]

    async def segment_counts(self, merchant_id: str) -> dict[str, int]:
        return dict(self.counts.get(merchant_id, {}))


@dataclass
class FakeReadCache:
    """ReadCache: a dict; `down` makes every read a miss, as the Redis adapter degrades."""

    views: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    async def get(self, merchant_id: str, customer_id: str) -> dict[str, Any] | None:
        view = self.views.get((merchant_id, customer_id))
        return dict(view) if view is not None else None

    async def put(self, merchant_id: str, customer_id: str, view: dict[str, Any]) -> None:
        self.views[(merchant_id, customer_id)] = dict(view)


@dataclass
class FakeOwnerClient:
    """OwnerClient: the table answers from `table` (("table", view) or ("owner", view)); `outages`
    queues the reasons the partition cannot answer first; commands are answered by `answer`."""

    table: dict[tuple[str, str], tuple[str, dict[str, Any]]] = field(default_factory=dict)
    outages: list[str] = field(default_factory=list)
    waited: list[str] = field(default_factory=list)
    asked: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    answer: Callable[[dict[str, Any]], dict[str, Any]] | None = None

    async def table_read(self, merchant_id: str, customer_id: str) -> tuple[str, dict[str, Any] | None]:
        if self.outages:
            return self.outages.pop(0), None
        found = self.table.get((merchant_id, customer_id))
        return (found[0], dict(found[1])) if found is not None else ("absent", None)

    async def wait(self, why: str, seconds: float) -> None:
        self.waited.append(why)

    async def ask(self, topic: str, key: str, command: dict[str, Any]) -> dict[str, Any]:
        self.asked.append((topic, key, command))
        if self.answer is not None:
            return self.answer(command)
        return {"id": command["customer_id"], "merchant_id": command["merchant_id"]}


@dataclass
class FakePiiAudit:
    reads: list[PiiRead] = field(default_factory=list)

    async def record(self, reads: list[PiiRead]) -> None:
        self.reads.extend(reads)


@dataclass
class FakeSealingKeys(FakeDataKeys):
    """DataKeys whose shredded keys also refuse to seal (as DataKeyStore does after an erasure)."""

    async def encrypt_email(self, merchant_id: str, customer_id: str, email: str) -> str:
        if (merchant_id, customer_id) in self.shredded:
            raise KeyShredded(f"{merchant_id}/{customer_id}")
        return await super().encrypt_email(merchant_id, customer_id, email)


@dataclass
class FakeRemoteCounts:
    """RemoteSegmentCounts (AdminFeatures): None stands for 'did not answer in time'."""

    counts: dict[str, int] | None = None
    asked: list[str] = field(default_factory=list)

    async def segment_counts(self, merchant_id: str) -> dict[str, int] | None:
        self.asked.append(merchant_id)
        return self.counts


@dataclass
class FakeCustomerTable:
    """CustomerTable: one dict for the owner's partition."""

    states: dict[str, CustomerState] = field(default_factory=dict)
    timeline: list[dict[str, Any]] = field(default_factory=list)  # every entry saved, in order

    def read(self, key: str, event: Any) -> CustomerState | None:
        return self.states.get(key)

    def save(self, state: CustomerState, event: Any, timeline: list[dict[str, Any]] | None = None) -> None:
        self.states[state.key] = state
        self.timeline.extend(timeline or [])


@dataclass
class FakeReplies:
    """ReplyChannel: the replies published, by channel."""

    sent: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    async def publish(self, channel: str, message: str) -> int:
        self.sent.append((channel, json.loads(message)))
        return 1


@dataclass
class FakeCustomerWriter:
    """CustomerWriter: creates and updates kept in order; views by customer id; `taken` emails make
    a create a Conflict (created meanwhile)."""

    views: dict[str, dict[str, Any]] = field(default_factory=dict)
    created: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    updated: list[tuple[str, str, str | None, dict[str, Any]]] = field(default_factory=list)
    taken: set[str] = field(default_factory=set)

    async def create(
        self, principal: Principal | None, merchant_id: Any, email: Any, metadata: Any
    ) -> dict[str, Any]:
        if email in self.taken:
            raise Conflict("email", "another customer of this merchant has this email")
        self.created.append((merchant_id, email, metadata))
        return {"id": str(uuid.uuid4())}

    async def update(
        self, principal: Principal | None, merchant_id: Any, customer_id: Any, email: Any, metadata: Any
    ) -> dict[str, Any]:
        self.updated.append((merchant_id, customer_id, email, metadata))
        return {"id": customer_id}

    async def read(self, merchant_id: str, customer_id: str) -> tuple[dict[str, Any], str]:
        return dict(self.views.get(customer_id, {"id": customer_id, "metadata": {}})), "table"


# -- gdpr requests and exports (issue 17) -----------------------------------------------------------


@dataclass
class FakeGdprRequests:
    """GdprRequestStore: rows by id with their status, attempts and result."""

    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    fail_record: Exception | None = None

    async def record(self, requests: Sequence[GdprRequest]) -> list[str]:
        if self.fail_record is not None:
            raise self.fail_record
        fresh = [r for r in requests if r.id not in self.rows]
        for request in fresh:
            self.rows[request.id] = {"request": request, "status": "open", "attempts": 0, "result": {}}
        return [request.id for request in fresh]

    async def failed_attempt(self, request_id: str, error: str, final: bool) -> None:
        row = self.rows[request_id]
        if row["status"] != "done":
            row["attempts"] += 1
            row["error"] = error
            row["status"] = "failed" if final else row["status"]

    async def finish(self, request_id: str, result: dict[str, Any]) -> bool:
        row = self.rows[request_id]
        if row["status"] == "done":
            return False
        row.update(status="done", result=result, attempts=row["attempts"] + 1)
        return True

    async def open_summary(self) -> OpenRequests:
        now = datetime.now(UTC)
        waiting = [row["request"] for row in self.rows.values() if row["status"] != "done"]
        oldest = max(((now - r.received_at).total_seconds() for r in waiting), default=0.0)
        return OpenRequests(len(waiting), sum(r.deadline < now for r in waiting), oldest)

    def status(self, request_id: str) -> str:
        return str(self.rows[request_id]["status"])


@dataclass
class FakeGdprExports:
    """GdprExportStore: import logs and audit rows per merchant, the exports saved."""

    logs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # merchant -> import logs
    audits: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    saved: dict[str, SealedExport] = field(default_factory=dict)

    async def import_logs(self, merchant_id: str, import_ids: Sequence[str]) -> list[dict[str, Any]]:
        return [log for log in self.logs.get(merchant_id, []) if log["import_id"] in import_ids]

    async def audit_entries(self, merchant_id: str, customer_id: str) -> list[dict[str, Any]]:
        return list(self.audits.get((merchant_id, customer_id), []))

    async def save(self, export: SealedExport) -> None:
        self.saved[export.export_id] = export

    async def load(self, merchant_id: str, export_id: str) -> SealedExport | None:
        export = self.saved.get(export_id)
        return export if export is not None and export.merchant_id == merchant_id else None


@dataclass
class FakeShopData:
    """ShopData: what each call would delete, and the calls in order (shred must come first)."""

    customers: dict[str, list[str]] = field(default_factory=dict)  # merchant -> customer ids
    calls: list[str] = field(default_factory=list)

    async def shred_data_keys(self, merchant_id: str) -> int:
        self.calls.append("shred")
        return len(self.customers.get(merchant_id, []))

    async def delete_rows(self, merchant_id: str) -> tuple[dict[str, int], list[str]]:
        self.calls.append("delete")
        gone = self.customers.pop(merchant_id, [])
        return {"customers": len(gone), "api_keys": 2 if gone else 0}, gone


@dataclass
class FakeTablePurges:
    calls: list[str] = field(default_factory=list)
    fail_times: int = 0
    log: list[str] | None = None  # shared with FakeShopData.calls to check the order

    async def purge(self, merchant_id: str) -> dict[str, int]:
        if self.log is not None:
            self.log.append("tables")
        self.calls.append(merchant_id)
        if self.fail_times:
            self.fail_times -= 1
            raise Unavailable("a partition did not confirm")
        return {"customers": 1, "program_settings": 1, "import_logs": 0}


def gdpr_deps(**changes: Any) -> GdprDeps:
    """GdprDeps over the fakes: the real CustomerService reads a FakeCustomerStore (PostgreSQL) and
    a FakeOwnerClient (the tables)."""
    from core_app.services.customers import CustomerService

    store = changes.pop("store", FakeCustomerStore())
    owners = changes.pop("owners", FakeOwnerClient())
    keys = changes.pop("data_keys", FakeDataKeys())
    guard = changes.pop("guard", FakeGuard())
    customers = CustomerService(
        store, FakeReadCache(), owners, guard, keys, FakePiiAudit(), read_recovery_wait=0.01
    )
    shop_data = changes.pop("shop_data", FakeShopData())
    parts: dict[str, Any] = {
        "requests": FakeGdprRequests(),
        "exports": FakeGdprExports(),
        "customers": customers,
        "store": store,
        "data_keys": keys,
        "kek": SHOPIFY_KEK,
        "publish": FakeRecordPublisher(),
        "guard": guard,
        "audit": FakeAuditTrail(),
        "shop_data": shop_data,
        "table_purges": FakeTablePurges(log=shop_data.calls),
    }
    return GdprDeps(**(parts | changes))


@dataclass
class FakeTimelineStore:
    """TimelineStore: entries per customer (any order; served newest first); `erased` marks the
    erased, and customers absent from both are unknown."""

    entries_by_customer: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    erased_customers: set[tuple[str, str]] = field(default_factory=set)
    asked: list[dict[str, Any]] = field(default_factory=list)

    async def erased(self, merchant_id: str, customer_id: str) -> bool | None:
        key = (merchant_id, customer_id)
        if key in self.erased_customers:
            return True
        return False if key in self.entries_by_customer else None

    async def entries(
        self, merchant_id: str, customer_id: str, *, before: int | None, limit: int, retention_days: int
    ) -> list[dict[str, Any]]:
        self.asked.append({"before": before, "limit": limit, "retention_days": retention_days})
        rows = sorted(
            self.entries_by_customer.get((merchant_id, customer_id), []), key=lambda e: -e["version"]
        )
        return [dict(row) for row in rows if before is None or row["version"] < before][:limit]
