"""Which tier answered the reads of the current request, for the per-request signal.

REST responses carry it as the `X-Core-Source` header and gRPC calls as the `x-core-source`
trailing metadata, next to the `core_*_reads_total{source}` metrics. Each request gets its own
holder in a ContextVar, installed by the transport when the request arrives (the HTTP
pipeline, the grpclib RecvRequest listener). A read outside such a holder records nothing, and
no holder outlives or is shared between requests, so one tenant's request never reports another's.
"""

from __future__ import annotations

from contextvars import ContextVar, Token

HEADER = "X-Core-Source"
GRPC_METADATA_KEY = "x-core-source"

_sources: ContextVar[list[str] | None] = ContextVar("core_read_sources", default=None)


def begin() -> Token[list[str] | None]:
    """Give the current request (task) a fresh, empty holder."""
    return _sources.set([])


def end(token: Token[list[str] | None]) -> None:
    _sources.reset(token)


def record(source: str) -> None:
    sources = _sources.get()
    if sources is not None:
        sources.append(source)


def summary() -> str | None:
    """The sources the current request read from, in order and without repeats ("table", "redis,postgres")."""
    sources = _sources.get()
    if not sources:
        return None
    return sources[0] if len(sources) == 1 else ",".join(dict.fromkeys(sources))
