"""The `customers.email` ciphertext made in the worker, byte-compatible with `trg_encrypt_email`.

The trigger (migrations/0003_email_s2k.sql) stores `'aes256:' || base64(pgp_sym_encrypt(email, key,
'cipher-algo=aes256, s2k-mode=1'))` and `email_hash = hex(hmac_sha256(email, hash_key))` (the
worker's is core_app.domain.email.email_hash), and passes a value that is already `aes256:<base64>`
through with the `email_hash` it was given. An import
encrypts its batch here (docs/decisions.md D253), so PostgreSQL's per-row pgcrypto work is skipped;
`core_decrypt_email` (pgp_sym_decrypt) opens these messages like the trigger's. The trigger stays
the safety net for every other writer.

The message is OpenPGP (RFC 4880): a v4 symmetric-key session-key packet (tag 3) whose salted S2K
(SHA-1, mode 1) gives the AES-256 key itself, then a symmetrically encrypted integrity-protected
data packet (tag 18, version 1): AES-256 in CFB mode with a zero IV over a random block, its last two
bytes repeated, a literal data packet (tag 11, text) and the modification-detection code (tag 19,
SHA-1 of everything before it).
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct

from cryptography.hazmat.decrepit.ciphers.modes import CFB  # OpenPGP's mode; deprecated elsewhere
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

PREFIX = "aes256:"
_AES256, _SHA1, _S2K_SALTED = 9, 2, 1
_BLOCK, _SALT, _KEY = 16, 8, 32
_ZERO_IV = bytes(_BLOCK)
_MDC_HEADER = b"\xd3\x14"  # tag 19, new format, 20 bytes


def _packet(tag: int, body: bytes) -> bytes:
    """A new-format packet (one- or two-octet length: an email's packets stay under 8,384 bytes)."""
    size = len(body)
    if size < 192:
        length = bytes([size])
    else:
        size -= 192
        length = bytes([(size >> 8) + 192, size & 0xFF])
    return bytes([0xC0 | tag]) + length + body


def _s2k_key(passphrase: bytes, salt: bytes) -> bytes:
    """Salted S2K with SHA-1, stretched to 32 bytes by hashing again behind one zero byte."""
    first = hashlib.sha1(salt + passphrase).digest()  # OpenPGP's S2K: SHA-1 by definition
    second = hashlib.sha1(b"\x00" + salt + passphrase).digest()
    return (first + second)[:_KEY]


def encrypt_email(email: str, key: str) -> str:
    """`aes256:<base64>` of the already normalised `email`, as the trigger would store it."""
    passphrase = key.encode()
    salt = os.urandom(_SALT)
    prefix = os.urandom(_BLOCK)
    session = _packet(3, bytes([4, _AES256, _S2K_SALTED, _SHA1]) + salt)
    literal = _packet(11, b"t\x00" + struct.pack(">I", 0) + email.encode())
    plain = prefix + prefix[-2:] + literal + _MDC_HEADER
    plain += hashlib.sha1(plain).digest()  # the MDC is SHA-1 by definition
    encryptor = Cipher(algorithms.AES256(_s2k_key(passphrase, salt)), CFB(_ZERO_IV)).encryptor()
    sealed = encryptor.update(plain) + encryptor.finalize()
    message = session + _packet(18, b"\x01" + sealed)
    return PREFIX + base64.b64encode(message).decode()
