"""Kafka over TLS and SASL: every client the service makes goes through core_app/kafka_security.py.

TLS is terminated by stunnel in front of Tansu with a CA made in the test (Tansu 0.6.0 serves no
TLS itself); SASL by tests/support/sasl_front.py, since Tansu 0.6.0's SASL cannot be provisioned
(D216, D217). What is proven is the service's client side: its workers and tools connect, check the
broker's certificate against KAFKA_SSL_CAFILE, and authenticate with PLAIN and SCRAM-SHA-256/512;
a plaintext client, a client trusting another CA, a wrong password and a client without SASL fail.
"""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from pydantic import SecretStr

from core_app.devtools.tls import write_dev_ca
from core_app.end_offsets import EndOffsetProbe
from core_app.events.codec import EventCodec
from core_app.kafka_security import client_options, ssl_context
from core_app.settings import Settings
from core_app.topics import ensure_topics
from tests.support.events import at, customer_rows, insert_customers, new_merchant, produce, rfm
from tests.support.processes import eventually, start_worker, stop_process, wait_ready
from tests.support.secure_kafka import SecureBroker, running_secure_tansu

USERS = {"svc-plain": "plain-secret", "svc-256": "scram-256-secret", "svc-512": "scram-512-secret"}
MECHANISM_USERS = {"PLAIN": "svc-plain", "SCRAM-SHA-256": "svc-256", "SCRAM-SHA-512": "svc-512"}


@pytest.fixture(scope="module")
def tls_broker(data_root: Path) -> Iterator[SecureBroker]:
    with running_secure_tansu(data_root / "kafka-tls") as broker:
        yield broker


@pytest.fixture(scope="module")
def sasl_broker(data_root: Path) -> Iterator[SecureBroker]:
    with running_secure_tansu(data_root / "kafka-sasl", tls=False, sasl_users=USERS) as broker:
        yield broker


def secured(settings: Settings, broker: SecureBroker, **overrides: Any) -> Settings:
    # Partitions as worker_env's, so topics made here suit the workers started on the same broker.
    update: dict[str, Any] = {"kafka_broker": broker.url, "kafka_topic_partitions": 4}
    if broker.tls is not None:
        update |= {"kafka_security_protocol": "SSL", "kafka_ssl_cafile": broker.tls.ca}
    return settings.model_copy(update=update | overrides)


def sasl(settings: Settings, broker: SecureBroker, mechanism: str, password: str | None = None) -> Settings:
    user = MECHANISM_USERS[mechanism]
    protocol = "SASL_SSL" if broker.tls is not None else "SASL_PLAINTEXT"
    return secured(
        settings,
        broker,
        kafka_security_protocol=protocol,
        kafka_sasl_mechanism=mechanism,
        kafka_sasl_username=user,
        kafka_sasl_password=SecretStr(password or USERS[user]),
    )


async def round_trip(settings: Settings, topic: str, values: list[bytes]) -> list[bytes]:
    """Produce `values` to `topic` and read them back, both clients built from `settings`."""
    producer = AIOKafkaProducer(**client_options(settings))
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, partition=0)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        **client_options(
            settings, auto_offset_reset="earliest", enable_auto_commit=False, fetch_max_wait_ms=100
        )
    )
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, 0)])
        got: list[bytes] = []

        async def all_read() -> bool:
            batch = await consumer.getmany(timeout_ms=500)
            got.extend(r.value for records in batch.values() for r in records)
            return len(got) >= len(values)

        await eventually(all_read, timeout=20, interval=0)
        return got
    finally:
        await consumer.stop()


async def refused(**options: Any) -> KafkaError:
    producer = AIOKafkaProducer(**options, request_timeout_ms=5000)
    with pytest.raises(KafkaError) as failure:
        await producer.start()
    await producer.stop()
    return failure.value


async def test_tls_clients_connect_with_the_ca(settings: Settings, tls_broker: SecureBroker) -> None:
    tls = secured(settings, tls_broker)
    await ensure_topics(tls)  # the admin client over TLS
    topic = f"tls-{uuid.uuid4().hex[:8]}"
    assert await round_trip(tls, topic, [b"a", b"b", b"c"]) == [b"a", b"b", b"c"]
    probe = EndOffsetProbe(client_options(tls))
    try:
        partition = TopicPartition(topic, 0)
        assert await probe.confirm({partition: 1}) == {partition: 3}  # read to the end over TLS
    finally:
        await probe.close()


async def test_a_plaintext_client_is_refused_by_the_tls_port(tls_broker: SecureBroker) -> None:
    await refused(bootstrap_servers=tls_broker.url.removeprefix("kafka://"))


async def test_a_client_trusting_another_ca_is_refused(
    settings: Settings, tls_broker: SecureBroker, tmp_path: Path
) -> None:
    other = write_dev_ca(tmp_path / "other-ca", name="another CA")
    distrusting = secured(settings, tls_broker, kafka_ssl_cafile=other.ca)
    await refused(**client_options(distrusting))
    # Refused for the certificate, not for anything else: the same context's handshake says why.
    port = int(tls_broker.url.rsplit(":", 1)[1])
    with pytest.raises(ssl.SSLCertVerificationError):
        await asyncio.open_connection("127.0.0.1", port, ssl=ssl_context(distrusting))


@pytest.mark.parametrize("mechanism", sorted(MECHANISM_USERS))
async def test_sasl_clients_authenticate(
    settings: Settings, sasl_broker: SecureBroker, mechanism: str
) -> None:
    assert sasl_broker.sasl is not None
    topic = f"sasl-{mechanism.lower()}-{uuid.uuid4().hex[:6]}"
    assert await round_trip(sasl(settings, sasl_broker, mechanism), topic, [b"x"]) == [b"x"]
    assert (mechanism, MECHANISM_USERS[mechanism]) in sasl_broker.sasl.authenticated


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-512"])
async def test_a_wrong_sasl_password_is_refused(
    settings: Settings, sasl_broker: SecureBroker, mechanism: str
) -> None:
    assert sasl_broker.sasl is not None
    before = len(sasl_broker.sasl.refused)
    await refused(**client_options(sasl(settings, sasl_broker, mechanism, password="not-it")))
    reasons = sasl_broker.sasl.refused[before:]
    assert reasons and all("authentication failed" in reason for reason in reasons), reasons


async def test_a_client_without_sasl_is_refused(sasl_broker: SecureBroker) -> None:
    assert sasl_broker.sasl is not None
    before = len(sasl_broker.sasl.refused)
    await refused(bootstrap_servers=sasl_broker.url.removeprefix("kafka://"))
    reasons = sasl_broker.sasl.refused[before:]
    assert reasons and all("before authentication" in reason for reason in reasons), reasons


def worker_security_env(broker: SecureBroker, mechanism: str | None = None) -> dict[str, str]:
    env = {"KAFKA_BROKER": broker.url}
    if broker.tls is not None:
        env |= {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CAFILE": str(broker.tls.ca)}
    if mechanism is not None:
        user = MECHANISM_USERS[mechanism]
        protocol = "SASL_SSL" if broker.tls is not None else "SASL_PLAINTEXT"
        env |= {
            "KAFKA_SECURITY_PROTOCOL": protocol,
            "KAFKA_SASL_MECHANISM": mechanism,
            "KAFKA_SASL_USERNAME": user,
            "KAFKA_SASL_PASSWORD": USERS[user],
        }
    return env


async def worker_processes_an_event(
    settings: Settings,
    codec: EventCodec,
    worker_env: dict[str, str],
    security: dict[str, str],
    client: Settings,
) -> None:
    """A worker on the secured broker consumes an event into its table and its sink writes PostgreSQL:
    Faust's consumer and producer, the sink's consumer and the health probe all connected."""
    worker = start_worker(f"worker-{uuid.uuid4().hex[:6]}", worker_env | security)
    try:
        await wait_ready(worker)
        merchant_id = new_merchant(settings)
        [(customer_id, _email)] = insert_customers(settings, merchant_id, 1)
        producer = AIOKafkaProducer(**client_options(client))
        await producer.start()
        try:
            await produce(producer, codec, [rfm(merchant_id, customer_id, (5, 4, 3), at(1))])
        finally:
            await producer.stop()

        async def in_postgres() -> bool:
            return customer_rows(settings, merchant_id)[customer_id]["version"] == 1

        await eventually(in_postgres, timeout=60)
        async with aiohttp.ClientSession() as http, http.get(f"{worker.url}/health") as response:
            assert response.status == 200, await response.text()
    finally:
        stop_process(worker.process)


async def test_a_worker_works_over_tls(
    settings: Settings, codec: EventCodec, worker_env: dict[str, str], tls_broker: SecureBroker
) -> None:
    security = worker_security_env(tls_broker)
    await worker_processes_an_event(settings, codec, worker_env, security, secured(settings, tls_broker))
    # The CLI tools connect alike: `core dlq list` reads the dead-letter topic over TLS.
    listed = subprocess.run(
        [sys.executable, "-m", "core_app", "dlq", "list"],
        env=worker_env | security,
        capture_output=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr.decode()[-2000:]


async def test_a_worker_works_over_sasl_ssl_with_scram(
    settings: Settings, codec: EventCodec, worker_env: dict[str, str], data_root: Path
) -> None:
    with running_secure_tansu(data_root / "kafka-sasl-ssl", tls=True, sasl_users=USERS) as broker:
        assert broker.sasl is not None
        security = worker_security_env(broker, "SCRAM-SHA-512")
        client = sasl(settings, broker, "SCRAM-SHA-512")
        await worker_processes_an_event(settings, codec, worker_env, security, client)
        assert len([a for a in broker.sasl.authenticated if a == ("SCRAM-SHA-512", "svc-512")]) >= 3
        assert not any("before authentication" in reason for reason in broker.sasl.refused)
