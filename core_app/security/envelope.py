"""Envelope encryption of one secret per owner (a merchant's Shopify token): a fresh data key seals the
secret, KEY_ENCRYPTION_KEY wraps the data key, both bound to the owner. Discarding either destroys it;
rotating the KEK rewraps only the 60-byte data keys."""

from __future__ import annotations

from core_app.security.crypto import new_key, open_sealed, seal


def seal_secret(kek: bytes, purpose: str, owner: str, secret: str) -> tuple[bytes, bytes]:
    """(wrapped data key, sealed secret)."""
    data_key = new_key()
    wrapped = seal(kek, data_key, f"{purpose}-key:{owner}".encode())
    return wrapped, seal(data_key, secret.encode(), f"{purpose}:{owner}".encode())


def open_secret(kek: bytes, purpose: str, owner: str, wrapped: bytes, sealed: bytes) -> str:
    """The secret; DecryptionFailed for a wrong KEK, another owner's row or a tampered value."""
    data_key = open_sealed(kek, bytes(wrapped), f"{purpose}-key:{owner}".encode())
    return open_sealed(data_key, bytes(sealed), f"{purpose}:{owner}".encode()).decode()
