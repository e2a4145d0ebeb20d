"""The `customer_import_enabled` feature flag, per merchant, behind one function.

Until the security issue wires the real flag provider (LaunchDarkly), the flag is a Redis key,
`feature:customer_import_enabled:{merchant_id}` (`1`/`true`/`on` or `0`/`false`/`off`), and a
merchant without the key gets IMPORT_ENABLED_DEFAULT. Swap `customer_import_enabled` to change the
source; the import use case and the import agent only call this.
"""

from __future__ import annotations

import logging

from core_app.runtime import get_runtime

log = logging.getLogger(__name__)

FLAG = "customer_import_enabled"
_ON = frozenset({"1", "true", "on", "yes"})
_OFF = frozenset({"0", "false", "off", "no"})


def flag_key(merchant_id: str) -> str:
    return f"feature:{FLAG}:{merchant_id}"


async def customer_import_enabled(merchant_id: str) -> bool:
    runtime = get_runtime()
    default = runtime.settings.import_enabled_default
    try:
        raw = await runtime.redis.get(runtime.redis_key(flag_key(merchant_id)))
    except Exception as exc:  # a flag-store outage falls back to the configured default
        log.warning("feature flag read failed; using the default", extra={"flag": FLAG, "error": str(exc)})
        return default
    if raw is None:
        return default
    value = raw.decode().strip().lower() if isinstance(raw, bytes) else str(raw).strip().lower()
    if value in _ON:
        return True
    if value in _OFF:
        return False
    return default
