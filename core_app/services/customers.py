"""Customer use cases, shared by REST, GraphQL and gRPC.

Reads go table -> Redis (`customer:{merchant_id}:{customer_id}`, 24 h) -> PostgreSQL, and a
PostgreSQL hit is cached in Redis. The sink deletes the Redis entry after each persisted change.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from core_app import metrics, read_source, topics
from core_app.domain.customer import customer_key
from core_app.domain.customer_query import FIELDS, parse_fields, parse_include, project_metadata
from core_app.domain.customer_view import customer_view, stored_view
from core_app.domain.errors import Conflict, NotFound, Unavailable, ValidationFailed
from core_app.domain.events import parse_uuid
from core_app.domain.profile import CustomerInput
from core_app.security.crypto import DecryptionFailed
from core_app.security.errors import Forbidden
from core_app.security.flags import RFM_SCORE
from core_app.security.pii import PiiRead, may_read_pii
from core_app.security.principal import EDIT, READ_PII, VIEW, Principal
from core_app.security.shredding import KeyShredded, is_ciphertext
from core_app.services.customer_pii import SegmentOfRead, attach_email
from core_app.services.ports import CustomerStore, DataKeys, Guard, OwnerClient, PiiAudit, ReadCache

__all__ = ["CustomerService", "customer_view", "stored_view"]

MAX_SEALED = 4096  # a sealed email is ~4/3 of the address plus 40 characters


def _who(principal: Principal | None, transport: str) -> dict[str, str]:
    """Who changes the customer, through which transport: the timeline's `source` of API writes."""
    return {"transport": transport, "actor": principal.subject if principal is not None else "system"}


class CustomerService:
    """The single-customer use cases of one worker, built once by Components."""

    def __init__(
        self,
        store: CustomerStore,
        cache: ReadCache,
        owners: OwnerClient,
        guard: Guard,
        data_keys: DataKeys,
        audit: PiiAudit,
        *,
        read_recovery_wait: float,
    ) -> None:
        self.store = store
        self.cache = cache
        self.owners = owners
        self.guard = guard
        self.data_keys = data_keys
        self.audit = audit
        self.read_recovery_wait = read_recovery_wait
        self.segments = SegmentOfRead(store)

    async def read(self, merchant_id: str, customer_id: str) -> tuple[dict[str, Any], str]:
        """The customer's view and the source that answered: table, owner, redis or postgres.

        The key's table partition answers: this worker's when it holds it, else the owner's over the
        internal route. Redis and PostgreSQL answer only for a customer no table holds (none of its
        events reached the tables yet, or the broker lost them): they trail the tables by the sink's
        lag, so answering from them while the partition recovers or its owner is away could show a
        reader an older version than it already saw (D112). That case waits up to
        READ_RECOVERY_WAIT, then is 503.
        """
        found = await self._table_tier(merchant_id, customer_id)
        if found is not None:
            return found
        cached = await self.cache.get(merchant_id, customer_id)
        if cached is not None:
            return cached, "redis"
        state = await self.store.fetch(merchant_id, customer_id)
        if state is None:
            raise NotFound("customer", customer_id)
        view = customer_view(state)
        await self.cache.put(merchant_id, customer_id, view)
        return view, "postgres"

    async def _table_tier(self, merchant_id: str, customer_id: str) -> tuple[dict[str, Any], str] | None:
        """The table's answer, None when no table holds the key; Unavailable while its partition
        cannot answer (recovering, or its owner away) for longer than READ_RECOVERY_WAIT."""
        deadline: float | None = None  # set on the first miss only: the common read never waits
        while True:
            outcome, view = await self.owners.table_read(merchant_id, customer_id)
            if view is not None:
                return view, outcome
            if outcome == "absent":
                return None
            now = asyncio.get_running_loop().time()
            if deadline is None:
                deadline = now + self.read_recovery_wait
            remaining = deadline - now
            if remaining <= 0:
                metrics.reads_while_recovering.inc()
                raise Unavailable(f"customer {customer_id}: {outcome}; retry shortly")
            await self.owners.wait(outcome, remaining)

    async def get(
        self,
        principal: Principal | None,
        merchant_id: Any,
        customer_id: Any,
        *,
        transport: str = "rest",
        fields: Any = None,
        include: Any = None,
    ) -> dict[str, Any]:
        """One customer, with its segment (as list items say it); `fields=` / `include=` project the
        answer as the list does (top-level fields; metadata keys)."""
        merchant_id = parse_uuid(merchant_id, "merchant_id")
        customer_id = parse_uuid(customer_id, "customer_id")
        wanted = parse_fields(fields) | {"source"}
        keys = parse_include(include)
        principal = await self.guard.guard(principal, merchant_id, VIEW)
        view, source = await self.read(merchant_id, customer_id)
        metrics.count_read(metrics.reads, source)
        read_source.record(source)
        view["source"] = source  # every read gives a dict of its own
        if "segment" in wanted:
            view["segment"] = await self.segments.segment_of(merchant_id, view["rfm_score"])
        if keys is not None:
            view["metadata"] = project_metadata(view["metadata"], keys)
        if "email" in wanted and principal is not None and READ_PII in principal.permissions:
            # The decrypted email, audited (core_app/services/customer_pii.py); absent otherwise.
            await attach_email(self.store, self.audit, principal, view, transport)
        if len(wanted) <= len(FIELDS):
            return {name: value for name, value in view.items() if name in wanted}
        return view

    async def rfm(self, principal: Principal | None, merchant_id: Any, customer_id: Any) -> dict[str, int]:
        merchant_id = parse_uuid(merchant_id, "merchant_id")
        customer_id = parse_uuid(customer_id, "customer_id")
        await self.guard.guard(principal, merchant_id, VIEW, RFM_SCORE)
        view, source = await self.read(merchant_id, customer_id)
        metrics.count_read(metrics.rfm_reads, source)
        read_source.record(source)
        if not view["rfm_score"]:
            raise NotFound("RFM score of customer", customer_id)
        return dict(view["rfm_score"])

    async def unseal_email(
        self, principal: Principal | None, merchant_id: Any, customer_id: Any, sealed: Any, *, transport: str
    ) -> str:
        """The email a `customer.created` event carries sealed, for a caller with customers:read_pii
        (audited like any PII read, D132). Conflict once the customer was erased: its data key is gone,
        and with it every sealed copy (D172)."""
        merchant_id = parse_uuid(merchant_id, "merchant_id")
        customer_id = parse_uuid(customer_id, "customer_id")
        if not isinstance(sealed, str) or not is_ciphertext(sealed) or len(sealed) > MAX_SEALED:
            raise ValidationFailed("sealed_email", "must be the ce1: value of a customer.created event")
        principal = await self.guard.guard(principal, merchant_id, VIEW)
        if not may_read_pii(principal):
            raise Forbidden(f"needs permission {READ_PII}", reason="permission", permission=READ_PII)
        try:
            email = await self.data_keys.decrypt_email(merchant_id, customer_id, sealed)
        except KeyShredded:  # no live data key: an erased customer, or one that never had this value
            row = await self.store.email_of(merchant_id, customer_id)
            if row is None:
                raise NotFound("customer", customer_id) from None
            if row.redacted:
                raise Conflict("customer_id", "was erased (GDPR): its email is gone for good") from None
            raise ValidationFailed("sealed_email", "does not open under this customer's key") from None
        except DecryptionFailed:
            raise ValidationFailed("sealed_email", "does not open under this customer's key") from None
        await self.audit.record([PiiRead(merchant_id, customer_id, principal.subject, transport)])
        return email

    async def seal_email(self, merchant_id: str, customer_id: str, email: str) -> str:
        """The email under the customer's own data key (D67): commands, table state and events carry
        only this, so erasing the key (GDPR) makes every copy in Kafka and RocksDB unreadable."""
        try:
            return await self.data_keys.encrypt_email(merchant_id, customer_id, email)
        except KeyShredded:
            raise Conflict("customer_id", "this customer was erased (GDPR) and takes no new email") from None

    async def create(
        self,
        principal: Principal | None,
        merchant_id: Any,
        email: Any,
        metadata: Any,
        *,
        transport: str = "rest",
    ) -> dict[str, Any]:
        merchant_id = parse_uuid(merchant_id, "merchant_id")
        principal = await self.guard.guard(principal, merchant_id, EDIT)
        given = CustomerInput.parse(email, metadata, email_required=True)
        customer_id = str(uuid.uuid4())
        command = {"kind": "create", "merchant_id": merchant_id, "customer_id": customer_id}
        command |= _who(principal, transport)  # for the timeline entry (D170)
        assert given.email is not None  # email_required
        sealed = await self.seal_email(merchant_id, customer_id, given.email)
        command |= {"email": sealed, "metadata": given.metadata}
        return await self.owners.ask(
            topics.CUSTOMER_COMMANDS, customer_key(merchant_id, customer_id), command
        )

    async def update(
        self,
        principal: Principal | None,
        merchant_id: Any,
        customer_id: Any,
        email: Any,
        metadata: Any,
        *,
        transport: str = "rest",
    ) -> dict[str, Any]:
        merchant_id = parse_uuid(merchant_id, "merchant_id")
        customer_id = parse_uuid(customer_id, "customer_id")
        principal = await self.guard.guard(principal, merchant_id, EDIT)
        given = CustomerInput.parse(email, metadata, email_required=False)
        command = {"kind": "update", "merchant_id": merchant_id, "customer_id": customer_id}
        command |= _who(principal, transport)
        sealed = await self.seal_email(merchant_id, customer_id, given.email) if given.email else None
        command |= {"email": sealed, "metadata": given.metadata, "requested_at_ms": int(time.time() * 1000)}
        return await self.owners.ask(
            topics.CUSTOMER_COMMANDS, customer_key(merchant_id, customer_id), command
        )
