"""Avro encode/decode with Confluent framing (magic byte, schema id, body) via the Schema Registry.

Schemas live in `avro/{topic}.avsc` and are registered under the subject `{topic}-value`
(TopicNameStrategy) when the worker starts, so no event-loop call ever waits on a cold registry
for our own schemas. Foreign writer schemas are fetched once by id with the async client and cached.
"""

from __future__ import annotations

import io
import json
import logging
import struct
from pathlib import Path
from typing import Any

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from schema_registry.client import AsyncSchemaRegistryClient
from schema_registry.client.schema import AvroSchema
from schema_registry.serializers import AsyncAvroMessageSerializer
from tenacity import (
    AsyncRetrying,
    before_sleep_log,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential,
    wait_exponential_jitter,
)

log = logging.getLogger(__name__)

MAGIC_BYTE = 0
_HEADER = struct.Struct(">bI")


class DecodeError(Exception):
    """The payload is not a decodable event; `kind` is a short stable label for metrics."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


def load_contracts(avro_dir: Path) -> dict[str, AvroSchema]:
    """Topic name -> schema, from every `{topic}.avsc` in `avro_dir`."""
    contracts: dict[str, AvroSchema] = {}
    for path in sorted(avro_dir.glob("*.avsc")):
        raw = json.loads(path.read_text())
        parse_schema(raw)  # fail at start, not on the first event
        contracts[path.stem] = AvroSchema(raw)
    return contracts


class EventCodec:
    def __init__(self, registry_url: str, avro_dir: Path) -> None:
        self.client = AsyncSchemaRegistryClient(url=registry_url)
        self.serializer = AsyncAvroMessageSerializer(self.client)
        self.contracts = load_contracts(avro_dir)
        self.schema_ids: dict[str, int] = {}
        # schema id -> parsed schema; filled at start for our contracts, on first sight for others.
        self._parsed: dict[int, Any] = {}
        self._registry_retry = AsyncRetrying(
            wait=wait_exponential_jitter(initial=0.2, max=10),
            before_sleep=before_sleep_log(log, logging.WARNING),
            reraise=True,
        )

    async def register_all(self, give_up_after: float = 60.0) -> dict[str, int]:
        """Register every contract (idempotent); retries while the registry is starting."""
        async for attempt in AsyncRetrying(
            stop=stop_after_delay(give_up_after),
            wait=wait_exponential(multiplier=0.2, max=5),
            retry=retry_if_exception_type(Exception),
            reraise=True,
        ):
            with attempt:
                for topic, schema in self.contracts.items():
                    if topic not in self.schema_ids:
                        schema_id = await self.client.register(f"{topic}-value", schema)
                        self.schema_ids[topic] = schema_id
                        self._parsed[schema_id] = parse_schema(schema.raw_schema)
        log.info("schemas registered", extra={"schema_ids": self.schema_ids})
        return self.schema_ids

    async def encode(self, topic: str, record: dict[str, Any]) -> bytes:
        schema_id = self.schema_ids.get(topic)
        if schema_id is None:
            raise KeyError(f"no registered schema for topic {topic!r}")
        out = io.BytesIO()
        out.write(_HEADER.pack(MAGIC_BYTE, schema_id))
        schemaless_writer(out, self._parsed[schema_id], record)
        return out.getvalue()

    async def decode(self, payload: bytes | None) -> dict[str, Any]:
        if not payload or len(payload) < _HEADER.size:
            raise DecodeError("too_short", "payload is shorter than the 5-byte Confluent header")
        magic, schema_id = _HEADER.unpack_from(payload)
        if magic != MAGIC_BYTE:
            raise DecodeError("bad_magic", f"magic byte is {magic}, expected {MAGIC_BYTE}")
        writer = self._parsed.get(schema_id) or await self._fetch_writer(schema_id)
        try:
            record = schemaless_reader(io.BytesIO(payload[_HEADER.size :]), writer, None)
        except Exception as exc:
            raise DecodeError("bad_body", f"body does not match schema id {schema_id}: {exc}") from exc
        if not isinstance(record, dict):
            raise DecodeError("bad_body", f"schema id {schema_id} is not a record schema")
        return record

    async def _fetch_writer(self, schema_id: int) -> Any:
        # A registry outage is not the event's fault: wait for the registry rather than dead-letter.
        schema = await self._registry_retry.copy()(self.client.get_by_id, schema_id)
        if schema is None:
            raise DecodeError("unknown_schema", f"schema id {schema_id} is not in the registry")
        parsed = self._parsed[schema_id] = parse_schema(schema.raw_schema)
        return parsed
