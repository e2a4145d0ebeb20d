"""Bearer tokens (JWT) validated locally with PyJWT: HS256 with the configured secret (dev), RS256 and
ES256 with keys from a JWKS file or URL (production). Expiry, issuer and audience are required.

Claims Core reads: `sub`, `merchant_id`, `permissions` (a list, or a space-separated `scope`) and
`cross_merchant` (true only when explicitly granted).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import jwt
from cachetools import TLRUCache
from jwt import PyJWK, PyJWKClient, PyJWKSet

from core_app.security.errors import SecurityUnavailable, Unauthenticated
from core_app.security.principal import Principal, normalise_merchant, normalise_permissions

ASYMMETRIC = ("RS256", "ES256")
VERIFIED_CACHE_SIZE = 10_000
JWKS_REFRESH = 300.0  # seconds a fetched JWKS is trusted before it is fetched again


class JwtVerifier:
    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        hs256_secret: str | None = None,
        jwks: str | None = None,
        leeway: float = 10.0,
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway
        self._hs256 = hs256_secret or None
        self._jwks = jwks or None
        self._client = (
            PyJWKClient(jwks, cache_jwk_set=True, lifespan=int(JWKS_REFRESH))
            if jwks and jwks.startswith(("http://", "https://"))
            else None
        )
        self._keys: dict[str | None, tuple[PyJWK, float]] = {}
        # Verified tokens, by their exact text, until they expire: a client reusing its token costs a
        # dict look-up instead of a signature check (about 50-80 us of CPU per request).
        self._verified: TLRUCache[str, tuple[Principal, float]] = TLRUCache(
            maxsize=VERIFIED_CACHE_SIZE, ttu=_until_expiry, timer=time.time
        )

    async def claims(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise Unauthenticated("malformed token") from None
        algorithm = header.get("alg")
        if algorithm == "HS256" and self._hs256:
            key: Any = self._hs256
        elif algorithm in ASYMMETRIC and self._jwks:
            jwk = await self._signing_key(header.get("kid"))
            if jwk.algorithm_name != algorithm:
                raise Unauthenticated("token algorithm does not match its key")
            key = jwk.key
        else:
            raise Unauthenticated(f"tokens signed with {algorithm} are not accepted")
        try:
            return jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("token expired") from None
        except jwt.InvalidAudienceError:
            raise Unauthenticated("token has the wrong audience") from None
        except jwt.InvalidIssuerError:
            raise Unauthenticated("token has the wrong issuer") from None
        except jwt.InvalidSignatureError:
            raise Unauthenticated("token signature does not verify") from None
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthenticated(f"token lacks the {exc.claim} claim") from None
        except jwt.ImmatureSignatureError:
            raise Unauthenticated("token is not valid yet") from None
        except jwt.InvalidTokenError as exc:
            raise Unauthenticated(f"invalid token: {exc}") from None
        except (jwt.PyJWTError, TypeError, ValueError):
            raise Unauthenticated("token does not verify with its key") from None

    async def verify(self, token: str) -> Principal:
        cached = self._verified.get(token)
        if cached is not None and cached[1] > time.time():
            return cached[0]
        claims = await self.claims(token)
        principal = principal_from_claims(claims, "jwt")
        self._verified[token] = (principal, float(claims["exp"]))
        return principal

    async def _signing_key(self, kid: str | None) -> PyJWK:
        cached = self._keys.get(kid)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        try:
            found = await asyncio.to_thread(self._fetch_key, kid)
        except jwt.PyJWKClientConnectionError:
            raise SecurityUnavailable("the JWKS could not be fetched") from None
        except (jwt.PyJWKClientError, jwt.PyJWKSetError, KeyError, OSError, ValueError):
            raise Unauthenticated("token signed with an unknown key") from None
        self._keys[kid] = (found, time.monotonic() + JWKS_REFRESH)
        return found

    def _fetch_key(self, kid: str | None) -> PyJWK:
        if self._client is not None:
            if kid is None:
                keys = self._client.get_signing_keys()
                if len(keys) != 1:
                    raise KeyError("no kid and more than one key")
                return keys[0]
            return self._client.get_signing_key(kid)
        assert self._jwks is not None
        keys = PyJWKSet.from_json(Path(self._jwks.removeprefix("file://")).read_text()).keys
        matching = [k for k in keys if kid is None or k.key_id == kid]
        if len(matching) != 1:
            raise KeyError(kid)
        return matching[0]


def _until_expiry(_token: str, value: tuple[Principal, float], _now: float) -> float:
    return value[1]


def principal_from_claims(claims: dict[str, Any], auth_method: str) -> Principal:
    cross = claims.get("cross_merchant") is True
    merchant = normalise_merchant(claims["merchant_id"]) if claims.get("merchant_id") else None
    if merchant is None and not cross:
        raise Unauthenticated("token names no valid merchant_id")
    raw = claims.get("permissions")
    if raw is None:
        raw = str(claims.get("scope", "")).split()
    if not isinstance(raw, list):
        raise Unauthenticated("token permissions must be a list")
    return Principal(
        subject=str(claims["sub"]),
        merchant_id=merchant,
        permissions=normalise_permissions(str(p) for p in raw),
        auth_method=auth_method,
        cross_merchant=cross,
    )
