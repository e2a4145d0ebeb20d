"""gRPC `ListCustomers`: the list use case as a server stream, page after page (bulk sync)."""

from __future__ import annotations

from typing import Any

from google.protobuf.struct_pb2 import Struct
from grpclib.server import Stream

from core_app.domain.customer_query import RANGE_PARAMS
from core_app.rpc.generated.core.v1 import core_pb2 as pb
from core_app.security.principal import Principal
from core_app.services import customer_list

STREAM_PAGE_SIZE = 250


def request_params(request: pb.ListCustomersRequest) -> dict[str, Any]:
    """The request as the use case's parameters (empty strings and unset optionals are absent)."""
    f = request.filter
    raw: dict[str, Any] = {
        "merchant_id": request.merchant_id,
        "limit": request.page_size or STREAM_PAGE_SIZE,
        "cursor": request.cursor or None,
        "fields": list(request.fields) or None,
        "include": list(request.include) or None,
    }
    for name in ("segment", "updated_since", "email", "tag"):
        if getattr(f, name):
            raw[name] = getattr(f, name)
    for name in (*RANGE_PARAMS, "redacted"):
        if f.HasField(name):
            raw[name] = getattr(f, name)
    return raw


def record(item: dict[str, Any], cursor: str) -> pb.CustomerRecord:
    message = pb.CustomerRecord(
        id=item["id"],
        merchant_id=item.get("merchant_id", ""),
        email=item.get("email") or "",
        version=item.get("version", 0),
        redacted=item.get("redacted", False),
        segment=item.get("segment", ""),
        created_at=item.get("created_at") or "",
        updated_at=item.get("updated_at") or "",
        cursor=cursor,
    )
    score = item.get("rfm_score")
    if score:
        message.rfm_score.CopyFrom(
            pb.RFMScore(recency=score["recency"], frequency=score["frequency"], monetary=score["monetary"])
        )
    if item.get("metadata"):
        metadata = Struct()
        metadata.update(item["metadata"])
        message.metadata.CopyFrom(metadata)
    return message


async def stream_customers(
    stream: Stream[pb.ListCustomersRequest, pb.CustomerRecord],
    deps: customer_list.ListDeps,
    principal: Principal | None,
) -> None:
    request = await stream.recv_message()
    assert request is not None
    raw = request_params(request)
    limit = max(request.max_records, 0)
    sent = 0
    while True:
        page = await customer_list.list_customers(deps, principal, raw, transport="grpc")
        for item in page.items:
            await stream.send_message(record(item, page.cursor_after(item["id"])))
            sent += 1
            if sent == limit:
                return
        if not page.has_more:
            return
        raw["cursor"] = page.next_cursor
