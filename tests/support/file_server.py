"""A real HTTP file server for import tests (aiohttp, 127.0.0.1), with failure modes on demand.

/files/{name}              the file, with Content-Length
/chunked/{name}            the file, chunked (no Content-Length)
/flaky/{failures}/{name}   503 for the first `failures` requests of this path, then the file
/down/{name}               always 503
/endless                   chunked zeros that never end (the size cap must stop it)
/redirect?to=URL           302 to URL
"""

from __future__ import annotations

import asyncio
from collections import Counter

from aiohttp import web

from tests.support.processes import free_port


class FileServer:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: Counter[str] = Counter()
        self.port = free_port()
        self._runner: web.AppRunner | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def add(self, name: str, data: bytes) -> str:
        self.files[name] = data
        return self.url(f"/files/{name}")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/files/{name}", self._file)
        app.router.add_get("/chunked/{name}", self._chunked)
        app.router.add_get("/flaky/{failures}/{name}", self._flaky)
        app.router.add_get("/down/{name}", self._down)
        app.router.add_get("/endless", self._endless)
        app.router.add_get("/redirect", self._redirect)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _count(self, request: web.Request) -> int:
        self.requests[request.path] += 1
        return self.requests[request.path]

    def _data(self, request: web.Request) -> bytes:
        name = request.match_info["name"]
        if name not in self.files:
            raise web.HTTPNotFound()
        return self.files[name]

    async def _file(self, request: web.Request) -> web.Response:
        self._count(request)
        return web.Response(body=self._data(request), content_type="text/csv")

    async def _chunked(self, request: web.Request) -> web.StreamResponse:
        self._count(request)
        data = self._data(request)
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for start in range(0, len(data), 256 * 1024):
            await response.write(data[start : start + 256 * 1024])
        await response.write_eof()
        return response

    async def _flaky(self, request: web.Request) -> web.Response:
        if self._count(request) <= int(request.match_info["failures"]):
            return web.Response(status=503, text="try again later")
        return web.Response(body=self._data(request), content_type="text/csv")

    async def _down(self, request: web.Request) -> web.Response:
        self._count(request)
        return web.Response(status=503, text="down for maintenance")

    async def _endless(self, request: web.Request) -> web.StreamResponse:
        self._count(request)
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(b"email,note\n")
        block = (b"," + b"x" * 1000 + b"\n") * 1000
        try:
            while True:
                await response.write(block)
                await asyncio.sleep(0)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        return response

    async def _redirect(self, request: web.Request) -> web.Response:
        self._count(request)
        raise web.HTTPFound(request.query["to"])
