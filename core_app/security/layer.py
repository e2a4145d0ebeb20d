"""The security layer of one worker: authentication, admission, authorization, flags, data keys.

Built lazily from the open runtime (its Redis client and PostgreSQL pool). Transports use it through
their one wiring point each (core_app/security/http.py, grpc_listener.py, ws.py); use cases call
`guard(merchant_id, permission, flag=...)`, which reads the caller from the context the transport
set.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import logging

import aiopg

from core_app import log_context
from core_app.domain.errors import NotFound
from core_app.redis_client import RedisClient
from core_app.security.api_keys import ApiKeyStore
from core_app.security.auth_failures import AuthFailureLimiter
from core_app.security.broadcast import SecurityBroadcast
from core_app.security.crypto import kek_from_setting
from core_app.security.errors import FeatureDisabled, Unauthenticated
from core_app.security.flags import FlagSource, LaunchDarklyFlags, RedisFlags
from core_app.security.gate import Gate, Verdict
from core_app.security.merchant_status import MerchantStatus
from core_app.security.network import TrustedProxies
from core_app.security.principal import (
    DISABLED,
    FULL,
    Principal,
    authorize,
    normalise_merchant,
)
from core_app.security.remote import AuthClient, RolesClient
from core_app.security.shredding import DataKeyStore
from core_app.security.signing import (
    API_KEY_HEADER,
    NONCE_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    check_nonce,
    check_signature,
    check_timestamp,
)
from core_app.security.tokens import JwtVerifier
from core_app.settings import Settings

log = logging.getLogger(__name__)

INTERNAL = Principal("internal", None, frozenset({FULL}), "internal", cross_merchant=True)
TRUSTED_METHODS = frozenset({"system", "disabled", "internal"})


def bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise Unauthenticated("credentials required: Authorization: Bearer <token>")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("Authorization must be 'Bearer <token>'")
    return token.strip()


class SecurityLayer:
    def __init__(
        self, settings: Settings, redis: RedisClient, pool: aiopg.Pool, *, flags: FlagSource | None = None
    ) -> None:
        self.settings = settings
        self.redis, self.pool = redis, pool  # what the layer's stores were built on
        self.enabled = settings.auth_enabled
        kek = kek_from_setting(settings.key_encryption_key.get_secret_value())
        hs256 = settings.jwt_hs256_secret.get_secret_value() if settings.jwt_hs256_secret else None
        self.jwt = JwtVerifier(
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            hs256_secret=hs256,
            jwks=settings.jwt_jwks,
            leeway=settings.jwt_leeway,
        )
        timeout, ttl = settings.auth_grpc_timeout, settings.auth_cache_ttl
        self.auth = (
            AuthClient(settings.auth_grpc_target, audience=settings.jwt_audience, timeout=timeout, ttl=ttl)
            if settings.auth_grpc_target
            else None
        )
        self.roles = (
            RolesClient(settings.roles_grpc_target, timeout=timeout, ttl=ttl)
            if settings.roles_grpc_target
            else None
        )
        self.api_keys = ApiKeyStore(pool, kek, ttl)
        # News every worker hears within a second: shredded data keys, blocked addresses (D183, D184).
        self.broadcast = SecurityBroadcast(redis, settings.redis_key_prefix)
        self.data_keys = DataKeyStore(pool, kek, ttl, self.broadcast)
        self.auth_failures = AuthFailureLimiter(
            redis,
            prefix=settings.redis_key_prefix,
            limit=settings.auth_failure_limit,
            window=settings.auth_failure_window,
            broadcast=self.broadcast,
        )
        self.merchants = MerchantStatus(pool, ttl)  # uninstalled merchants answer 404 (D128)
        self.gate = Gate(
            redis,
            prefix=settings.redis_key_prefix,
            limit=settings.rate_limit_per_second,
            fail_mode=settings.security_redis_fail_mode,
        )
        if flags is not None:
            self.flags: FlagSource = flags
        elif settings.launchdarkly_sdk_key is not None:
            # start_wait=0: never block the event loop; until the SDK has its flags, defaults apply.
            self.flags = LaunchDarklyFlags(settings.launchdarkly_sdk_key.get_secret_value(), start_wait=0)
        else:
            self.flags = RedisFlags(redis, settings.redis_key_prefix)
        self.proxies = TrustedProxies.from_setting(settings.trusted_proxies)
        self._internal_token = settings.internal_token.get_secret_value().encode()
        self.replay_ttl = settings.signature_max_age + settings.signature_max_skew

    # -- authentication ---------------------------------------------------------------------------

    def start(self) -> None:
        """Background work of the layer (the broadcast listener); inside the running loop."""
        self.broadcast.start()

    async def authenticate_bearer(self, authorization: str | None, client_ip: str | None) -> Principal:
        """The token's principal. An address with too many failures is refused first (D183)."""
        self.auth_failures.check(client_ip)
        try:
            return await self._token_principal(bearer_token(authorization), client_ip)
        except Unauthenticated:
            await self.auth_failures.failed(client_ip)
            raise

    async def _token_principal(self, token: str, client_ip: str | None) -> Principal:
        if self.auth is not None:
            principal = await self.auth.validate_token(token)
            if principal.merchant_id is not None:
                await self.auth.validate_merchant(principal.merchant_id)
        else:
            principal = await self.jwt.verify(token)
        if self.roles is not None:
            permissions = await self.roles.permissions(principal.subject, principal.merchant_id)
            principal = dataclasses.replace(principal, permissions=permissions)
        return principal.with_ip(client_ip)

    async def authenticate_signed(
        self,
        method: str,
        path_qs: str,
        headers: dict[str, str] | object,
        body: bytes,
        client_ip: str | None,
    ) -> tuple[Principal, str]:
        """The API key's principal and the replay id of this signature. An address with too many
        failures is refused before the signature is read (D183)."""
        self.auth_failures.check(client_ip)
        try:
            return await self._signed_principal(method, path_qs, headers, body, client_ip)
        except Unauthenticated:
            await self.auth_failures.failed(client_ip)
            raise

    async def _signed_principal(
        self, method: str, path_qs: str, headers: dict[str, str] | object, body: bytes, client_ip: str | None
    ) -> tuple[Principal, str]:
        get = headers.get  # type: ignore[attr-defined]
        key_id, stamp, signature = get(API_KEY_HEADER), get(TIMESTAMP_HEADER), get(SIGNATURE_HEADER)
        nonce = get(NONCE_HEADER)
        if not key_id or not stamp or not signature or not nonce:
            raise Unauthenticated(
                f"credentials required: {API_KEY_HEADER}, {TIMESTAMP_HEADER}, {NONCE_HEADER}"
                f" and {SIGNATURE_HEADER}"
            )
        check_timestamp(
            stamp, max_age=self.settings.signature_max_age, max_skew=self.settings.signature_max_skew
        )
        check_nonce(nonce)
        key = await self.api_keys.lookup(key_id)
        if key is None:
            raise Unauthenticated("unknown, revoked or expired API key")
        check_signature(key.secret, signature, method, path_qs, stamp, nonce, body)
        # Replays are told apart by key and nonce: a nonce is good for one request per window.
        return key.principal_at(client_ip), f"{key_id}:{nonce}"

    def authenticate_internal(self, token: str | None) -> Principal:
        if not token or not hmac.compare_digest(token.encode(), self._internal_token):
            raise Unauthenticated("internal route: X-Internal-Token required")
        return INTERNAL

    # -- admission and authorization --------------------------------------------------------------

    def admission(
        self, principal: Principal, endpoint: str, *, replay_id: str | None = None
    ) -> asyncio.Future[Verdict]:
        """IP allow-list, replay and rate limit for the caller's merchant, in one Redis round trip:
        the verdict, for `gate.enforce()` once it is due."""
        ttl = self.replay_ttl if replay_id else 0
        return self.gate.admission(principal.rate_key, endpoint, principal.client_ip, replay_id, ttl)

    async def admit(self, principal: Principal, endpoint: str, *, replay_id: str | None = None) -> None:
        """`admission()`, awaited and enforced: raise unless the request may proceed."""
        self.gate.enforce(await self.admission(principal, endpoint, replay_id=replay_id))

    async def guard(
        self, principal: Principal | None, merchant_id: str, permission: str, flag: str | None = None
    ) -> Principal:
        """Authorize `principal` (read by the transport at its edge) on `merchant_id`, check `flag`."""
        if principal is None and not self.enabled:
            principal = DISABLED
        authorize(principal, merchant_id, permission)
        assert principal is not None
        target = normalise_merchant(merchant_id)
        assert target is not None  # authorize refused anything else for a non-cross-merchant caller
        if principal.cross_merchant and principal.merchant_id != target:
            if principal.auth_method not in TRUSTED_METHODS:
                # Acting on another merchant: that merchant's allow-list applies too.
                await self.gate.ip_allowed(target, principal.client_ip)
        installed = await self.merchants.installed(target)
        log_context.bind(merchant_id=target, shop_domain=self.merchants.shop_domain(target))  # D149
        if not installed:
            raise NotFound("merchant", target)
        if flag is not None and not await self.flags.enabled(target, flag):
            raise FeatureDisabled(flag)
        return principal

    def close(self) -> None:
        self.broadcast.stop()
        for client in (self.auth, self.roles):
            if client is not None:
                client.close()
        self.flags.close()
