"""The customers' transports hand the caller from their edge to the use case: REST reads
`request[PRINCIPAL]`, gRPC the listener's principal, GraphQL the request in its context."""

from __future__ import annotations

import json
import uuid
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from core_app.domain.customer_view import customer_view
from core_app.rpc.core_service import CoreService
from core_app.rpc.generated.core.v1 import core_pb2 as pb
from core_app.security.errors import Forbidden
from core_app.security.http import PRINCIPAL
from core_app.security.principal import VIEW, Principal, use_principal
from core_app.services.customers import CustomerService
from tests.unit.fakes import (
    FakeCustomerStore,
    FakeGuard,
    FakeOwnerClient,
    FakePiiAudit,
    FakeReadCache,
    FakeSealingKeys,
    caller,
    customer_state,
)
from views import customers as rest
from views import graphql
from views.wiring import COMPONENTS

MERCHANT, CUSTOMER = str(uuid.uuid4()), str(uuid.uuid4())


def components() -> Any:
    owners = FakeOwnerClient()
    owners.table[(MERCHANT, CUSTOMER)] = (
        "table",
        customer_view(customer_state(MERCHANT, CUSTOMER, version=5)),
    )
    service = CustomerService(
        FakeCustomerStore(),
        FakeReadCache(),
        owners,
        FakeGuard(installed={MERCHANT}),
        FakeSealingKeys(),
        FakePiiAudit(),
        read_recovery_wait=0,
    )
    return SimpleNamespace(customers=service)


def rest_request(principal: Principal) -> web.Request:
    app = web.Application()
    app[COMPONENTS] = components()
    request = make_mocked_request(
        "GET", f"/core/v1/customers?merchant_id={MERCHANT}&customer_id={CUSTOMER}", app=app
    )
    request[PRINCIPAL] = principal
    return request


async def test_rest_reads_as_the_authenticated_caller() -> None:
    response = await rest.get_customer(rest_request(caller(MERCHANT, VIEW)))
    assert json.loads(response.body)["version"] == 5  # type: ignore[arg-type]
    with pytest.raises(Forbidden):
        await rest.get_customer(rest_request(caller(str(uuid.uuid4()), VIEW)))


class Stream:
    def __init__(self, message: Any) -> None:
        self.message, self.sent = message, []

    async def recv_message(self) -> Any:
        return self.message

    async def send_message(self, message: Any) -> None:
        self.sent.append(message)


async def test_grpc_reads_as_the_listeners_principal() -> None:
    service = CoreService(components())
    stream = Stream(pb.GetCustomerRequest(merchant_id=MERCHANT, customer_id=CUSTOMER))
    with use_principal(caller(MERCHANT, VIEW)):
        await service.GetCustomer(stream)  # type: ignore[arg-type]
    assert stream.sent[0].version == 5


async def test_graphql_reads_as_the_caller_of_the_request_in_its_context() -> None:
    request = rest_request(caller(MERCHANT, VIEW))
    info = SimpleNamespace(context={"request": request})
    view = await graphql.get_customer(None, info, merchant_id=MERCHANT, customer_id=CUSTOMER)
    assert view["version"] == 5 and view["email"] == ""
