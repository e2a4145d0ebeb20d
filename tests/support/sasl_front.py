"""A SASL front for Tansu: the broker side of Kafka's SASL handshake, then a byte pipe to Tansu.

Tansu 0.6.0 cannot be used for SASL here: with `--authentication` it needs SCRAM users, which only
an authenticated client can create on its memory engine (and its s3 engine kept none), and without
it it offers no mechanism at all (docs/decisions.md D217). So the service's SASL client side is
tested against this front, which speaks the real protocol (ApiVersions relayed to Tansu,
SaslHandshake v0/v1 and SaslAuthenticate v0/v1 answered here, PLAIN and SCRAM-SHA-256/512 checked
with `scramp`), and once a connection has authenticated passes its bytes through to Tansu
unchanged. A connection that sends anything else first is closed, as Kafka does.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable
from typing import Any

from scramp import ScramException, ScramMechanism

API_VERSIONS, SASL_HANDSHAKE, SASL_AUTHENTICATE = 18, 17, 36
UNSUPPORTED_SASL_MECHANISM, SASL_AUTHENTICATION_FAILED = 33, 58
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


def _string(value: str | None) -> bytes:
    if value is None:
        return struct.pack(">h", -1)
    raw = value.encode()
    return struct.pack(">h", len(raw)) + raw


def _bytes(value: bytes) -> bytes:
    return struct.pack(">i", len(value)) + value


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    (size,) = struct.unpack(">i", await reader.readexactly(4))
    return await reader.readexactly(size)


def _frame(correlation_id: int, body: bytes) -> bytes:
    payload = struct.pack(">i", correlation_id) + body
    return struct.pack(">i", len(payload)) + payload


def _request_body(frame: bytes) -> tuple[int, int, int, bytes]:
    """(api key, version, correlation id, body) of a non-flexible request (header v1)."""
    api_key, version, correlation_id, client_id_len = struct.unpack(">hhih", frame[:10])
    return api_key, version, correlation_id, frame[10 + max(client_id_len, 0) :]


class _Exchange:
    """One connection's SASL exchange: PLAIN in one step, SCRAM in two."""

    def __init__(self, mechanism: str, users: dict[str, str]) -> None:
        self.mechanism = mechanism
        self.users = users
        self.done = False
        self.user = ""
        self._scram: Any = None
        if mechanism.startswith("SCRAM-"):
            scram = ScramMechanism(mechanism)
            infos = {user: scram.make_auth_info(password, 4096) for user, password in users.items()}
            self._scram = scram.make_server(lambda user: infos[user])

    def step(self, token: bytes) -> bytes:
        """The server's answer to `token`; raises ValueError when authentication fails."""
        if self.mechanism == "PLAIN":
            _authzid, user, password = token.decode().split("\0")
            self.user = user
            if self.users.get(user) != password:
                raise ValueError(f"authentication failed for {user!r}")
            self.done = True
            return b""
        try:
            if self._scram.stage is None:
                self.user = token.decode().split("n=", 1)[-1].split(",", 1)[0]
                self._scram.set_client_first(token.decode())
                return self._scram.get_server_first().encode()
            self._scram.set_client_final(token.decode())
            self.done = True
            return self._scram.get_server_final().encode()
        except (ScramException, KeyError) as exc:
            raise ValueError(f"authentication failed: {exc!r}") from None


class SaslFront:
    """Listens on 127.0.0.1:`port`; each authenticated connection is piped to Tansu on `backend`."""

    def __init__(self, port: int, backend: int, users: dict[str, str]) -> None:
        self.port, self.backend, self.users = port, backend, users
        self.authenticated: list[tuple[str, str]] = []  # (mechanism, user) of each success
        self.refused: list[str] = []  # why each refused connection was closed
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.backend)
        try:
            if await self._authenticate(reader, writer, up_reader, up_writer):
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            for w in (writer, up_writer):
                w.close()

    async def _authenticate(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        up_reader: asyncio.StreamReader,
        up_writer: asyncio.StreamWriter,
    ) -> bool:
        exchange: _Exchange | None = None
        while exchange is None or not exchange.done:
            frame = await _read_frame(reader)
            api_key, version, correlation_id, body = _request_body(frame)
            if api_key == API_VERSIONS:  # Tansu's own answer: it lists the SASL keys
                up_writer.write(struct.pack(">i", len(frame)) + frame)
                response = await _read_frame(up_reader)
                writer.write(struct.pack(">i", len(response)) + response)
            elif api_key == SASL_HANDSHAKE and version <= 1:
                (length,) = struct.unpack(">h", body[:2])
                mechanism = body[2 : 2 + length].decode()
                error = 0 if mechanism in MECHANISMS else UNSUPPORTED_SASL_MECHANISM
                listed = struct.pack(">i", len(MECHANISMS)) + b"".join(_string(m) for m in MECHANISMS)
                writer.write(_frame(correlation_id, struct.pack(">h", error) + listed))
                if error:
                    return self._refuse(writer, f"unsupported mechanism {mechanism}")
                exchange = _Exchange(mechanism, self.users)
            elif api_key == SASL_AUTHENTICATE and version <= 1 and exchange is not None:
                (length,) = struct.unpack(">i", body[:4])
                if not await self._authenticate_step(
                    exchange, body[4 : 4 + length], version, correlation_id, writer
                ):
                    return False
            else:
                return self._refuse(writer, f"api {api_key} before authentication")
            await writer.drain()
        return True

    async def _authenticate_step(
        self,
        exchange: _Exchange,
        token: bytes,
        version: int,
        correlation_id: int,
        writer: asyncio.StreamWriter,
    ) -> bool:
        lifetime = struct.pack(">q", 0) if version >= 1 else b""
        try:
            answer = exchange.step(token)
        except ValueError as exc:
            # Recorded before the client hears of it: a test reads `refused` as soon as it is refused.
            self.refused.append(str(exc))
            body = struct.pack(">h", SASL_AUTHENTICATION_FAILED) + _string(str(exc)) + _bytes(b"") + lifetime
            writer.write(_frame(correlation_id, body))
            await writer.drain()
            writer.close()
            return False
        writer.write(_frame(correlation_id, struct.pack(">h", 0) + _string(None) + _bytes(answer) + lifetime))
        if exchange.done:
            self.authenticated.append((exchange.mechanism, exchange.user))
        return True

    def _refuse(self, writer: asyncio.StreamWriter, reason: str) -> bool:
        self.refused.append(reason)
        writer.close()
        return False


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


def run_in_thread(front: SaslFront) -> Callable[[], None]:
    """Serve `front` on an event loop of its own thread (so a worker subprocess and the test's own
    loop can both use it); returns the function that stops it."""
    import threading

    loop = asyncio.new_event_loop()
    started = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(front.start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, name=f"sasl-front-{front.port}", daemon=True)
    thread.start()
    started.wait(10)

    def stop() -> None:
        asyncio.run_coroutine_threadsafe(front.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)

    return stop
