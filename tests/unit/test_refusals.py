"""Request ids and error codes of refused requests (views/refusals.py, D151/D152)."""

from __future__ import annotations

import json
import logging

import pytest
from aiohttp.test_utils import make_mocked_request

from views.refusals import code_of, error_response, log_refusal, request_id


@pytest.mark.parametrize(
    ("sent", "kept"),
    [("abc-123.x:y_z", True), ("a" * 64, True), ("a" * 65, False), ("a@b.c", False), ("", False)],
)
def test_a_clients_request_id_is_kept_only_when_it_is_a_short_token(sent: str, kept: bool) -> None:
    request = make_mocked_request("GET", "/x", headers={"X-Request-Id": sent} if sent else {})
    value = request_id(request)
    assert (value == sent) is kept
    assert request_id(request) == value  # one id per request
    assert len(value) <= 64


def test_codes_of_statuses() -> None:
    assert [code_of(s) for s in (400, 404, 405, 413, 418, 599)] == [
        "BAD_REQUEST",
        "NOT_FOUND",
        "METHOD_NOT_ALLOWED",
        "PAYLOAD_TOO_LARGE",
        "IM_A_TEAPOT",
        "ERROR",
    ]


def test_error_shapes_follow_the_path() -> None:
    rest = error_response(make_mocked_request("GET", "/core/v1/x"), 400, "bad", "BAD_USER_INPUT", "f")
    assert json.loads(rest.body) == {"error": {"message": "bad", "code": "BAD_USER_INPUT", "field": "f"}}
    graphql = error_response(make_mocked_request("POST", "/graphql"), 413, "big", "PAYLOAD_TOO_LARGE")
    assert json.loads(graphql.body) == {
        "errors": [{"message": "big", "extensions": {"code": "PAYLOAD_TOO_LARGE"}}]
    }
    assert graphql.headers["X-Request-Id"]


def test_a_refusal_is_one_line_info_or_warning_without_traceback(caplog: pytest.LogCaptureFixture) -> None:
    request = make_mocked_request("GET", "/x?merchant_id=6f1c1c52-2f0e-4c5b-9d0e-6e8f3b1b9a10")
    with caplog.at_level(logging.INFO, logger="core_app.refusals"):
        log_refusal(request, 400, "BAD_USER_INPUT", "customer_id")
        log_refusal(request, 403, "FORBIDDEN")
    info, warning = caplog.records
    assert (info.levelno, warning.levelno) == (logging.INFO, logging.WARNING)
    assert info.exc_info is None and warning.exc_info is None
    assert info.merchant_id == "6f1c1c52-2f0e-4c5b-9d0e-6e8f3b1b9a10"  # type: ignore[attr-defined]
    assert "field=customer_id" in info.getMessage() and "method=GET" in info.getMessage()
