"""The pipeline works out each route's labels, public-ness and rate-limit endpoint once; they must
equal what the per-request functions give for a request the route serves."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import make_mocked_request

from core_app.security.http import endpoint_name, is_public
from views import ROUTES
from views.admin_page import admin_routes
from views.pipeline import RouteFacts, build_app, route_labels

SERVED = [*ROUTES, *admin_routes()]


def concrete(path: str) -> str:
    """A path the route template matches."""
    return (
        path.replace("{merchant_id}", "7f1d1a56-0f0c-4d55-9a6e-0d0b6f1c2a11")
        .replace("{customer_id}", "0c5f8f5e-5b1e-4f8a-9d3b-8a1f3e2d4c55")
        .replace("{export_id}", "5b0e3c1d-7a2f-4e9b-8c6d-1f0a2b3c4d5e")
    )


@pytest.mark.parametrize(("method", "path"), [(method, path) for method, path, _ in SERVED])
async def test_fixed_facts_equal_the_per_request_ones(method: str, path: str) -> None:
    app = build_app(SERVED)  # type: ignore[arg-type]
    request = make_mocked_request(method, concrete(path), app=app)
    match = await app.router.resolve(request)
    request._match_info = match  # what aiohttp sets before the handler runs
    facts = RouteFacts.of(method, path)
    assert facts.labels == route_labels(request)
    assert facts.public is is_public(request)
    assert facts.endpoint == endpoint_name(request)


def test_a_route_of_any_method_is_worked_out_per_request() -> None:
    assert RouteFacts.of("*", "/graphql") == RouteFacts()
    assert RouteFacts.of(None, None) == RouteFacts()
