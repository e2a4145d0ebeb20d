"""How every Kafka client of the service connects: TLS, SASL and the bootstrap servers (D215).

One place turns the KAFKA_SECURITY_PROTOCOL / KAFKA_SSL_* / KAFKA_SASL_* settings into aiokafka
keyword arguments (`client_options`) and into Faust's broker credentials (`faust_credentials`), so
the Faust consumer and producer, the sink, the fan-out, the dead-letter producer, imports, the
end-offset probe, the health probe, the CLI tools and the benches all connect alike. A client built
anywhere else would be the one left in plaintext.
"""

from __future__ import annotations

import ssl
from functools import lru_cache
from pathlib import Path
from typing import Any

import faust
from aiokafka.helpers import create_ssl_context

from core_app.settings import Settings


@lru_cache(maxsize=8)
def _context(
    cafile: Path | None, certfile: Path | None, keyfile: Path | None, key_password: str | None
) -> ssl.SSLContext:
    # aiokafka's helper: TLS 1.2+, hostname checked against the broker's certificate, the system CAs
    # when no cafile is given. One context per distinct file set, shared by every client.
    return create_ssl_context(cafile=cafile, certfile=certfile, keyfile=keyfile, password=key_password)


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context of SSL and SASL_SSL; None for the plaintext protocols."""
    if not settings.kafka_security_protocol.endswith("SSL"):
        return None
    password = settings.kafka_ssl_key_password
    return _context(
        settings.kafka_ssl_cafile,
        settings.kafka_ssl_certfile,
        settings.kafka_ssl_keyfile,
        password.get_secret_value() if password is not None else None,
    )


def security_options(settings: Settings) -> dict[str, Any]:
    """aiokafka keyword arguments for the configured protocol (no bootstrap servers)."""
    protocol = settings.kafka_security_protocol
    options: dict[str, Any] = {"security_protocol": protocol}
    context = ssl_context(settings)
    if context is not None:
        options["ssl_context"] = context
    if protocol.startswith("SASL_"):
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = settings.kafka_sasl_password.get_secret_value()
    return options


def client_options(settings: Settings, **extra: Any) -> dict[str, Any]:
    """Keyword arguments for an AIOKafkaProducer / AIOKafkaConsumer / AIOKafkaAdminClient /
    AIOKafkaClient: the bootstrap servers and the security options, plus `extra`."""
    return {"bootstrap_servers": settings.kafka_bootstrap, **security_options(settings), **extra}


def faust_credentials(settings: Settings) -> faust.SASLCredentials | faust.SSLCredentials | None:
    """Faust's `broker_credentials`: the same protocol for its consumer, producer and admin calls."""
    protocol = settings.kafka_security_protocol
    context = ssl_context(settings)
    if protocol.startswith("SASL_"):
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password.get_secret_value(),
            ssl_context=context,
            mechanism=settings.kafka_sasl_mechanism,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None
