"""The dev Schema Registry, driven by python-schema-registry-client (the client the service uses)."""

import json
import uuid

import aiohttp
import pytest
from schema_registry.client import AsyncSchemaRegistryClient
from schema_registry.client.errors import ClientError
from schema_registry.client.schema import AvroSchema

from core_app.schema_registry.run import start_registry
from core_app.settings import Settings
from tests.support.processes import free_port


def schema(*fields: dict, name: str = "Probe") -> AvroSchema:
    return AvroSchema({"type": "record", "name": name, "fields": list(fields)})


V1 = schema({"name": "a", "type": "int"})
V2 = schema({"name": "a", "type": "int"}, {"name": "b", "type": "string", "default": "x"})
BREAKING = schema({"name": "a", "type": "int"}, {"name": "c", "type": "string"})


@pytest.fixture
def subject() -> str:
    return f"probe-{uuid.uuid4().hex[:8]}-value"


async def test_register_lookup_fetch_and_evolve(registry_url: str, subject: str) -> None:
    client = AsyncSchemaRegistryClient(url=registry_url)
    first_id = await client.register(subject, V1)
    assert await AsyncSchemaRegistryClient(url=registry_url).register(subject, V1) == first_id

    found = await client.check_version(subject, V1)
    assert (found.schema_id, found.version) == (first_id, 1)
    assert (await client.get_by_id(first_id)).raw_schema == V1.raw_schema

    assert await client.test_compatibility(subject, V2) is True
    assert await client.test_compatibility(subject, BREAKING) is False
    second_id = await client.register(subject, V2)
    assert second_id != first_id
    latest = await client.get_schema(subject)
    assert (latest.schema_id, latest.version) == (second_id, 2)
    assert await client.get_versions(subject) == [1, 2]
    assert subject in await client.get_subjects()


async def test_incompatible_schema_is_refused_with_409(registry_url: str, subject: str) -> None:
    client = AsyncSchemaRegistryClient(url=registry_url)
    await client.register(subject, V1)
    with pytest.raises(ClientError) as caught:
        await client.register(subject, BREAKING)
    assert caught.value.http_code == 409
    assert await client.get_versions(subject) == [1]


async def test_none_compatibility_allows_breaking_change(registry_url: str, subject: str) -> None:
    client = AsyncSchemaRegistryClient(url=registry_url)
    await client.register(subject, V1)
    assert await client.update_compatibility("NONE", subject)
    assert await client.get_compatibility(subject) == "NONE"
    assert await client.register(subject, BREAKING) > 0


async def test_ids_are_stable_across_a_restart(settings: Settings, subject: str) -> None:
    port = free_port()
    runner = await start_registry(settings, "127.0.0.1", port)
    schema_id = await AsyncSchemaRegistryClient(url=f"http://127.0.0.1:{port}").register(subject, V1)
    await runner.cleanup()

    port = free_port()
    runner = await start_registry(settings, "127.0.0.1", port)
    try:
        client = AsyncSchemaRegistryClient(url=f"http://127.0.0.1:{port}")
        assert await client.register(subject, V1) == schema_id
        assert (await client.get_by_id(schema_id)).raw_schema == V1.raw_schema
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("not json", 42201),
        (json.dumps({"schema": 5}), 42201),
        (json.dumps({"schema": '{"type": "record"}'}), 42201),
        (json.dumps({"schema": "{}", "schemaType": "PROTOBUF"}), 42201),
    ],
)
async def test_bad_registration_gets_422_with_reason(
    registry_url: str, subject: str, body: str, code: int
) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{registry_url}/subjects/{subject}/versions", data=body) as response,
    ):
        payload = await response.json(content_type=None)
    assert response.status == 422
    assert payload["error_code"] == code
    assert payload["message"]


async def test_unknown_things_get_404(registry_url: str, subject: str) -> None:
    async with aiohttp.ClientSession() as http:
        for path, code in [
            (f"/subjects/{subject}/versions/latest", 40401),
            ("/schemas/ids/999999", 40403),
        ]:
            async with http.get(registry_url + path) as response:
                assert response.status == 404
                assert (await response.json(content_type=None))["error_code"] == code
