"""`core.table.purges`: the owner of a partition drops a purged merchant's entries of every table
from it, by tombstones through the changelogs (tables/purge.py, D129), and confirms on the purge's
Redis channel once the tombstones are handed to the producer. A replayed command drops nothing more."""

from __future__ import annotations

import json
import logging

from faust.types import EventT, StreamT

from agents.dead_letter import send_to_dead_letter
from core_app import stream_topics as faust_topics
from core_app.app import app
from core_app.retry import infra_retry
from tables.changelog import writer_for
from tables.purge import drop_merchant

log = logging.getLogger(__name__)


async def handle(event: EventT) -> None:
    command = json.loads(event.value)
    partition = event.message.partition
    dropped = drop_merchant(partition, command["merchant_id"])
    await writer_for(app).drain()  # the tombstones are in the producer before the owner confirms
    reply = json.dumps({"purge_id": command["purge_id"], "partition": partition, "dropped": dropped})
    redis = app.components.runtime.redis

    async def confirm() -> None:
        await redis.publish(command["reply_to"], reply)

    await infra_retry()(confirm)
    log.info("merchant's table entries dropped", extra={"partition": partition, "dropped": dropped})


@app.agent(faust_topics.table_purges, name="table-purges")
async def table_purges_agent(stream: StreamT) -> None:
    async for event in stream.events():
        try:
            await handle(event)
        except Exception as exc:
            log.exception("table purge command failed; dead-lettering it")
            await send_to_dead_letter(event, "processing_error", repr(exc))
