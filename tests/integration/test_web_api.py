"""The API in browsers (core.api.web, core.api.connect_bridge) over real HTTP with httpx: CORS
preflights answered for an allowed origin and refused for another; Connect and gRPC-Web calls
relayed to the real gRPC server with the same authentication, validation and error details;
plain gRPC sent away. (The TypeScript SDK's Node tests cover streams and every transport.)"""

from __future__ import annotations

import base64
import struct
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from google.rpc import error_details_pb2, status_pb2
from usher.v1 import admin_service_pb2 as admin_pb

from core.api.web import WebOptions
from tests.integration.api_kit import Running, running

ALLOWED = "https://console.example.com"
T = "webapi"


@pytest.fixture
async def served(pool: asyncpg.Pool, redis_url: str) -> AsyncIterator[Running]:
    async with running(
        pool, redis_url, with_core=True, web=WebOptions(port=0, cors_origins=(ALLOWED,))
    ) as served:
        yield served


def url(served: Running, path: str) -> str:
    assert served.server.web is not None
    return f"{served.server.web.url}{path}"


LIST_QUEUES = "/usher.v1.AdminService/ListQueues"
CREATE_QUEUE = "/usher.v1.AdminService/CreateQueue"


async def test_cors_preflight_is_answered_for_an_allowed_origin_only(served: Running) -> None:
    asked = {
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization,content-type,connect-protocol-version",
    }
    async with httpx.AsyncClient() as http:
        allowed = await http.options(url(served, LIST_QUEUES), headers={"origin": ALLOWED, **asked})
        other = await http.options(
            url(served, LIST_QUEUES), headers={"origin": "https://evil.example", **asked}
        )
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == ALLOWED
    assert "authorization" in allowed.headers["access-control-allow-headers"]
    assert "POST" in allowed.headers["access-control-allow-methods"]
    assert other.status_code == 400
    assert "access-control-allow-origin" not in other.headers


async def test_connect_unary_with_the_same_auth_and_errors(served: Running) -> None:
    token = await served.token(T, "admin")
    bearer = {"authorization": f"Bearer {token}", "origin": ALLOWED}
    async with httpx.AsyncClient() as http:
        listed = await http.post(url(served, LIST_QUEUES), json={}, headers=bearer)
        anonymous = await http.post(url(served, LIST_QUEUES), json={}, headers={"origin": ALLOWED})
        refused = await http.post(
            url(served, CREATE_QUEUE),
            json={"queueId": "not valid!", "queue": {"displayName": "x"}},
            headers=bearer,
        )
    assert listed.status_code == 200, listed.text
    assert listed.json() == {}  # no queues yet: proto3 JSON leaves the empty list out
    assert listed.headers["access-control-allow-origin"] == ALLOWED
    assert anonymous.status_code == 401
    assert anonymous.json()["code"] == "unauthenticated"
    assert refused.status_code == 400
    body = refused.json()
    assert body["code"] == "invalid_argument"
    details = {d["type"]: base64.b64decode(d["value"] + "==") for d in body["details"]}
    bad = error_details_pb2.BadRequest.FromString(details["google.rpc.BadRequest"])
    assert [v.field for v in bad.field_violations] == ["queue_id"]
    info = error_details_pb2.ErrorInfo.FromString(details["google.rpc.ErrorInfo"])
    assert (info.reason, info.domain) == ("INVALID_ARGUMENT", "usher.v1")


def frames(body: bytes) -> list[tuple[int, bytes]]:
    """gRPC-Web's length-prefixed frames: (flags, payload)."""
    found = []
    while body:
        flags, size = struct.unpack(">BI", body[:5])
        found.append((flags, body[5 : 5 + size]))
        body = body[5 + size :]
    return found


def trailers(payload: bytes) -> dict[str, str]:
    lines = payload.decode().strip().split("\r\n")
    return {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}


async def test_grpc_web_unary_and_its_error_details(served: Running) -> None:
    token = await served.token(T, "admin")
    headers = {
        "authorization": f"Bearer {token}",
        "content-type": "application/grpc-web+proto",
        "x-grpc-web": "1",
    }
    request = admin_pb.CreateQueueRequest(queue_id="not valid!")
    async with httpx.AsyncClient() as http:
        listed = await http.post(
            url(served, LIST_QUEUES),
            content=b"\0" + struct.pack(">I", 0),
            headers=headers,
        )
        body = request.SerializeToString()
        refused = await http.post(
            url(served, CREATE_QUEUE),
            content=b"\0" + struct.pack(">I", len(body)) + body,
            headers=headers,
        )
    assert listed.status_code == 200
    (data_flags, data), (end_flags, end) = frames(listed.content)
    assert (data_flags, end_flags) == (0, 0x80)
    assert admin_pb.ListQueuesResponse.FromString(data) == admin_pb.ListQueuesResponse()
    assert trailers(end)["grpc-status"] == "0"

    status_fields = trailers(frames(refused.content)[-1][1])
    assert status_fields["grpc-status"] == "3"  # INVALID_ARGUMENT
    packed = base64.b64decode(status_fields["grpc-status-details-bin"] + "==")
    status = status_pb2.Status.FromString(packed)
    bad = error_details_pb2.BadRequest()
    assert any(detail.Unpack(bad) for detail in status.details)
    assert [v.field for v in bad.field_violations] == ["queue_id"]


async def test_plain_grpc_belongs_on_the_grpc_port(served: Running) -> None:
    async with httpx.AsyncClient() as http:
        answer = await http.post(
            url(served, LIST_QUEUES),
            content=b"\0\0\0\0\0",
            headers={"content-type": "application/grpc"},
        )
    assert answer.status_code == 415
