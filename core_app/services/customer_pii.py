"""The decrypted email of one customer, for callers with `customers:read_pii` (audited).

PostgreSQL is the email's system of record (pgcrypto, D57); an erased customer's data key is a
tombstone from the moment of erasure, before the sink writes 'redacted', and either makes it
unreadable here.
"""

from __future__ import annotations

from typing import Any

from core_app.db import fetch_one
from core_app.security.pii import PiiRead
from core_app.security.principal import Principal
from core_app.services.customer_list import ListDeps

_EMAIL = """
SELECT CASE WHEN k.shredded_at IS NULL THEN core_decrypt_email(c.email) END AS email,
       (c.redacted_at IS NOT NULL OR k.shredded_at IS NOT NULL) AS redacted
  FROM customers c
  LEFT JOIN customer_data_keys k ON k.merchant_id = c.merchant_id AND k.customer_id = c.id
 WHERE c.merchant_id = %s AND c.id = %s
"""


async def attach_email(deps: ListDeps, principal: Principal, view: dict[str, Any], transport: str) -> None:
    """Set `email` (None once erased, then `redacted` is true) and audit the read before it is answered."""
    row = await fetch_one(deps.pool, _EMAIL, (view["merchant_id"], view["id"]))
    redacted = bool(view.get("redacted")) or bool(row and row["redacted"])
    email = None if redacted or row is None else row["email"]
    view["email"] = email
    view["redacted"] = redacted
    if email is not None:
        await deps.audit.record([PiiRead(view["merchant_id"], view["id"], principal.subject, transport)])
