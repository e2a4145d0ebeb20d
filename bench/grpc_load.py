"""gRPC load generator of bench/reads.py: `GetCustomerRFM` at a fixed concurrency, one JSON line.

    .venv/bin/python -m bench.grpc_load --port 50051 --merchant-id M --ids ids.txt \
        [--concurrency 64] [--duration 10] [--channels 4] [--latencies-out FILE] \
        [--authorization 'Bearer <JWT>']

Each of `concurrency` tasks sends one call at a time, over `channels` HTTP/2 connections, cycling
over the ids (task k of C reads ids k, k+C, ...). Latency is per call, from send to reply.
`--authorization` is sent as `authorization` metadata on every call (the same token throughout, as
a client reuses its token until it expires).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from array import array
from pathlib import Path

from grpclib import GRPCError
from grpclib.client import Channel

from core_app.rpc.generated.core.v1 import core_pb2 as pb
from core_app.rpc.generated.core.v1.core_grpc import CoreServiceStub


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(q / 100 * len(sorted_values)))]


async def run(args: argparse.Namespace) -> dict[str, float]:
    ids = Path(args.ids).read_text().split()
    channels = [Channel("127.0.0.1", args.port) for _ in range(args.channels)]
    stubs = [CoreServiceStub(channel) for channel in channels]
    latencies: list[float] = []
    errors = 0
    wrapped = 0
    stop_at = 0.0
    metadata = {"authorization": args.authorization} if args.authorization else None

    async def client(k: int) -> None:
        nonlocal errors, wrapped
        call = stubs[k % len(stubs)].GetCustomerRFM
        position = k
        while time.perf_counter() < stop_at:
            request = pb.GetCustomerRFMRequest(merchant_id=args.merchant_id, customer_id=ids[position])
            position += args.concurrency
            if position >= len(ids):
                position, wrapped = k, wrapped + 1
            started = time.perf_counter()
            try:
                await call(request, timeout=10, metadata=metadata)
            except (GRPCError, TimeoutError, OSError):
                errors += 1
                continue
            latencies.append(time.perf_counter() - started)

    try:
        started = time.perf_counter()
        stop_at = started + args.duration
        await asyncio.gather(*(client(k) for k in range(args.concurrency)))
        seconds = time.perf_counter() - started
    finally:
        for channel in channels:
            channel.close()
    if args.latencies_out:
        with open(args.latencies_out, "wb") as out:
            array("d", latencies).tofile(out)
    latencies.sort()
    return {
        "requests": len(latencies),
        "seconds": round(seconds, 3),
        "errors": errors,
        "p50_ms": round(percentile(latencies, 50) * 1000, 3),
        "p99_ms": round(percentile(latencies, 99) * 1000, 3),
        "wrapped": wrapped,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--merchant-id", required=True)
    parser.add_argument("--ids", required=True, help="file of customer ids, one a line")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--channels", type=int, default=4)
    parser.add_argument("--latencies-out", help="also write every latency (float64 seconds) here")
    parser.add_argument("--authorization", help="`authorization` metadata of every call (Bearer <JWT>)")
    print(json.dumps(asyncio.run(run(parser.parse_args()))), flush=True)


if __name__ == "__main__":
    main()
