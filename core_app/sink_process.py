"""`core sink`: the PostgreSQL sink (core_app/sink.py) as its own process, without a Faust app.

It serves `/metrics` and `/health` on HTTP_PORT and dead-letters through the same path as the
workers (core_app/dead_lettering.py), on its own awaited aiokafka producer.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from core_app import db
from core_app.dead_lettering import KafkaDeadLetters
from core_app.gc_tuning import tune_gc
from core_app.kafka_security import client_options
from core_app.logs import configure_logging
from core_app.malloc_tuning import tune_malloc
from core_app.redis_client import open_redis
from core_app.settings import Settings
from core_app.sink import PostgresSink, SinkResources
from core_app.sink_sql import SPECS

log = logging.getLogger(__name__)


def sink_web_app(resources: SinkResources, settings: Settings) -> web.Application:
    """`/metrics` (sink lag, batch sizes, rows) and `/health` (PostgreSQL and Redis answer)."""

    async def metrics(_request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def health(_request: web.Request) -> web.Response:
        down: dict[str, str] = {}

        async def pg() -> None:
            async with resources.pool.acquire() as conn, conn.cursor() as cur:
                await cur.execute("SELECT 1")

        for name, probe in (("postgres", pg), ("redis", resources.redis.ping)):
            try:
                await asyncio.wait_for(probe(), settings.health_timeout)
            except Exception as exc:
                down[name] = repr(exc)
        if down:
            return web.json_response({"status": "DOWN", "down": sorted(down), "checks": down}, status=503)
        return web.json_response({"status": "UP"})

    web_app = web.Application()
    web_app.router.add_get("/metrics", metrics)
    web_app.router.add_get("/health", health)
    return web_app


async def serve_sink(settings: Settings, stop: asyncio.Event) -> None:
    """Run the sink until `stop` is set, serving `/metrics` and `/health` on HTTP_PORT."""
    resources = SinkResources(
        # minsize=0: the sink starts (and waits, retrying) while PostgreSQL is away.
        pool=await db.create_pool(settings, minsize=0),
        redis=open_redis(
            settings,
            socket_timeout=settings.health_timeout,
            socket_connect_timeout=settings.health_timeout,
        ),
        redis_key_prefix=settings.redis_key_prefix,
    )
    dead_letters = KafkaDeadLetters(settings)
    runner = web.AppRunner(sink_web_app(resources, settings), access_log=None, handle_signals=False)
    sink = PostgresSink(settings, SPECS, resources=lambda: resources, dead_letters=dead_letters)
    try:
        await dead_letters.start()
        await runner.setup()
        await web.TCPSite(runner, settings.http_host, settings.http_port).start()
        if not await wait_for_changelogs(settings, list(sink.specs), stop):
            return
        await sink.start()
        log.info("sink running", extra={"http_port": settings.http_port})
        await stop.wait()
    finally:
        await sink.stop()
        await runner.cleanup()
        await dead_letters.stop()
        await resources.redis.aclose()
        resources.pool.close()
        await resources.pool.wait_closed()


async def wait_for_changelogs(settings: Settings, topics: list[str], stop: asyncio.Event) -> bool:
    """Wait until the workers have created the changelog topics (Faust creates them compacted; the
    sink must not create them with other settings). False if stopped first."""
    logged = False
    while not stop.is_set():
        admin = AIOKafkaAdminClient(**client_options(settings))
        try:
            await admin.start()
            missing = set(topics) - set(await admin.list_topics())
        except KafkaError as exc:
            missing = {f"(broker: {exc!r})"}
        finally:
            await admin.close()
        if not missing:
            return True
        if not logged:
            log.info("waiting for the workers to create the changelogs", extra={"missing": sorted(missing)})
            logged = True
        try:
            await asyncio.wait_for(stop.wait(), timeout=1.0)
        except TimeoutError:
            pass
    return False


def run_sink(settings: Settings) -> None:
    """`core sink`: the PostgreSQL sink alone (run the workers with SINK_IN_WORKER=false)."""
    from core_app.topic_repair import forbid_auto_creation

    configure_logging(settings)
    tune_gc(settings)
    tune_malloc(settings)  # before any thread starts (D258)
    forbid_auto_creation()  # a changelog lost by the broker waits for a worker to make it right (D208)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        try:
            await serve_sink(settings, stop)
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)

    asyncio.run(main())
