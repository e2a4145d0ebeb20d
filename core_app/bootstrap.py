"""The composition root: builds every collaborator of one worker once and hands it out explicitly.

`build(settings)` returns the Faust app with its agents, servers and services wired to one
`Components` (core_app/components.py). Agents are registered by `register(app, components)`
functions, views read the components from their aiohttp app (views/wiring.py), gRPC handlers take
them in their constructor. Nothing below this module reaches for a module-level getter.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core_app.components import Components, NotOpen
from core_app.settings import Settings

if TYPE_CHECKING:
    from core_app.app import CoreApp

__all__ = ["Components", "NotOpen", "build"]


def build(settings: Settings | None = None) -> CoreApp:
    """The worker's Faust app, wired (moved here from core_app.main in the refactor)."""
    from core_app.main import build as build_main  # transition: main.build moves here

    return build_main()
