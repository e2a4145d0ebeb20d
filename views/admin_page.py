"""`/admin/imports` and `/admin/customers`: the operator's pages (imports; customers, their segments
and timelines), static HTML + JS + CSS served by the worker itself.

The files (views/admin/) hold no data and no secret, so the request pipeline lets a GET or HEAD
of exactly these paths through without credentials (core_app/security/http.py `PUBLIC_PAGES`). The
page talks to the API as the operator, with a JWT the operator pastes: GraphQL `importCustomers` /
`getImportLogs` with `Authorization: Bearer`, and the live-updates WebSocket with a `connection_init`
token; every call is authenticated and tenant-checked like any other (docs/decisions.md D80).

Every answer carries a Content-Security-Policy that allows only this origin's own script, style and
connections: no inline script or style, no framing, no form posts elsewhere.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

ADMIN_DIR = Path(__file__).resolve().parent / "admin"

# path -> (file under views/admin/, content type)
PAGES: dict[str, tuple[str, str]] = {
    "/admin/admin.js": ("admin.js", "text/javascript"),  # what both pages share: credentials, GraphQL
    "/admin/imports": ("imports.html", "text/html"),
    "/admin/imports.js": ("imports.js", "text/javascript"),
    "/admin/imports.css": ("imports.css", "text/css"),
    # The customers view (issue 18): search, segment filter and counts, the timeline (D175).
    "/admin/customers": ("customers.html", "text/html"),
    "/admin/customers.js": ("customers.js", "text/javascript"),
    "/admin/customers.css": ("customers.css", "text/css"),
}

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",  # fetch to /graphql and the WebSocket to this host (CSP3 'self' covers ws:)
        "form-action 'none'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ]
)

HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _load() -> dict[str, tuple[bytes, str]]:
    return {path: ((ADMIN_DIR / name).read_bytes(), kind) for path, (name, kind) in PAGES.items()}


def admin_routes() -> list[tuple[str, str, object]]:
    """GET and HEAD routes for the page's files, read once at start."""
    files = _load()

    def serve(body: bytes, content_type: str) -> object:
        async def handler(_request: web.Request) -> web.Response:
            return web.Response(body=body, content_type=content_type, charset="utf-8", headers=HEADERS)

        return handler

    return [
        (method, path, serve(body, kind))
        for path, (body, kind) in files.items()
        for method in ("GET", "HEAD")
    ]
