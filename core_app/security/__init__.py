"""Security layer: authentication (JWT, signed API keys, Auth service), RBAC and tenant isolation,
rate limits, IP allow-lists, feature flags, and per-customer data keys (crypto-shredding).

What use cases and transports call:
- `await guard(merchant_id, permission, flag=...)`: first thing in every use case, after its ids
  are validated. Permissions: VIEW (reads), EDIT (customer writes, imports), FULL (settings updates).
- `authorize(principal, merchant_id, permission)`: the pure check `guard` uses.
- `use_principal(principal)`: run a block as a caller (transports; `system_principal(name)` for
  work the service starts itself).
- `authenticate_connection_init(layer, payload, headers, peer)`: WebSocket connection-init.
- `flag_enabled(merchant_id, flag)`, `encrypt_email`, `decrypt_email`, `shred`.
"""

from core_app.security.errors import (
    FeatureDisabled,
    Forbidden,
    RateLimited,
    SecurityError,
    SecurityUnavailable,
    Unauthenticated,
)
from core_app.security.flags import CUSTOMER_IMPORT, FLAGS, RFM_SCORE, SETTINGS_UPDATE
from core_app.security.layer import SecurityLayer
from core_app.security.principal import (
    EDIT,
    FULL,
    VIEW,
    Principal,
    authorize,
    current_principal,
    system_principal,
    use_principal,
)
from core_app.security.ws import authenticate_connection_init

__all__ = [
    "CUSTOMER_IMPORT",
    "EDIT",
    "FLAGS",
    "FULL",
    "RFM_SCORE",
    "SETTINGS_UPDATE",
    "VIEW",
    "FeatureDisabled",
    "Forbidden",
    "Principal",
    "RateLimited",
    "SecurityError",
    "SecurityLayer",
    "SecurityUnavailable",
    "Unauthenticated",
    "authenticate_connection_init",
    "authorize",
    "current_principal",
    "system_principal",
    "use_principal",
]
