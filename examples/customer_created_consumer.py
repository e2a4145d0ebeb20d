"""An example consumer of `customer.created` (for Campaign and other teams; docs/consumers.md).

It reads the topic with confluent-kafka, decodes each record with confluent-kafka's
AvroDeserializer against the schema registry (Confluent framing: magic byte, schema id, Avro body),
and opens the sealed `email` through Core's gRPC `core.v1.CoreService/UnsealEmail` with a token
that holds `admin:customers:view` and `customers:read_pii`. Every unseal is audited by Core. A
customer erased since the event was produced answers FAILED_PRECONDITION: its data key is gone,
the email with it, and the customer must not be mailed.

    .venv/bin/python -m examples.customer_created_consumer --bootstrap 127.0.0.1:9092 \\
        --registry http://127.0.0.1:8081 --core 127.0.0.1:50051 --token "$JWT" [--group campaign]

The gRPC stubs here are this repository's (grpclib, generated from grpc/core/v1/core.proto);
another service generates its own from that file.
"""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, Message
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext
from grpclib import GRPCError
from grpclib.client import Channel
from grpclib.const import Status

from core_app.rpc.generated.core.v1 import core_pb2 as pb
from core_app.rpc.generated.core.v1.core_grpc import CoreServiceStub

TOPIC = "customer.created"


@dataclass(frozen=True)
class CustomerCreated:
    event_id: str
    merchant_id: str
    customer_id: str
    email_hash: str | None
    sealed_email: str | None  # `ce1:...`: opens only through UnsealEmail


def open_consumer(bootstrap: str, group: str) -> Consumer:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,  # commit after the customer was handled
        }
    )
    consumer.subscribe([TOPIC])
    return consumer


def deserializer(registry_url: str) -> AvroDeserializer:
    """Decodes with the writer's schema, fetched from the registry by the id in each record."""
    return AvroDeserializer(SchemaRegistryClient({"url": registry_url}))


def decode(avro: AvroDeserializer, message: Message) -> CustomerCreated:
    record: dict[str, Any] = avro(message.value(), SerializationContext(message.topic(), MessageField.VALUE))
    return CustomerCreated(
        event_id=str(record["event_id"]),
        merchant_id=str(record["merchant_id"]),
        customer_id=str(record["customer_id"]),
        email_hash=record.get("email_hash"),
        sealed_email=record.get("email"),
    )


async def unseal(stub: CoreServiceStub, token: str, event: CustomerCreated) -> str | None:
    """The plaintext email, or None when the customer was erased (or the event carries none).
    Any other refusal (no permission, a bad token) is raised: fix the credentials, do not skip."""
    if not event.sealed_email:
        return None
    request = pb.UnsealEmailRequest(
        merchant_id=event.merchant_id, customer_id=event.customer_id, sealed_email=event.sealed_email
    )
    try:
        reply = await stub.UnsealEmail(request, metadata={"authorization": f"Bearer {token}"}, timeout=5)
    except GRPCError as exc:
        if exc.status == Status.FAILED_PRECONDITION:  # erased (GDPR): never mail this customer
            return None
        raise
    return str(reply.email)


async def run(args: argparse.Namespace) -> None:
    consumer = open_consumer(args.bootstrap, args.group)
    avro = deserializer(args.registry)
    host, port = args.core.rsplit(":", 1)
    channel = Channel(host, int(port))
    stub = CoreServiceStub(channel)
    try:
        while True:
            message = await asyncio.to_thread(consumer.poll, 1.0)
            if message is None:
                continue
            if message.error():
                print(f"consumer error: {message.error()}")
                continue
            event = decode(avro, message)
            email = await unseal(stub, args.token, event)
            # A real consumer sends its welcome mail here; the example only says what it would do.
            print(f"{event.customer_id}: {'would mail' if email else 'erased or no email: skipped'}")
            consumer.commit(message=message, asynchronous=False)
    finally:
        channel.close()
        consumer.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--registry", default="http://127.0.0.1:8081")
    parser.add_argument("--core", default="127.0.0.1:50051", help="host:port of Core's gRPC")
    parser.add_argument("--token", required=True, help="JWT with admin:customers:view and customers:read_pii")
    parser.add_argument("--group", default="campaign-example")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
