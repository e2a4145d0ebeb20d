"""A fake AdminFeatures (adminfeatures.v1 over grpclib) as its own process, so a test can make it go
away for real: `python -m tests.support.fake_adminfeatures --port P` answers GetRFMSegmentCounts with
champions = 41 for any merchant, and prints `ready` once it listens."""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from grpclib.server import Server, Stream

from core_app.adminfeatures.generated.adminfeatures.v1 import adminfeatures_pb2 as pb
from core_app.adminfeatures.generated.adminfeatures.v1.adminfeatures_grpc import AdminFeaturesServiceBase
from core_app.settings import REPO_ROOT
from tests.support.processes import free_port, stop_process

CHAMPIONS = 41


class Counts(AdminFeaturesServiceBase):
    async def GetRFMSegmentCounts(
        self, stream: Stream[pb.GetRFMSegmentCountsRequest, pb.GetRFMSegmentCountsResponse]
    ) -> None:
        request = await stream.recv_message()
        assert request is not None
        reply = pb.GetRFMSegmentCountsResponse()
        reply.segments.extend([pb.RFMSegmentCount(segment="champions", customers=CHAMPIONS)])
        await stream.send_message(reply)


async def serve(port: int) -> None:
    server = Server([Counts()])
    await server.start("127.0.0.1", port)
    print("ready", flush=True)
    await server.wait_closed()


@contextmanager
def fake_adminfeatures_process() -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """The fake running in a child process; yields (process, port). Kill the process to take it down."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.fake_adminfeatures", "--port", str(port)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == b"ready"
        yield process, port
    finally:
        stop_process(process, timeout=5)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(serve(parser.parse_args().port))
