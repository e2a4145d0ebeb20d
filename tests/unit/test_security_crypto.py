"""AES-256-GCM sealing and per-customer field encryption (the pure part of crypto-shredding)."""

import pytest

from core_app.security.crypto import DecryptionFailed, new_key, open_sealed, seal
from core_app.security.shredding import decrypt_field, encrypt_field, is_ciphertext


def test_seal_round_trip_and_binding() -> None:
    key = new_key()
    sealed = seal(key, b"secret", b"api_key:lnk_1")
    assert open_sealed(key, sealed, b"api_key:lnk_1") == b"secret"
    assert seal(key, b"secret", b"a") != seal(key, b"secret", b"a")  # fresh nonce each time
    with pytest.raises(DecryptionFailed):
        open_sealed(key, sealed, b"api_key:lnk_2")  # moved to another row
    with pytest.raises(DecryptionFailed):
        open_sealed(new_key(), sealed, b"api_key:lnk_1")
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(DecryptionFailed):
        open_sealed(key, tampered, b"api_key:lnk_1")
    with pytest.raises(DecryptionFailed):
        open_sealed(key, b"short", b"")


def test_email_ciphertext_holds_no_plaintext_and_is_bound_to_the_customer() -> None:
    key = new_key()
    token = encrypt_field(key, "m1", "c1", "email", "ana@example.com")
    assert is_ciphertext(token) and "ana" not in token and "example" not in token
    assert decrypt_field(key, "m1", "c1", "email", token) == "ana@example.com"
    with pytest.raises(DecryptionFailed):
        decrypt_field(key, "m1", "c2", "email", token)
    with pytest.raises(DecryptionFailed):
        decrypt_field(new_key(), "m1", "c1", "email", token)
    with pytest.raises(DecryptionFailed):
        decrypt_field(key, "m1", "c1", "email", "aes256:abc")
