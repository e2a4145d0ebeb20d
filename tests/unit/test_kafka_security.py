"""The Kafka security settings and the client options built from them (core_app/kafka_security.py);
the clients against real TLS and SASL fronts are in tests/integration/test_kafka_security.py."""

from __future__ import annotations

import ssl
from pathlib import Path

import faust
import pytest
from pydantic import SecretStr

from core_app.devtools.tls import write_dev_ca
from core_app.kafka_security import client_options, faust_credentials, security_options
from core_app.settings import ConfigError, Settings, load_settings


def test_plaintext_by_default() -> None:
    settings = Settings(kafka_broker="kafka://b1:9092,b2:9092")
    assert client_options(settings) == {
        "bootstrap_servers": ["b1:9092", "b2:9092"],
        "security_protocol": "PLAINTEXT",
    }
    assert faust_credentials(settings) is None


def test_ssl_gives_a_verifying_context_to_every_client(tmp_path: Path) -> None:
    files = write_dev_ca(tmp_path)
    settings = Settings(kafka_security_protocol="SSL", kafka_ssl_cafile=files.ca)
    options = security_options(settings)
    context = options["ssl_context"]
    assert options["security_protocol"] == "SSL" and "sasl_mechanism" not in options
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert security_options(settings)["ssl_context"] is context  # one context, shared
    credentials = faust_credentials(settings)
    assert isinstance(credentials, faust.SSLCredentials) and credentials.context is context


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_ssl_carries_the_mechanism_and_credentials(tmp_path: Path, mechanism: str) -> None:
    files = write_dev_ca(tmp_path)
    settings = Settings(
        kafka_security_protocol="SASL_SSL",
        kafka_ssl_cafile=files.ca,
        kafka_sasl_mechanism=mechanism,
        kafka_sasl_username="svc",
        kafka_sasl_password=SecretStr("pw"),
    )
    options = security_options(settings)
    assert options["sasl_mechanism"] == mechanism
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("svc", "pw")
    credentials = faust_credentials(settings)
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.protocol.value == "SASL_SSL" and credentials.mechanism.value == mechanism
    assert credentials.ssl_context is options["ssl_context"]


def test_sasl_plaintext_has_no_tls_context() -> None:
    settings = Settings(
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_username="svc",
        kafka_sasl_password=SecretStr("pw"),
    )
    assert "ssl_context" not in security_options(settings)
    credentials = faust_credentials(settings)
    assert isinstance(credentials, faust.SASLCredentials) and credentials.protocol.value == "SASL_PLAINTEXT"


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"),
        ({"KAFKA_SECURITY_PROTOCOL": "TLS"}, "KAFKA_SECURITY_PROTOCOL"),
        ({"KAFKA_SASL_MECHANISM": "GSSAPI"}, "KAFKA_SASL_MECHANISM"),
        ({"KAFKA_SSL_CAFILE": "/nonexistent/ca.pem"}, "KAFKA_SSL_CAFILE: Value error, no such file"),
        ({"KAFKA_SSL_CERTFILE": "__file__"}, "KAFKA_SSL_CERTFILE and KAFKA_SSL_KEYFILE go together"),
    ],
)
def test_bad_kafka_security_settings_are_named(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], says: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, __file__ if value == "__file__" else value)
    with pytest.raises(ConfigError) as error:
        load_settings()
    assert says in str(error.value)


def test_the_sasl_password_is_never_printed() -> None:
    settings = Settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_username="svc",
        kafka_sasl_password=SecretStr("s3cr3t-pw"),
    )
    assert "s3cr3t-pw" not in repr(settings) and "s3cr3t-pw" not in repr(faust_credentials(settings))
