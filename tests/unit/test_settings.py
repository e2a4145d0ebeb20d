import base64

import pytest

from core_app.settings import (
    DEV_EMAIL_ENCRYPTION_KEY,
    ConfigError,
    Settings,
    load_settings,
)


def test_defaults_work_on_a_dev_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("KAFKA_BROKER", "CORE_DB_URL", "REDIS_URL", "HTTP_PORT", "GRPC_PORT"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.kafka_bootstrap == ["127.0.0.1:9092"]
    assert settings.http_port == 8080
    assert settings.grpc_port == 50051
    assert settings.db_dsn == "postgresql://postgres@127.0.0.1:5432/core"
    assert settings.redis_dsn == "redis://127.0.0.1:6379/0"


def test_core_db_url_wins_over_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORE_DB_URL", "postgresql://u:p@db.internal:6543/core")
    monkeypatch.setenv("CORE_DB_HOST", "ignored")
    assert load_settings().db_dsn == "postgresql://u:p@db.internal:6543/core"


def test_password_is_url_quoted() -> None:
    settings = Settings(core_db_password="p@ss/word", core_db_url=None)
    assert "p%40ss%2Fword@" in settings.db_dsn


def test_broker_without_scheme_gets_kafka_scheme(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BROKER", "b1:9092,b2:9092")
    settings = load_settings()
    assert settings.kafka_broker.startswith("kafka://")
    assert settings.kafka_bootstrap == ["b1:9092", "b2:9092"]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("HTTP_PORT", "not-a-port"),
        ("GRPC_PORT", "70000"),
        ("KAFKA_BROKER", "http://broker:9092"),
        ("SCHEMA_REGISTRY_URL", "registry"),
        ("EMAIL_ENCRYPTION_KEY", "short"),
        ("CORE_ENV", "staging"),
    ],
)
def test_invalid_value_names_the_variable(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert name in message
    assert "\n" not in message


def test_production_refuses_dev_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORE_ENV", "production")
    monkeypatch.setenv("EMAIL_HASH_KEY", "x" * 40)
    monkeypatch.setenv("SHOPIFY_API_SECRET", "real-secret")
    monkeypatch.setenv("SHOPIFY_API_KEY", "real-client-id")
    monkeypatch.setenv("SHOPIFY_APP_URL", "https://core.example.com")
    monkeypatch.setenv("JWT_HS256_SECRET", "")
    monkeypatch.setenv("INTERNAL_TOKEN", "real-internal-token")
    monkeypatch.setenv("KEY_ENCRYPTION_KEY", base64.b64encode(b"k" * 32).decode())
    with pytest.raises(ConfigError, match="EMAIL_ENCRYPTION_KEY"):
        load_settings()
    monkeypatch.setenv("EMAIL_ENCRYPTION_KEY", "y" * 40)
    assert load_settings().email_encryption_key.get_secret_value() != DEV_EMAIL_ENCRYPTION_KEY


def test_secrets_do_not_leak_into_repr() -> None:
    assert DEV_EMAIL_ENCRYPTION_KEY not in repr(Settings())


@pytest.mark.parametrize("name", ["JWT_HS256_SECRET", "INTERNAL_TOKEN", "KEY_ENCRYPTION_KEY"])
def test_production_refuses_the_security_dev_secrets(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv("CORE_ENV", "production")
    real = {
        "EMAIL_ENCRYPTION_KEY": "y" * 40,
        "EMAIL_HASH_KEY": "x" * 40,
        "SHOPIFY_API_SECRET": "real-secret",
        "SHOPIFY_API_KEY": "real-client-id",
        "SHOPIFY_APP_URL": "https://core.example.com",
        "JWT_HS256_SECRET": "",
        "INTERNAL_TOKEN": "real-internal-token",
        "KEY_ENCRYPTION_KEY": base64.b64encode(b"k" * 32).decode(),
    }
    for key, value in real.items():
        if key != name:
            monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError, match=name):
        load_settings()
    monkeypatch.setenv(name, real[name])
    monkeypatch.setenv("AUTH_ENABLED", "false")
    with pytest.raises(ConfigError, match="AUTH_ENABLED"):
        load_settings()
    monkeypatch.setenv("AUTH_ENABLED", "true")
    assert load_settings().auth_enabled


@pytest.mark.parametrize(
    ("name", "value"), [("KEY_ENCRYPTION_KEY", "c2hvcnQ="), ("TRUSTED_PROXIES", "10.0.0.0/8,not-a-cidr")]
)
def test_invalid_security_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name):
        load_settings()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SHOPIFY_API_KEY", "dev-shopify-key"),
        ("SHOPIFY_SHOP_URL", "http://127.0.0.1:9300/shops/{shop}"),
        ("SHOPIFY_APP_URL", "http://core.example.com"),
    ],
)
def test_production_refuses_the_shopify_dev_settings(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv("CORE_ENV", "production")
    for key, real in {
        "EMAIL_ENCRYPTION_KEY": "y" * 40,
        "EMAIL_HASH_KEY": "x" * 40,
        "SHOPIFY_API_SECRET": "real-secret",
        "SHOPIFY_API_KEY": "real-client-id",
        "SHOPIFY_APP_URL": "https://core.example.com",
        "JWT_HS256_SECRET": "",
        "INTERNAL_TOKEN": "real-internal-token",
        "KEY_ENCRYPTION_KEY": base64.b64encode(b"k" * 32).decode(),
    }.items():
        monkeypatch.setenv(key, real)
    assert load_settings().shop_url("a.myshopify.com") == "https://a.myshopify.com"
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name):
        load_settings()


@pytest.mark.parametrize(
    ("name", "value"),
    [("SHOPIFY_SHOP_URL", "http://no-placeholder"), ("SHOPIFY_SCOPES", "read_customers,oops")],
)
def test_bad_shopify_settings_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name):
        load_settings()


def test_a_redis_cluster_has_database_0_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_CLUSTER", "true")
    monkeypatch.setenv("REDIS_URL", "redis://node-1:7000/0")
    assert load_settings().redis_cluster
    monkeypatch.setenv("REDIS_URL", "redis://node-1:7000/2")
    with pytest.raises(ConfigError, match="REDIS_CLUSTER"):
        load_settings()


@pytest.mark.parametrize(("name", "value"), [("AUTH_FAILURE_LIMIT", "-1"), ("AUTH_FAILURE_WINDOW", "0")])
def test_bad_failure_limits_name_the_variable(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name):
        load_settings()
