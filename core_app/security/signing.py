"""REST request signatures: HMAC-SHA256 over method, path with query, timestamp, nonce and body hash.

    canonical = METHOD "\n" PATH?QUERY "\n" TIMESTAMP "\n" NONCE "\n" hex(sha256(body))
    X-Api-Key: <key id>        X-Timestamp: <unix seconds>      X-Nonce: <16-64 of [A-Za-z0-9_-]>
    X-Signature: hex(hmac_sha256(secret, canonical))

The path and query are the raw bytes of the request line (percent-encoding as sent). The secret
never travels; a signature older than SIGNATURE_MAX_AGE or ahead by more than SIGNATURE_MAX_SKEW is
refused, and a signature seen before is refused as a replay (core_app.security.gate). The nonce
makes two identical requests in the same second two different signatures.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time

from core_app.security.errors import Unauthenticated

API_KEY_HEADER = "X-Api-Key"
TIMESTAMP_HEADER = "X-Timestamp"
SIGNATURE_HEADER = "X-Signature"
NONCE_HEADER = "X-Nonce"
_NONCE = re.compile(r"[A-Za-z0-9_-]{16,64}")
_EMPTY_BODY_DIGEST = hashlib.sha256(b"").hexdigest()  # GETs: no hashing per request


def canonical_request(method: str, path_qs: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    digest = hashlib.sha256(body).hexdigest() if body else _EMPTY_BODY_DIGEST
    return f"{method.upper()}\n{path_qs}\n{timestamp}\n{nonce}\n{digest}".encode()


def sign(secret: str, method: str, path_qs: str, timestamp: str, nonce: str, body: bytes) -> str:
    message = canonical_request(method, path_qs, timestamp, nonce, body)
    return hmac.digest(secret.encode(), message, "sha256").hex()  # one-shot HMAC in C


def signed_headers(
    key_id: str,
    secret: str,
    method: str,
    path_qs: str,
    body: bytes = b"",
    timestamp: int | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """What a client sends (used by the tests and documented in the README)."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    nonce = nonce or secrets.token_urlsafe(16)
    return {
        API_KEY_HEADER: key_id,
        TIMESTAMP_HEADER: stamp,
        NONCE_HEADER: nonce,
        SIGNATURE_HEADER: sign(secret, method, path_qs, stamp, nonce, body),
    }


def check_nonce(value: str) -> str:
    if _NONCE.fullmatch(value) is None:
        raise Unauthenticated(f"{NONCE_HEADER} must be 16-64 characters of [A-Za-z0-9_-]")
    return value


def check_timestamp(value: str, *, max_age: int, max_skew: int, now: float | None = None) -> int:
    if not value.isdigit() or len(value) > 12:
        raise Unauthenticated(f"{TIMESTAMP_HEADER} must be unix seconds")
    stamp = int(value)
    now = time.time() if now is None else now
    if now - stamp > max_age:
        raise Unauthenticated(f"signature is older than {max_age} s")
    if stamp - now > max_skew:
        raise Unauthenticated("signature timestamp is in the future")
    return stamp


def check_signature(
    secret: str, given: str, method: str, path_qs: str, timestamp: str, nonce: str, body: bytes
) -> None:
    expected = sign(secret, method, path_qs, timestamp, nonce, body)
    if not hmac.compare_digest(expected.encode(), given.strip().lower().encode()):
        raise Unauthenticated("signature does not verify")
