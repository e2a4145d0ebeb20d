"""`Components`: every collaborator of one worker, built once by the composition root
(core_app/bootstrap.py) and handed to agents, views, gRPC handlers and the CLI explicitly."""

from __future__ import annotations

from core_app.runtime import Runtime, open_runtime
from core_app.security.layer import SecurityLayer
from core_app.services.ports import EventPublisher
from core_app.settings import Settings
from core_app.stream_topics import TopicPublisher


class NotOpen(RuntimeError):
    def __init__(self, what: str) -> None:
        super().__init__(f"the {what} is not open yet (worker still starting)")


class Components:
    """Everything a worker's use cases depend on. Built unopened (agents and routes are wired before
    the event loop runs); `open()` connects PostgreSQL, Redis, the codec and the security layer at
    worker start, `close()` releases them at shutdown."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.publisher: EventPublisher = TopicPublisher()
        self._runtime: Runtime | None = None
        self._security: SecurityLayer | None = None

    @classmethod
    def of(cls, runtime: Runtime, security: SecurityLayer | None = None) -> Components:
        """Components around parts opened elsewhere (in-process tests of one transport)."""
        components = cls(runtime.settings)
        components._runtime = runtime
        components._security = security or SecurityLayer(runtime.settings, runtime.redis, runtime.pool)
        return components

    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            raise NotOpen("runtime")
        return self._runtime

    @property
    def security(self) -> SecurityLayer:
        if self._security is None:
            raise NotOpen("security layer")
        return self._security

    @property
    def is_open(self) -> bool:
        return self._runtime is not None

    async def open(self) -> None:
        runtime = await open_runtime(self.settings)
        self._runtime = runtime
        self._security = SecurityLayer(self.settings, runtime.redis, runtime.pool)

    async def close(self) -> None:
        if self._security is not None:
            self._security.close()
            self._security = None
        if self._runtime is not None:
            await self._runtime.close()
            self._runtime = None
