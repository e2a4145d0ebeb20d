"""The `customer_import_enabled` feature flag, per merchant: the security layer's flag source
(LaunchDarkly when LAUNCHDARKLY_SDK_KEY is set, else the Redis hash an operator sets with
`core flags set`). The import agent checks it again before it runs a job.
"""

from __future__ import annotations

from core_app.security.flags import CUSTOMER_IMPORT
from core_app.security.layer import flag_enabled


async def customer_import_enabled(merchant_id: str) -> bool:
    return await flag_enabled(merchant_id, CUSTOMER_IMPORT)
