"""`core schema-registry`: serve the development registry on its own port."""

from __future__ import annotations

import asyncio

from aiohttp import web

from core_app import db
from core_app.migrate import migrate
from core_app.schema_registry.server import build_registry_app
from core_app.settings import Settings


async def start_registry(settings: Settings, host: str, port: int) -> web.AppRunner:
    pool = await db.create_pool(settings, minsize=0)
    app = build_registry_app(pool)

    async def _close_pool(_app: web.Application) -> None:
        pool.close()
        await pool.wait_closed()

    app.on_cleanup.append(_close_pool)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


def serve(settings: Settings, host: str, port: int) -> None:
    migrate(settings)

    async def _main() -> None:
        runner = await start_registry(settings, host, port)
        print(f"schema registry listening on http://{host}:{port}", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    try:
        asyncio.run(_main())
    except KeyboardInterrupt:
        pass
