"""The baselines of bench/reads.py: a bare aiohttp handler and a bare grpclib unary handler, each
returning a constant, in one process of their own (no middleware, no Faust, no I/O).

    .venv/bin/python -m bench.bare_servers --http-port 8090 --grpc-port 50090

The HTTP handler answers GET /bare with a constant JSON body shaped like a customer read; the gRPC
server implements only `core.v1.CoreService/GetCustomerRFM`, with a constant score, so the same
load generator drives both it and the worker.
"""

from __future__ import annotations

import argparse
import asyncio
import json

from aiohttp import web
from grpclib import GRPCError
from grpclib.const import Status
from grpclib.server import Server, Stream

from core_app.rpc.generated.core.v1 import core_pb2 as pb
from core_app.rpc.generated.core.v1.core_grpc import CoreServiceBase

CONSTANT_BODY = json.dumps(
    {
        "id": "00000000-0000-4000-8000-000000000000",
        "merchant_id": "00000000-0000-4000-8000-000000000001",
        "rfm_score": {"recency": 1, "frequency": 2, "monetary": 3},
        "metadata": {},
        "version": 1,
        "redacted": False,
        "created_at": "2026-01-01T00:00:00.000Z",
        "updated_at": "2026-01-01T00:00:00.000Z",
        "source": "table",
    }
).encode()
CONSTANT_RFM = pb.GetCustomerRFMResponse(rfm_score=pb.RFMScore(recency=1, frequency=2, monetary=3))


async def bare(request: web.Request) -> web.Response:
    return web.Response(body=CONSTANT_BODY, content_type="application/json")


class BareRFM(CoreServiceBase):
    async def GetCustomerRFM(
        self, stream: Stream[pb.GetCustomerRFMRequest, pb.GetCustomerRFMResponse]
    ) -> None:
        await stream.recv_message()
        await stream.send_message(CONSTANT_RFM)

    async def GetCustomer(self, stream: Stream) -> None:
        raise GRPCError(Status.UNIMPLEMENTED)

    CreateCustomer = UpdateCustomer = UpdateProgramSettings = ImportCustomers = ListCustomers = (
        GetSegmentCounts
    ) = UnsealEmail = GetCustomer


async def serve(http_port: int, grpc_port: int) -> None:
    app = web.Application()
    app.router.add_get("/bare", bare)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", http_port).start()
    server = Server([BareRFM()])
    await server.start("127.0.0.1", grpc_port)
    print("ready", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--grpc-port", type=int, required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.http_port, args.grpc_port))


if __name__ == "__main__":
    main()
