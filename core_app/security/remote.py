"""Clients of the Auth (`auth.v1.AuthService`) and Roles (`roles.v1.RolesService`) services.

Used when AUTH_GRPC_TARGET / ROLES_GRPC_TARGET are set. Answers are cached for AUTH_CACHE_TTL
seconds (a token's never past its expiry), so a burst of calls costs one round trip. An unreachable
service fails closed: the request gets 503 / UNAVAILABLE, never a pass.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from cachetools import TLRUCache
from grpclib import GRPCError
from grpclib.client import Channel

from core_app.security import metrics
from core_app.security.errors import Forbidden, SecurityUnavailable, Unauthenticated
from core_app.security.generated.auth.v1 import auth_pb2
from core_app.security.generated.auth.v1.auth_grpc import AuthServiceStub
from core_app.security.generated.roles.v1 import roles_pb2
from core_app.security.generated.roles.v1.roles_grpc import RolesServiceStub
from core_app.security.principal import Principal, normalise_merchant, normalise_permissions

T = TypeVar("T")


def split_target(target: str) -> tuple[str, int]:
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"expected host:port, got {target!r}")
    return host.strip("[]"), int(port)


def _expiring(_key: Any, value: tuple[Any, float], _now: float) -> float:
    return value[1]


class _Remote:
    def __init__(self, name: str, target: str, timeout: float, ttl: float) -> None:
        self.name = name
        self.host, self.port = split_target(target)
        self.timeout = timeout
        self.ttl = ttl
        self._channel: Channel | None = None
        self._cache: TLRUCache[Any, tuple[Any, float]] = TLRUCache(maxsize=50_000, ttu=_expiring)

    def channel(self) -> Channel:
        if self._channel is None:
            self._channel = Channel(self.host, self.port)
        return self._channel

    async def cached(self, key: Any, call: Callable[[], Awaitable[T]], ttl: float | None = None) -> T:
        hit = self._cache.get(key)
        if hit is not None:
            metrics.remote_calls.labels(self.name, "cached").inc()
            return hit[0]  # type: ignore[no-any-return]
        try:
            value = await call()
        except (GRPCError, OSError, TimeoutError) as exc:
            metrics.remote_calls.labels(self.name, "error").inc()
            raise SecurityUnavailable(f"{self.name} service unavailable: {type(exc).__name__}") from None
        metrics.remote_calls.labels(self.name, "ok").inc()
        lifetime = self.ttl if ttl is None else max(0.0, min(self.ttl, ttl))
        if lifetime > 0:
            self._cache[key] = (value, time.monotonic() + lifetime)
        return value

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None


class AuthClient(_Remote):
    def __init__(self, target: str, *, audience: str, timeout: float = 1.0, ttl: float = 30.0) -> None:
        super().__init__("auth", target, timeout, ttl)
        self.audience = audience

    async def validate_token(self, token: str) -> Principal:
        key = ("token", hashlib.sha256(token.encode()).digest())
        hit = self._cache.get(key)
        if hit is not None:
            metrics.remote_calls.labels(self.name, "cached").inc()
            reply = hit[0]
        else:
            try:
                reply = await AuthServiceStub(self.channel()).ValidateToken(
                    auth_pb2.ValidateTokenRequest(token=token, audience=self.audience), timeout=self.timeout
                )
            except (GRPCError, OSError, TimeoutError) as exc:
                metrics.remote_calls.labels(self.name, "error").inc()
                raise SecurityUnavailable(f"auth service unavailable: {type(exc).__name__}") from None
            metrics.remote_calls.labels(self.name, "ok").inc()
            lifetime = min(self.ttl, reply.expires_at - time.time()) if reply.valid else self.ttl
            if lifetime > 0:
                self._cache[key] = (reply, time.monotonic() + lifetime)
        if not reply.valid:
            raise Unauthenticated(f"token refused by the auth service: {reply.reason or 'invalid'}")
        if reply.expires_at and reply.expires_at <= time.time():
            raise Unauthenticated("token expired")
        merchant = normalise_merchant(reply.merchant_id) if reply.merchant_id else None
        if merchant is None and not reply.cross_merchant:
            raise Unauthenticated("token names no valid merchant_id")
        return Principal(
            subject=reply.subject,
            merchant_id=merchant,
            permissions=normalise_permissions(reply.permissions),
            auth_method="auth_service",
            cross_merchant=reply.cross_merchant,
        )

    async def validate_merchant(self, merchant_id: str) -> None:
        async def call() -> auth_pb2.ValidateMerchantResponse:
            request = auth_pb2.ValidateMerchantRequest(merchant_id=merchant_id)
            return await AuthServiceStub(self.channel()).ValidateMerchant(request, timeout=self.timeout)

        reply = await self.cached(("merchant", merchant_id), call)
        if not reply.valid:
            raise Forbidden(f"merchant is not active: {reply.reason or 'refused'}", reason="merchant")


class RolesClient(_Remote):
    def __init__(self, target: str, *, timeout: float = 1.0, ttl: float = 30.0) -> None:
        super().__init__("roles", target, timeout, ttl)

    async def permissions(self, subject: str, merchant_id: str | None) -> frozenset[str]:
        async def call() -> frozenset[str]:
            request = roles_pb2.GetPermissionsRequest(subject=subject, merchant_id=merchant_id or "")
            reply = await RolesServiceStub(self.channel()).GetPermissions(request, timeout=self.timeout)
            return normalise_permissions(reply.permissions)

        return await self.cached(("permissions", subject, merchant_id), call)
