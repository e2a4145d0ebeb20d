"""Both ends of a command's reply: the owner's (agents/replies.py) and the caller's
(core_app/domain/command_reply.raise_for_error), and the Redis read cache's degradation."""

from __future__ import annotations

from typing import Any

import pytest

from agents.replies import run_and_reply
from core_app.customer_adapters import RedisReadCache
from core_app.domain.command_reply import raise_for_error
from core_app.domain.errors import Conflict, NotFound, ValidationFailed
from core_app.settings import Settings
from tests.unit.fakes import FakeReplies


async def answer(work: Any) -> dict[str, Any]:
    replies = FakeReplies()
    await run_and_reply(replies, {"kind": "x", "reply_to": "reply:1"}, work)
    [(channel, reply)] = replies.sent
    assert channel == "reply:1"
    return reply


async def ok() -> dict[str, Any]:
    return {"id": "c"}


@pytest.mark.parametrize(
    ("error", "raised"),
    [
        (ValidationFailed("email", "is required"), ValidationFailed),
        (NotFound("customer", "c"), NotFound),
        (Conflict("email", "is taken"), Conflict),
    ],
)
async def test_a_domain_error_travels_back_as_itself(error: Exception, raised: type[Exception]) -> None:
    async def failing() -> dict[str, Any]:
        raise error

    reply = await answer(failing())
    with pytest.raises(raised):
        raise_for_error(reply)


async def test_a_result_travels_back_and_an_internal_error_is_opaque() -> None:
    assert raise_for_error(await answer(ok())) == {"id": "c"}

    async def broken() -> dict[str, Any]:
        raise ZeroDivisionError

    with pytest.raises(RuntimeError, match="internal error: ZeroDivisionError"):
        raise_for_error(await answer(broken()))


class DownRedis:
    async def get(self, key: str) -> bytes:
        raise ConnectionError("down")

    async def set(self, key: str, value: bytes, ex: int) -> None:
        raise ConnectionError("down")


class MemoryRedis:
    def __init__(self) -> None:
        self.values: dict[str, bytes] = {}

    async def get(self, key: str) -> bytes | None:
        return self.values.get(key)

    async def set(self, key: str, value: bytes, ex: int) -> None:
        self.values[key] = value


class FakeRuntime:
    def __init__(self, redis: Any) -> None:
        self.redis = redis
        self.settings = Settings()

    def redis_key(self, key: str) -> str:
        return f"p:{key}"


async def test_the_read_cache_keeps_views_and_an_outage_is_a_miss() -> None:
    memory = MemoryRedis()
    cache = RedisReadCache(FakeRuntime(memory))  # type: ignore[arg-type]
    await cache.put("m", "c", {"id": "c", "metadata": {"big": 2**70}})  # beyond 64 bits: plain json
    assert list(memory.values) == ["p:customer:m:c"]
    assert await cache.get("m", "c") == {"id": "c", "metadata": {"big": 2**70}}
    down = RedisReadCache(FakeRuntime(DownRedis()))  # type: ignore[arg-type]
    await down.put("m", "c", {"id": "c"})
    assert await down.get("m", "c") is None
