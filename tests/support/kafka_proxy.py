"""A Kafka protocol proxy in front of Tansu that can move a partition's log start, as retention does.

Tansu's in-memory engine cannot delete records (DeleteRecords is unimplemented there) nor apply
retention, so a changelog whose start was cut (faust #651) cannot be made on it. This proxy passes
every request and response through unchanged, except ListOffsets answers for "earliest" (timestamp
-2): for a partition in `log_starts` it reports that offset instead, which is what a broker that
deleted the records before it would answer. Tansu advertises the proxy's address, so every client
of the broker talks through it. Versions 0-3 of ListOffsets are what aiokafka sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import subprocess
from pathlib import Path
from typing import Any

from aiokafka.protocol.offset import (
    OffsetRequest_v0,
    OffsetRequest_v1,
    OffsetRequest_v2,
    OffsetRequest_v3,
    OffsetResponse_v0,
    OffsetResponse_v1,
    OffsetResponse_v2,
    OffsetResponse_v3,
)

from tests.support.processes import free_port, stop_process, wait_for_port

LIST_OFFSETS = 2
EARLIEST = -2
REQUESTS: dict[int, Any] = {
    0: OffsetRequest_v0,
    1: OffsetRequest_v1,
    2: OffsetRequest_v2,
    3: OffsetRequest_v3,
}
RESPONSES: dict[int, Any] = {
    0: OffsetResponse_v0,
    1: OffsetResponse_v1,
    2: OffsetResponse_v2,
    3: OffsetResponse_v3,
}


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    size = struct.unpack(">i", await reader.readexactly(4))[0]
    return await reader.readexactly(size)


def frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def earliest_asked(request: bytes) -> tuple[int, int, set[tuple[str, int]]] | None:
    """(correlation id, version, partitions asked for their earliest offset) of a ListOffsets request."""
    api_key, version, correlation = struct.unpack(">hhi", request[:8])
    if api_key != LIST_OFFSETS or version not in REQUESTS:
        return None
    client_id_length = struct.unpack(">h", request[8:10])[0]
    body = request[10 + max(client_id_length, 0) :]
    decoded = REQUESTS[version].decode(body)
    asked = {
        (topic, partition[0])
        for topic, partitions in decoded.topics
        for partition in partitions
        if partition[1] == EARLIEST
    }
    return correlation, version, asked


class LogStartProxy:
    """Tansu behind a proxy that reports `log_starts[(topic, partition)]` as a partition's earliest."""

    def __init__(self, log_path: Path) -> None:
        self.port = free_port()  # what clients connect to, and what Tansu advertises
        self.broker_port = free_port()
        self.log_path = log_path
        self.log_starts: dict[tuple[str, int], int] = {}
        self.rewritten = 0
        self.errors: list[str] = []  # what the proxy could not parse (the frames still pass unchanged)
        self._broker: subprocess.Popen[bytes] | None = None
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"kafka://127.0.0.1:{self.port}"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        from core_app.devstack import tansu_binary

        argv = [
            tansu_binary(),
            "broker",
            "--listener-url",
            f"tcp://127.0.0.1:{self.broker_port}",
            "--advertised-listener-url",
            f"tcp://127.0.0.1:{self.port}",
        ]
        with open(self.log_path, "ab") as log:
            self._broker = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        wait_for_port(self.broker_port)
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self._broker is not None:
            stop_process(self._broker, timeout=5)
            self._broker = None

    def _accept(self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter) -> None:
        task = asyncio.create_task(self._connection(client_in, client_out))
        self._connections.add(task)
        task.add_done_callback(self._connections.discard)

    async def _connection(self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter) -> None:
        try:
            broker_in, broker_out = await asyncio.open_connection("127.0.0.1", self.broker_port)
        except OSError:
            client_out.close()
            return
        pending: dict[int, tuple[int, set[tuple[str, int]]]] = {}  # correlation -> (version, asked)
        upstream = asyncio.create_task(self._requests(client_in, broker_out, pending))
        try:
            while True:
                response = await read_frame(broker_in)
                correlation = struct.unpack(">i", response[:4])[0]
                if correlation in pending:
                    try:
                        response = self._rewrite(response, *pending.pop(correlation))
                    except Exception as exc:
                        self.errors.append(f"response: {exc!r}")
                client_out.write(frame(response))
                await client_out.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            upstream.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await upstream
            for writer in (client_out, broker_out):
                writer.close()

    async def _requests(
        self,
        client_in: asyncio.StreamReader,
        broker_out: asyncio.StreamWriter,
        pending: dict[int, tuple[int, set[tuple[str, int]]]],
    ) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                request = await read_frame(client_in)
                try:
                    asked = earliest_asked(request)
                except Exception as exc:  # never stall the client: pass the request through as it is
                    self.errors.append(f"request: {exc!r}")
                    asked = None
                if asked is not None and asked[2]:
                    pending[asked[0]] = (asked[1], asked[2])
                broker_out.write(frame(request))
                await broker_out.drain()
        broker_out.close()

    def _rewrite(self, response: bytes, version: int, asked: set[tuple[str, int]]) -> bytes:
        decoded = RESPONSES[version].decode(response[4:])
        topics = []
        for topic, partitions in decoded.topics:
            rewritten = []
            for partition in partitions:
                start = self.log_starts.get((topic, partition[0]))
                if start is not None and (topic, partition[0]) in asked:
                    self.rewritten += 1
                    if version == 0:  # (partition, error_code, [offsets])
                        partition = (partition[0], partition[1], [max(partition[2][0], start)])
                    else:  # (partition, error_code, timestamp, offset)
                        partition = (*partition[:3], max(partition[3], start))
                rewritten.append(partition)
            topics.append((topic, rewritten))
        fields = {name: getattr(decoded, name) for name in decoded.SCHEMA.names} | {"topics": topics}
        return response[:4] + RESPONSES[version](**fields).encode()
