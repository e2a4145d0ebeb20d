"""JWT validation: HS256 (dev), RS256 and ES256 from a JWKS file; expiry, issuer, audience, claims."""

import base64
import hashlib
import hmac
import json
import time
import uuid
from datetime import datetime, tzinfo
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from core_app.security.errors import Unauthenticated
from core_app.security.principal import EDIT, FULL, VIEW
from core_app.security.tokens import JwtVerifier
from tests.support.auth import AUDIENCE, ISSUER, mint_jwt

SECRET = "unit-test-hs256-secret-0000000000000000"
MERCHANT = str(uuid.uuid4())


def verifier(**kwargs) -> JwtVerifier:
    return JwtVerifier(issuer=ISSUER, audience=AUDIENCE, **({"hs256_secret": SECRET} | kwargs))


async def test_valid_hs256_token_gives_the_principal() -> None:
    token = mint_jwt(MERCHANT, [EDIT], secret=SECRET, subject="ana")
    principal = await verifier().verify(token)
    assert (principal.subject, principal.merchant_id, principal.auth_method) == ("ana", MERCHANT, "jwt")
    assert principal.permissions == {EDIT} and not principal.cross_merchant


async def test_scope_string_is_read_when_permissions_is_absent() -> None:
    now = int(time.time())
    claims = {"sub": "s", "iss": ISSUER, "aud": AUDIENCE, "exp": now + 60, "merchant_id": MERCHANT}
    token = jwt.encode(claims | {"scope": f"{VIEW} openid"}, SECRET, algorithm="HS256")
    assert (await verifier().verify(token)).permissions == {VIEW}


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (mint_jwt(MERCHANT, secret=SECRET, expires_in=-60), "token expired"),
        (mint_jwt(MERCHANT, secret=SECRET, issuer="someone-else"), "wrong issuer"),
        (mint_jwt(MERCHANT, secret=SECRET, audience="points"), "wrong audience"),
        (mint_jwt(MERCHANT, secret="another-secret-000000000000000000000"), "signature does not verify"),
        (mint_jwt(None, secret=SECRET), "no valid merchant_id"),
        (mint_jwt("not-a-uuid", secret=SECRET), "no valid merchant_id"),
        ("not.a.jwt", "malformed token"),
        ("", "malformed token"),
    ],
)
async def test_bad_tokens_are_refused_with_a_clear_reason(token: str, reason: str) -> None:
    with pytest.raises(Unauthenticated, match=reason):
        await verifier().verify(token)


async def test_missing_exp_is_refused() -> None:
    token = jwt.encode(
        {"sub": "s", "iss": ISSUER, "aud": AUDIENCE, "merchant_id": MERCHANT}, SECRET, algorithm="HS256"
    )
    with pytest.raises(Unauthenticated, match="lacks the exp claim"):
        await verifier().verify(token)


async def test_alg_none_is_refused() -> None:
    claims = {
        "sub": "s",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "exp": int(time.time()) + 60,
        "merchant_id": MERCHANT,
    }
    token = jwt.encode(claims, None, algorithm="none")
    with pytest.raises(Unauthenticated, match="not accepted"):
        await verifier().verify(token)


async def test_hs256_is_refused_when_no_secret_is_configured() -> None:
    with pytest.raises(Unauthenticated, match="HS256 are not accepted"):
        await verifier(hs256_secret=None).verify(mint_jwt(MERCHANT, secret=SECRET))


async def test_cross_merchant_needs_literal_true() -> None:
    principal = await verifier().verify(mint_jwt(None, [VIEW], secret=SECRET, cross_merchant=True))
    assert principal.cross_merchant and principal.merchant_id is None
    now = int(time.time())
    claims = {"sub": "s", "iss": ISSUER, "aud": AUDIENCE, "exp": now + 60, "merchant_id": MERCHANT}
    fake = jwt.encode(claims | {"cross_merchant": "yes"}, SECRET, algorithm="HS256")
    assert not (await verifier().verify(fake)).cross_merchant


def jwks_file(tmp_path: Path) -> tuple[Path, object, object]:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    rsa_jwk = json.loads(RSAAlgorithm.to_jwk(rsa_key.public_key())) | {"kid": "rsa-1", "alg": "RS256"}
    ec_jwk = json.loads(ECAlgorithm.to_jwk(ec_key.public_key())) | {"kid": "ec-1", "alg": "ES256"}
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [rsa_jwk, ec_jwk]}))
    return path, rsa_key, ec_key


def signed(private_key: object, algorithm: str, kid: str, **overrides) -> str:
    now = int(time.time())
    claims = {"sub": "svc", "iss": ISSUER, "aud": AUDIENCE, "exp": now + 60, "merchant_id": MERCHANT}
    claims |= {"permissions": [FULL]} | overrides
    return jwt.encode(claims, private_key, algorithm=algorithm, headers={"kid": kid})


async def test_rs256_and_es256_from_a_jwks_file(tmp_path: Path) -> None:
    path, rsa_key, ec_key = jwks_file(tmp_path)
    check = verifier(hs256_secret=None, jwks=str(path))
    assert (await check.verify(signed(rsa_key, "RS256", "rsa-1"))).permissions == {FULL}
    assert (await check.verify(signed(ec_key, "ES256", "ec-1"))).merchant_id == MERCHANT
    with pytest.raises(Unauthenticated, match="unknown key"):
        await check.verify(signed(rsa_key, "RS256", "rsa-unknown"))
    with pytest.raises(Unauthenticated, match="expired"):
        await check.verify(signed(ec_key, "ES256", "ec-1", exp=int(time.time()) - 60))


async def test_a_key_from_the_jwks_cannot_sign_for_another_kid(tmp_path: Path) -> None:
    path, rsa_key, _ec_key = jwks_file(tmp_path)
    with pytest.raises(Unauthenticated):
        await verifier(hs256_secret=None, jwks=str(path)).verify(signed(rsa_key, "RS256", "ec-1"))


async def test_hs256_signed_with_the_public_key_is_refused(tmp_path: Path) -> None:
    """Algorithm confusion: an HS256 token keyed with the RSA public key must not pass."""
    path, _rsa_key, _ec_key = jwks_file(tmp_path)
    public_jwk = path.read_text().split('"keys": [')[1].split("}, {")[0] + "}"

    def b64(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    claims = {
        "sub": "x",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "exp": int(time.time()) + 60,
        "merchant_id": MERCHANT,
    }
    signing_input = b64(b'{"alg":"HS256","kid":"rsa-1"}') + b"." + b64(json.dumps(claims).encode())
    mac = hmac.new(public_jwk.encode(), signing_input, hashlib.sha256).digest()
    forged = (signing_input + b"." + b64(mac)).decode()
    with pytest.raises(Unauthenticated):
        await verifier(jwks=str(path)).verify(forged)


async def test_a_cached_token_still_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    # One clock for the verifier's cache and PyJWT's expiry check, moved past `exp` without waiting.
    clock = [time.time()]

    class ClockDatetime(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> datetime:
            return cls.fromtimestamp(clock[0], tz)

    monkeypatch.setattr(time, "time", lambda: clock[0])
    monkeypatch.setattr(jwt.api_jwt, "datetime", ClockDatetime)
    check = verifier(leeway=0)
    token = mint_jwt(MERCHANT, [VIEW], secret=SECRET, expires_in=60)
    assert (await check.verify(token)).merchant_id == MERCHANT
    assert (await check.verify(token)).merchant_id == MERCHANT  # from the cache
    clock[0] += 61
    with pytest.raises(Unauthenticated, match="expired"):
        await check.verify(token)
