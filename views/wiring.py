"""How a view finds the worker's components: the composition root stores them on the aiohttp app."""

from __future__ import annotations

from aiohttp import web

from core_app.components import Components

COMPONENTS: web.AppKey[Components] = web.AppKey("components", Components)


def components_of(request: web.Request) -> Components:
    return request.app[COMPONENTS]
