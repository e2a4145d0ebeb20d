"""Reads answered by the worker that owns a key, over the internal HTTP route."""

from __future__ import annotations

from typing import Any

import aiohttp

from core_app import metrics
from core_app.runtime import Runtime


async def owner_get(runtime: Runtime, owner: str, path: str) -> dict[str, Any] | None:
    """The owner's table value, or None when it has none or cannot be reached in time (counted)."""
    return (await owner_lookup(runtime, owner, path))[1]


async def owner_lookup(runtime: Runtime, owner: str, path: str) -> tuple[str, dict[str, Any] | None]:
    """("found", value), ("absent", None) when the owner's table has no such key, or (why, None) when
    the owner could not answer: its HTTP status or the client error's name (counted)."""
    try:
        async with runtime.peers().get(f"{owner.rstrip('/')}{path}") as response:
            if response.status == 200:
                return "found", dict(await response.json())
            if response.status == 404:
                return "absent", None
            metrics.owner_read_errors.labels(str(response.status)).inc()
            return f"owner answered {response.status}", None
    except (aiohttp.ClientError, TimeoutError) as exc:
        metrics.owner_read_errors.labels(type(exc).__name__).inc()
        return f"owner unreachable ({type(exc).__name__})", None
