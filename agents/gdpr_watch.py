"""The deadline gauges of GDPR requests, refreshed from PostgreSQL on every worker (D160):
`core_gdpr_requests_open`, `core_gdpr_requests_overdue` and
`core_gdpr_request_oldest_open_age_seconds` (the CoreGdprDeadlineNear alert's input)."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from mode import Service

from core_app.services.gdpr_requests import refresh_gauges

if TYPE_CHECKING:
    from core_app.components import Components

log = logging.getLogger(__name__)


class GdprRequestWatch(Service):
    REFRESH_EVERY = 15.0

    def __init__(self, components: Components, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.components = components

    @Service.task
    async def _refresh_loop(self) -> None:
        while not self.should_stop:
            try:
                await refresh_gauges(self.components.gdpr.requests)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the gauges keep their last values; the next pass tries again
                log.warning("GDPR request gauges not refreshed", extra={"error": repr(exc)})
            await self.sleep(self.REFRESH_EVERY)
