"""AES-256-GCM helpers: wrapping secrets under the key-encryption key, and field encryption.

Every ciphertext is `version (1 byte) | nonce (12) | ciphertext+tag`, and is bound to what it belongs
to through associated data (`aad`), so a value copied onto another row does not decrypt.
"""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

VERSION = b"\x01"
NONCE_BYTES = 12


class DecryptionFailed(Exception):
    """Wrong key, wrong associated data, or a tampered ciphertext."""


def new_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def kek_from_setting(value: str) -> bytes:
    key = base64.b64decode(value, validate=True)
    if len(key) != 32:
        raise ValueError("the key-encryption key must be 32 bytes")
    return key


def seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return VERSION + nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def open_sealed(key: bytes, sealed: bytes, aad: bytes) -> bytes:
    if len(sealed) < 1 + NONCE_BYTES + 16 or sealed[:1] != VERSION:
        raise DecryptionFailed("not a sealed value")
    nonce = sealed[1 : 1 + NONCE_BYTES]
    try:
        return AESGCM(key).decrypt(nonce, sealed[1 + NONCE_BYTES :], aad)
    except InvalidTag:
        raise DecryptionFailed("wrong key or tampered ciphertext") from None
