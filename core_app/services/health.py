"""`/health`, `/live` and `/ready`: what the worker answers about itself (shared by HTTP; the gRPC health
service is grpclib's)."""

from __future__ import annotations

from core_app.services.ports import HealthProbe, Readiness


class HealthService:
    def __init__(self, probe: HealthProbe, readiness: Readiness) -> None:
        self.probe = probe
        self.readiness = readiness

    async def health(self) -> tuple[bool, dict[str, object]]:
        """(up, body): `{"status": "UP"}`, or every check with the ones that are down."""
        report = await self.probe.check()
        if report.up:
            return True, {"status": "UP"}
        return False, report.to_dict()

    async def live(self) -> tuple[bool, dict[str, object]]:
        """(live, body) for the liveness probe: only what a restart of this worker can cure, never a
        shared dependency (a PostgreSQL outage must not restart every worker: D17)."""
        report = self.probe.check_liveness()
        if report.up:
            return True, {"status": "UP"}
        return False, report.to_dict()

    async def ready(self) -> tuple[bool, dict[str, object]]:
        """(ready, body): `{"ready": true}`, or every readiness check."""
        checks = await self.readiness.is_ready()
        if all(checks.values()):
            return True, {"ready": True}
        return False, {"ready": False, "checks": checks}
