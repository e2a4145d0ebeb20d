"""Plain HTTP calls to a test worker's REST and GraphQL routes (no security layer)."""

from __future__ import annotations

import aiohttp

from tests.support.processes import WorkerProcess

THRESHOLDS = {
    "recency": {"min": 7, "max": 90},
    "frequency": {"min": 1, "max": 10},
    "monetary": {"min": 50, "max": 2500},
}


async def call(worker: WorkerProcess, method: str, path: str, **kwargs: object) -> tuple[int, dict]:
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, f"{worker.url}{path}", **kwargs) as response,
    ):
        return response.status, await response.json()


async def post_customer(worker: WorkerProcess, body: object) -> tuple[int, dict]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{worker.url}/core/v1/customers", json=body) as response,
    ):
        return response.status, await response.json()


async def graphql(worker: WorkerProcess, query: str, variables: dict) -> dict:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{worker.url}/graphql", json={"query": query, "variables": variables}) as response,
    ):
        assert response.status == 200, await response.text()
        return await response.json()
