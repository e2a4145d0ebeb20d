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

from core_app.domain.errors import Conflict, NotFound, Unavailable, ValidationFailed
from core_app.rpc.customer_list_rpc import stream_customers
from core_app.rpc.generated.core.v1 import core_pb2 as pb
from core_app.rpc.generated.core.v1.core_grpc import CoreServiceBase
from core_app.runtime import get_runtime
from core_app.services import customers, imports, segments
from core_app.services import settings as program_settings


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


class CoreService(CoreServiceBase):
    async def GetCustomer(self, stream: Stream[pb.GetCustomerRequest, pb.GetCustomerResponse]) -> None:
        request = await stream.recv_message()
        assert request is not None
        async with grpc_errors():
            customer = await customers.get_customer(
                request.merchant_id, request.customer_id, transport="grpc"
            )
        metadata = Struct()
        metadata.update(customer["metadata"])
        reply = pb.GetCustomerResponse(
            metadata=metadata, version=customer["version"], email=customer.get("email") or ""
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
            score = await customers.get_customer_rfm(request.merchant_id, request.customer_id)
        await stream.send_message(pb.GetCustomerRFMResponse(rfm_score=rfm_message(score)))

    async def CreateCustomer(
        self, stream: Stream[pb.CreateCustomerRequest, pb.CreateCustomerResponse]
    ) -> None:
        request = await stream.recv_message()
        assert request is not None
        async with grpc_errors():
            customer = await customers.create_customer(
                request.merchant_id, request.email, MessageToDict(request.metadata)
            )
        await stream.send_message(pb.CreateCustomerResponse(customer_id=customer["id"]))

    async def UpdateCustomer(
        self, stream: Stream[pb.UpdateCustomerRequest, pb.UpdateCustomerResponse]
    ) -> None:
        request = await stream.recv_message()
        assert request is not None
        async with grpc_errors():
            customer = await customers.update_customer(
                request.merchant_id, request.customer_id, None, MessageToDict(request.metadata)
            )
        await stream.send_message(pb.UpdateCustomerResponse(customer_id=customer["id"]))

    async def UpdateProgramSettings(
        self, stream: Stream[pb.UpdateProgramSettingsRequest, pb.UpdateProgramSettingsResponse]
    ) -> None:
        request = await stream.recv_message()
        assert request is not None
        async with grpc_errors():
            saved = await program_settings.update_program_settings(
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
            started = await imports.start_import(request.merchant_id, request.source, request.file_url)
        await stream.send_message(pb.ImportCustomersResponse(import_id=started["import_id"]))

    async def ListCustomers(self, stream: Stream[pb.ListCustomersRequest, pb.CustomerRecord]) -> None:
        async with grpc_errors():
            await stream_customers(stream)

    async def GetSegmentCounts(
        self, stream: Stream[pb.GetSegmentCountsRequest, pb.GetSegmentCountsResponse]
    ) -> None:
        request = await stream.recv_message()
        assert request is not None
        async with grpc_errors():
            runtime = get_runtime()
            adminfeatures = segments.adminfeatures_of(runtime.settings)
            counts = await segments.segment_counts(runtime.pool, request.merchant_id, adminfeatures)
        reply = pb.GetSegmentCountsResponse(total=counts["total"], source=counts["source"])
        reply.segments.extend(pb.SegmentCount(**row) for row in counts["segments"])
        await stream.send_message(reply)
