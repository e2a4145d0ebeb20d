"""The Kafka part of the service's settings: where the brokers are, the consumer group's timings,
and how every client encrypts and authenticates (core_app/kafka_security.py, D215). `Settings`
(core_app/settings.py) inherits it, so the variables are read and validated in one place."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class KafkaSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    # Kafka (Tansu in dev, a real cluster in production).
    kafka_broker: str = "kafka://127.0.0.1:9092"
    kafka_topic_partitions: int = Field(default=12, ge=1)
    kafka_replication_factor: int = Field(default=1, ge=1)
    kafka_fetch_max_wait_ms: int = Field(default=1500, ge=1, le=30000)
    # Records one consumer poll hands over (Faust's broker_max_poll_records, which it leaves unset:
    # then a poll over a backlog returned all that aiokafka had buffered at once). Five chunks of
    # batched delivery: a cap of one chunk cost ~20 % more CPU per event (D245).
    kafka_max_poll_records: int = Field(default=20_000, ge=1)
    # Bytes one fetch may bring per partition, for Faust's consumer and the fan-out's: what aiokafka
    # may hold buffered, per partition, before a poll takes it (D259): 262144 saves ~20-30 MiB in a
    # worker, its CPU cost is not settled. The sink keeps aiokafka's 1 MiB.
    kafka_max_partition_fetch_bytes: int = Field(default=1_048_576, ge=1024)  # aiokafka's
    kafka_session_timeout: float = Field(default=60.0, gt=0)
    kafka_rebalance_timeout: float = Field(default=60.0, gt=0)
    kafka_heartbeat_interval: float = Field(default=3.0, gt=0)
    kafka_producer_linger: float = Field(default=0.005, ge=0)
    kafka_group_instance_id: str = ""  # static group membership (KIP-345); k8s sets the pod name
    # Encryption and authentication of every Kafka client (core_app/kafka_security.py, D215).
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_ssl_cafile: Path | None = None  # PEM CA bundle the broker's certificate must chain to
    kafka_ssl_certfile: Path | None = None  # client certificate (mutual TLS), with KAFKA_SSL_KEYFILE
    kafka_ssl_keyfile: Path | None = None
    kafka_ssl_key_password: SecretStr | None = None
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    kafka_sasl_username: str = ""
    kafka_sasl_password: SecretStr = SecretStr("")

    @field_validator("kafka_broker")
    @classmethod
    def _broker_url(cls, value: str) -> str:
        first = value.split(";")[0].split(",")[0]
        if "://" not in first:
            value = "kafka://" + value
        parts = urlsplit(value.split(";")[0].split(",")[0])
        if parts.scheme not in {"kafka", "aiokafka"} or not parts.hostname:
            raise ValueError("expected kafka://host:port[,host:port...]")
        return value

    @field_validator("kafka_ssl_cafile", "kafka_ssl_certfile", "kafka_ssl_keyfile")
    @classmethod
    def _readable_file(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"no such file: {value}")
        return value

    @model_validator(mode="after")
    def _kafka_security(self) -> KafkaSettings:
        if (self.kafka_ssl_certfile is None) != (self.kafka_ssl_keyfile is None):
            raise ValueError("KAFKA_SSL_CERTFILE and KAFKA_SSL_KEYFILE go together")
        if self.kafka_security_protocol.startswith("SASL_") and not (
            self.kafka_sasl_username and self.kafka_sasl_password.get_secret_value()
        ):
            raise ValueError(
                f"KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs "
                "KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"
            )
        return self

    @property
    def kafka_request_timeout(self) -> float:
        """Seconds a Kafka request may take, group joins included (Tansu's take ~30 s)."""
        return max(90.0, self.kafka_session_timeout + 30)

    @property
    def kafka_bootstrap(self) -> list[str]:
        """host:port list for clients that are not Faust (health probe, benches)."""
        hosts = self.kafka_broker.replace(";", ",").split(",")
        return [h.split("://", 1)[-1] for h in hosts if h]
