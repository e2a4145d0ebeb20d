"""Email normalisation and the keyed hash used for per-merchant uniqueness without plaintext."""

from __future__ import annotations

import hashlib
import hmac
import re

from core_app.domain.errors import ValidationFailed

# Deliberately simple: one @, no spaces, a dot in the domain. Deliverability is not our concern.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MAX_EMAIL_LENGTH = 254


def normalize_email(raw: str, field: str = "email") -> str:
    email = raw.strip().lower()
    if len(email) > MAX_EMAIL_LENGTH:
        raise ValidationFailed(field, f"longer than {MAX_EMAIL_LENGTH} characters")
    if not _EMAIL.match(email) or not email.isprintable() or not _utf8(email):
        raise ValidationFailed(field, "not a valid email address")
    return email


def email_hash(email: str, key: str) -> str:
    """HMAC-SHA256 of the normalised email, hex. Same value as the `trg_encrypt_email` trigger."""
    return hmac.new(key.encode(), normalize_email(email).encode(), hashlib.sha256).hexdigest()


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
