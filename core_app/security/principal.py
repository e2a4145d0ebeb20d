"""Who is calling, what they may do, and the one authorization check every operation uses.

Permissions are hierarchical: `admin:full` implies `admin:customers:edit`, which implies
`admin:customers:view`. Reads need view, customer writes and imports need edit, settings updates
need full. A principal acts on its own merchant only; the `cross_merchant` claim (explicit, never
implied by `admin:full`) is the only way past that.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import lru_cache

from core_app.domain.events import is_canonical_uuid
from core_app.security.errors import Forbidden, Unauthenticated

VIEW = "admin:customers:view"
EDIT = "admin:customers:edit"
FULL = "admin:full"
PERMISSIONS = (VIEW, EDIT, FULL)
_RANK = {VIEW: 1, EDIT: 2, FULL: 3}
# Scopes stand beside the hierarchy and are never implied by it (core_app/security/pii.py).
READ_PII = "customers:read_pii"
SCOPES = (READ_PII,)
GRANTABLE = (*PERMISSIONS, *SCOPES)


def normalise_permissions(values: Iterable[str]) -> frozenset[str]:
    """Known permissions and scopes only; unknown strings are dropped, never widened."""
    return frozenset(v for v in values if v in _RANK or v in SCOPES)


def grants(permissions: Iterable[str], needed: str) -> bool:
    return _rank_of(frozenset(permissions)) >= _RANK[needed]  # frozenset() of a frozenset: no copy


@lru_cache(maxsize=64)  # a principal's permissions are one of a handful of frozensets
def _rank_of(permissions: frozenset[str]) -> int:
    return max((_RANK.get(p, 0) for p in permissions), default=0)


def normalise_merchant(value: object) -> str | None:
    if isinstance(value, str) and is_canonical_uuid(value):
        return value  # already canonical (ids the use cases parsed): no uuid.UUID on every request
    try:
        return str(uuid.UUID(str(value)))
    except (ValueError, TypeError, AttributeError):
        return None


@dataclass(frozen=True, slots=True)
class Principal:
    subject: str
    merchant_id: str | None
    permissions: frozenset[str]
    auth_method: str  # jwt | auth_service | api_key | internal | system | disabled
    cross_merchant: bool = False
    client_ip: str | None = field(default=None, compare=False)

    @property
    def rate_key(self) -> str:
        """What the rate limit counts under: the merchant, or the subject of a cross-merchant caller."""
        return self.merchant_id or f"sub:{self.subject}"

    def with_ip(self, client_ip: str | None) -> Principal:
        return Principal(
            self.subject,
            self.merchant_id,
            self.permissions,
            self.auth_method,
            self.cross_merchant,
            client_ip,
        )


def authorize(principal: Principal | None, merchant_id: str, permission: str) -> None:
    """Raise unless `principal` may exercise `permission` on `merchant_id`. The only such check."""
    if principal is None:
        raise Unauthenticated("credentials required")
    target = normalise_merchant(merchant_id)
    if not principal.cross_merchant and (target is None or principal.merchant_id != target):
        raise Forbidden("merchant_id does not match the caller's merchant", reason="merchant")
    if not grants(principal.permissions, permission):
        raise Forbidden(f"needs permission {permission}", reason="permission", permission=permission)


current_principal: ContextVar[Principal | None] = ContextVar("core_principal", default=None)


@contextmanager
def use_principal(principal: Principal | None) -> Iterator[None]:
    """Run a block as `principal` (the transports do this around each request or connection)."""
    token = current_principal.set(principal)
    try:
        yield
    finally:
        current_principal.reset(token)


def system_principal(name: str) -> Principal:
    """For work the service starts itself (an import agent creating customers), never for requests."""
    return Principal(f"system:{name}", None, frozenset({FULL}), "system", cross_merchant=True)


DISABLED = Principal("auth-disabled", None, frozenset({FULL}), "disabled", cross_merchant=True)
