"""Phase (c2) of bench/reads.py: the GraphQL customer query, as wrk sends it (bench/reads.lua with a
merchant id) and as the phase checks it once before (issue 21: GraphQL / bare aiohttp, >= 0.5)."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from bench.common import Worker

QUERY = (
    "query($m: ID!, $c: ID!) { getCustomer(merchant_id: $m, customer_id: $c)"
    " { id rfm_score metadata updated_at } }"
)


def wrk_arguments(ids_file: Path, merchant_id: str, threads: int) -> tuple[str, ...]:
    """bench/reads.lua's arguments for GraphQL queries of `merchant_id`'s ids, POSTed to /graphql."""
    return (str(ids_file), "/graphql", str(threads), merchant_id)


async def check_one_answer(worker: Worker, merchant_id: str, customer_id: str) -> None:
    """The query wrk sends, once: a 200 whose data is the customer (a GraphQL error is a 200 too)."""
    body = {"query": QUERY, "variables": {"m": merchant_id, "c": customer_id}}
    async with aiohttp.ClientSession() as http, http.post(f"{worker.url}/graphql", json=body) as response:
        answer = await response.json()
    found = (answer.get("data") or {}).get("getCustomer") or {}
    if response.status != 200 or answer.get("errors") or found.get("id") != customer_id:
        raise RuntimeError(f"(c2) GraphQL getCustomer did not answer it: {response.status} {answer}")
