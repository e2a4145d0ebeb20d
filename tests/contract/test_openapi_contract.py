"""Every public REST route is in docs/openapi.yaml, and every documented route is served."""

import yaml

from core_app.security.http import UNMATCHED_ROUTE
from core_app.settings import REPO_ROOT
from views import build_web_app


def served_routes() -> set[tuple[str, str]]:
    app = build_web_app()
    return {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.method != "HEAD"
        and not route.resource.canonical.startswith("/internal/")
        and route.resource.canonical != "/graphql"  # GraphQL's contract is schema.graphql
        and route.resource.name != UNMATCHED_ROUTE  # the catch-all: 404 and 405 for everything else
    }


def documented_routes() -> set[tuple[str, str]]:
    spec = yaml.safe_load((REPO_ROOT / "docs" / "openapi.yaml").read_text())
    return {(method.upper(), path) for path, item in spec["paths"].items() for method in item}


def test_served_and_documented_routes_are_the_same() -> None:
    assert served_routes() == documented_routes()
