"""gRPC `core.v1.CoreService`: a thin adapter over the service layer.

Domain errors map to gRPC status codes: bad input INVALID_ARGUMENT (naming the field), unknown ids
NOT_FOUND, an unreachable dependency UNAVAILABLE.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg2
from google.protobuf.json_format import MessageToDict
from google.protobuf.struct_pb2 import Struct
from grpclib import GRPCError
from grpclib.const import Status
from grpclib.server import Stream

from core_app.components import Components
from core_app.domain.errors import Conflict, NotFound, Unavailable, ValidationFailed
from core_app.rpc.customer_list_rpc import stream_customers
from core_app.rpc.generated.core.v1 import core_pb2 as pb
from core_app.rpc.generated.core.v1.core_grpc import CoreServiceBase
from core_app.security.principal import Principal, current_principal
from core_app.services import segments


@asynccontextmanager
async def grpc_errors() -> AsyncIterator[None]:
    try:
        yield
    except ValidationFailed as exc:
        raise GRPCError(Status.INVALID_ARGUMENT, f"{exc.field}: {exc.reason}") from None
    except NotFound as exc:
        raise GRPCError(Status.NOT_FOUND, str(exc)) from None
    except Conflict as exc:
        status = Status.ALREADY_EXISTS if exc.field == "email" else Status.FAILED_PRECONDITION
        raise GRPCError(status, f"{exc.field}: {exc.reason}") from None
    except Unavailable as exc:
        raise GRPCError(Status.UNAVAILABLE, str(exc)) from None
    except (psycopg2.OperationalError, OSError, TimeoutError) as exc:
        raise GRPCError(Status.UNAVAILABLE, f"a dependency is unavailable: {type(exc).__name__}") from None


def rfm_message(score: dict[str, int]) -> pb.RFMScore:
    return pb.RFMScore(recency=score["recency"], frequency=score["frequency"], monetary=score["monetary"])


def caller() -> Principal | None:
    """The principal the gRPC listener authenticated for this call (read here, at the edge)."""
    return current_principal.get()


class CoreService(CoreServiceBase):
    def __init__(self, components: Components) -> None:
        self.components = components

    async def GetCustomer(self, stream: Stream[pb.GetCustomerRequest, pb.GetCustomerResponse]) -> None:
        request = await stream.recv_message()
        assert request is not None
        async with grpc_errors():
            customer = await self.components.customers.get(
                caller(),
                request.merchant_id,
                request.customer_id,
                transport="grpc",
                include=list(request.include),
            )
        metadata = Struct()
        metadata.update(customer["metadata"])
        reply = pb.GetCustomerResponse(
            metadata=metadata,
            version=customer["version"],
            email=customer.get("email") or "",
            segment=customer.get("segment") or "",
            id=customer["id"],
            redacted=bool(customer.get("redacted")),
        )
        if customer["rfm_score"]:
            reply.rfm_score.CopyFrom(rfm_message(customer["rfm_score"]))
        await stream.send_message(reply)

    async def GetCustomerRFM(
        self, stream: Stream[pb.GetCustomerRFMRequest, pb.GetCustomerRFMResponse]
    ) -> None:
        request = await stream.recv_message()
        assert request is not None
        async with grpc_errors():
            score = await self.components.customers.rfm(caller(), request.merchant_id, request.customer_id)
        await stream.send_message(pb.GetCustomerRFMResponse(rfm_score=rfm_message(score)))

    async def CreateCustomer(
        self, stream: Stream[pb.CreateCustomerRequest, pb.CreateCustomerResponse]
    ) -> None:
        request = await stream.recv_message()
        assert request is not None
        async with grpc_errors():
            customer = await self.components.customers.create(
                caller(),
                request.merchant_id,
                request.email,
                MessageToDict(request.metadata),
                transport="grpc",
            )
        await stream.send_message(pb.CreateCustomerResponse(customer_id=customer["id"]))

    async def UpdateCustomer(
        self, stream: Stream[pb.UpdateCustomerRequest, pb.UpdateCustomerResponse]
    ) -> None:
        request = await stream.recv_message()
        assert request is not None
        async with grpc_errors():
            customer = await self.components.customers.update(
                caller(),
                request.merchant_id,
                request.customer_id,
                None,
                MessageToDict(request.metadata),
                transport="grpc",
            )
        await stream.send_message(pb.UpdateCustomerResponse(customer_id=customer["id"]))

    async def UpdateProgramSettings(
        self, stream: Stream[pb.UpdateProgramSettingsRequest, pb.UpdateProgramSettingsResponse]
    ) -> None:
        request = await stream.recv_message()
        assert request is not None
        async with grpc_errors():
            saved = await self.components.program_settings.update(
                caller(),
                request.merchant_id,
                MessageToDict(request.rfm_thresholds),
                MessageToDict(request.loyalty_config),
            )
        await stream.send_message(pb.UpdateProgramSettingsResponse(settings_id=saved["id"]))

    async def ImportCustomers(
        self, stream: Stream[pb.ImportCustomersRequest, pb.ImportCustomersResponse]
    ) -> None:
        request = await stream.recv_message()
        assert request is not None
        async with grpc_errors():
            started = await self.components.customer_import.start_import(
                caller(), request.merchant_id, request.source, request.file_url
            )
        await stream.send_message(pb.ImportCustomersResponse(import_id=started["import_id"]))

    async def ListCustomers(self, stream: Stream[pb.ListCustomersRequest, pb.CustomerRecord]) -> None:
        async with grpc_errors():
            await stream_customers(stream, self.components.customer_list, caller())

    async def UnsealEmail(self, stream: Stream[pb.UnsealEmailRequest, pb.UnsealEmailResponse]) -> None:
        request = await stream.recv_message()
        assert request is not None
        async with grpc_errors():
            email = await self.components.customers.unseal_email(
                caller(),
                request.merchant_id,
                request.customer_id,
                request.sealed_email,
                transport="grpc:unseal",
            )
        await stream.send_message(pb.UnsealEmailResponse(email=email))

    async def GetSegmentCounts(
        self, stream: Stream[pb.GetSegmentCountsRequest, pb.GetSegmentCountsResponse]
    ) -> None:
        request = await stream.recv_message()
        assert request is not None
        async with grpc_errors():
            counts = await segments.segment_counts(self.components.segments, caller(), request.merchant_id)
        reply = pb.GetSegmentCountsResponse(total=counts["total"], source=counts["source"])
        reply.segments.extend(pb.SegmentCount(**row) for row in counts["segments"])
        await stream.send_message(reply)
