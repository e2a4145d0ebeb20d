"""The TablePurges port (core_app/services/gdpr_ports.py): every partition's owner drops a purged
merchant's table entries (tables/purge.py) and confirms.

One command per partition of `core.table.purges`, sent to that partition explicitly: the topic has
the tables' partition count, so Faust assigns its partition p to the worker that owns the tables'
partition p. The owners confirm on a Redis channel the caller subscribed to before sending; until
every partition has confirmed within PURGE_TIMEOUT the purge is Unavailable (retried: the commands
are idempotent, a second pass finds nothing more to drop).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter

from core_app import stream_topics as faust_topics
from core_app.domain.errors import Unavailable
from core_app.runtime import Runtime

PURGE_TIMEOUT = 60.0


class TablePurgeClient:
    def __init__(self, runtime: Runtime, partitions: int, timeout: float = PURGE_TIMEOUT) -> None:
        self.runtime = runtime
        self.partitions = partitions
        self.timeout = timeout

    async def purge(self, merchant_id: str) -> dict[str, int]:
        purge_id = str(uuid.uuid4())
        channel = self.runtime.redis_key(f"reply:purge:{purge_id}")
        pubsub = self.runtime.redis.pubsub()
        await pubsub.subscribe(channel)
        try:
            command = {"merchant_id": merchant_id, "purge_id": purge_id, "reply_to": channel}
            sent = [
                await faust_topics.table_purges.send(
                    key=merchant_id, value=json.dumps(command).encode(), partition=partition
                )
                for partition in range(self.partitions)
            ]
            await asyncio.gather(*sent)
            return await self._confirmations(pubsub)
        finally:
            await pubsub.unsubscribe(channel)
            await pubsub.aclose()

    async def _confirmations(self, pubsub: object) -> dict[str, int]:
        counts: Counter[str] = Counter()
        waiting = set(range(self.partitions))
        try:
            async with asyncio.timeout(self.timeout):
                while waiting:
                    message = await pubsub.get_message(  # type: ignore[attr-defined]
                        ignore_subscribe_messages=True, timeout=1.0
                    )
                    if message is None:
                        continue
                    reply = json.loads(message["data"])
                    if reply["partition"] in waiting:
                        waiting.discard(reply["partition"])
                        counts.update(reply["dropped"])
        except TimeoutError:
            raise Unavailable(
                f"{len(waiting)} table partitions did not confirm the purge within {self.timeout:g}s"
            ) from None
        return dict(counts)
