"""Limits at the edge, over real gRPC: each input found unbounded or answered with internals is
refused INVALID_ARGUMENT with a ``BadRequest`` naming the field, a message that does not echo
the value, and nothing stored; a body that is not protobuf is INVALID_ARGUMENT too."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import grpc
import pytest
from google.protobuf import duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from usher.v1 import admin_service_pb2 as admin_pb
from usher.v1 import (
    admin_service_pb2_grpc,
    agent_pb2,
    agent_service_pb2,
    agent_service_pb2_grpc,
    conversation_pb2,
    conversation_service_pb2,
    conversation_service_pb2_grpc,
    queue_pb2,
)

from tests.integration.api_kit import Running, running

T = "acme"
cs = conversation_service_pb2


@dataclass
class Stubs:
    gateway: conversation_service_pb2_grpc.ConversationServiceAsyncStub
    agent: agent_service_pb2_grpc.AgentServiceAsyncStub
    admin: admin_service_pb2_grpc.AdminServiceAsyncStub
    channel: grpc.aio.Channel
    gateway_auth: tuple[tuple[str, str], ...]
    agent_auth: tuple[tuple[str, str], ...]
    admin_auth: tuple[tuple[str, str], ...]


@pytest.fixture
async def api(pool: asyncpg.Pool, redis_url: str) -> AsyncIterator[Running]:
    async with running(pool, redis_url, with_core=True) as r:
        yield r


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


@pytest.fixture
async def stubs(api: Running) -> AsyncIterator[Stubs]:
    async with grpc.aio.insecure_channel(api.target) as channel:
        s = Stubs(
            conversation_service_pb2_grpc.ConversationServiceStub(channel),
            agent_service_pb2_grpc.AgentServiceStub(channel),
            admin_service_pb2_grpc.AdminServiceStub(channel),
            channel,
            bearer(await api.token(T, "gateway")),
            bearer(await api.token(T, "agent", "ann")),
            bearer(await api.token(T, "admin")),
        )
        await s.admin.CreateAgent(
            admin_pb.CreateAgentRequest(
                agent_id="ann", agent=agent_pb2.Agent(display_name="Ann", capacity=2)
            ),
            metadata=s.admin_auth,
        )
        await s.admin.CreateQueue(
            admin_pb.CreateQueueRequest(queue_id="sales"), metadata=s.admin_auth
        )
        yield s


async def stored(pool: asyncpg.Pool) -> tuple[int, ...]:
    counts = []
    for table in ("events", "messages", "customers", "queues", "agents"):
        counts.append(await pool.fetchval(f"SELECT count(*) FROM {table}"))
    return tuple(counts)


async def refused(call: Awaitable[Any]) -> tuple[grpc.aio.AioRpcError, status_pb2.Status]:
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await call
    error = failed.value
    raw = dict(error.trailing_metadata() or ()).get("grpc-status-details-bin")
    assert raw is not None, f"{error.code()} without details: {error.details()}"
    return error, status_pb2.Status.FromString(raw)


def violations(status: status_pb2.Status) -> dict[str, str]:
    for detail in status.details:
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            return {v.field: v.description for v in bad.field_violations}
    raise AssertionError("no BadRequest")


def start(**fields: Any) -> conversation_service_pb2.StartConversationRequest:
    request = cs.StartConversationRequest(
        channel="sms", customer=conversation_pb2.CustomerIdentity(external_id="kim")
    )
    for name, value in fields.items():
        if isinstance(value, list):
            getattr(request, name).extend(value)
        else:
            setattr(request, name, value)
    return request


HUGE = "x" * 1_000_000


def _attachments(n: int) -> conversation_service_pb2.StartConversationRequest:
    request = start()
    for _ in range(n):
        request.first_message.attachments.add(name="f", uri="https://example.test/f")
    return request


def _send_time(seconds: int) -> conversation_service_pb2.StartConversationRequest:
    request = start()
    request.first_message.text = "hi"
    request.first_message.send_time.seconds = seconds
    return request


def _customer(**fields: str) -> conversation_service_pb2.StartConversationRequest:
    request = start()
    for name, value in fields.items():
        setattr(request.customer, name, value)
    return request


STARTS: list[tuple[str, conversation_service_pb2.StartConversationRequest, str]] = [
    ("10k tags", start(tags=[f"t{i}" for i in range(10_000)]), "tags"),
    ("a 1M-character tag", start(tags=[HUGE]), "tags[0]"),
    ("an empty tag", start(tags=[""]), "tags[0]"),
    ("a NUL in a tag", start(tags=["a\x00b"]), "tags[0]"),
    ("a 1 MB region", start(region=HUGE), "region"),
    ("a long request id", start(request_id="r" * 300), "request_id"),
    ("10k attachments", _attachments(10_000), "first_message.attachments"),
    ("priority 2^31-1", start(priority=2**31 - 1), "priority"),
    ("priority -2^31", start(priority=-(2**31)), "priority"),
    ("an invalid language", start(language="not a language"), "language"),
    ("an underscore language", start(language="en_US"), "language"),
    ("a NUL in a queue name", start(queue="queues/a\x00b"), "queue"),
    ("a 10k queue name", start(queue="queues/" + "q" * 10_000), "queue"),
    ("a NUL in a channel", start(channel="s\x00ms"), "channel"),
    ("a time before 1970", _send_time(-(10**11)), "first_message.send_time"),
    ("a time after 2199", _send_time(10**11), "first_message.send_time"),
    ("a display name of 1M", _customer(name=HUGE), "customer.name"),
    ("a phone not E.164", _customer(phone="12345"), "customer.phone"),
    ("an e-mail without @", _customer(email="kim.example.com"), "customer.email"),
]


@pytest.mark.parametrize(("case", "request_", "field"), STARTS, ids=[c[0] for c in STARTS])
async def test_start_conversation_limits(
    stubs: Stubs, pool: asyncpg.Pool, case: str, request_: Any, field: str
) -> None:
    before = await stored(pool)
    error, status = await refused(
        stubs.gateway.StartConversation(request_, metadata=stubs.gateway_auth)
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, case
    assert field in violations(status)
    assert len(status.SerializeToString()) < 4096, "the answer echoes the input"
    assert "xxxxxxxxxx" not in (error.details() or "")
    assert await stored(pool) == before


async def test_a_valid_start_passes(stubs: Stubs) -> None:
    request = start(
        tags=["vip"], language="zh-Hant-HK", region="hk", priority=5, queue="queues/sales"
    )
    request.customer.phone = "+85291234567"
    request.customer.email = "kim@example.com"
    answer = await stubs.gateway.StartConversation(request, metadata=stubs.gateway_auth)
    assert answer.conversation.name.startswith("conversations/")


async def test_unknown_queue_stores_no_customer(stubs: Stubs, pool: asyncpg.Pool) -> None:
    before = await stored(pool)
    error, _ = await refused(
        stubs.gateway.StartConversation(start(queue="queues/none"), metadata=stubs.gateway_auth)
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert await stored(pool) == before


async def test_mark_read_status_99(stubs: Stubs) -> None:
    request = cs.MarkReadRequest(message="conversations/c/messages/1", status=99)  # type: ignore[arg-type]
    error, status = await refused(stubs.gateway.MarkRead(request, metadata=stubs.gateway_auth))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "status" in violations(status)


async def test_message_id_past_int64(stubs: Stubs) -> None:
    request = cs.MarkReadRequest(message=f"conversations/c/messages/{2**64}")
    error, status = await refused(stubs.gateway.MarkRead(request, metadata=stubs.gateway_auth))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "message" in violations(status)


ADMIN: list[tuple[str, Callable[[Stubs], Awaitable[Any]], str]] = [
    (
        "offer timeout of 10^12 s",
        lambda s: s.admin.CreateQueue(
            admin_pb.CreateQueueRequest(
                queue_id="slow",
                queue=queue_pb2.Queue(offer_timeout=duration_pb2.Duration(seconds=10**12)),
            ),
            metadata=s.admin_auth,
        ),
        "queue.offer_timeout",
    ),
    *[
        (
            f"capacity {value}",
            (
                lambda v: (
                    lambda s: s.admin.CreateAgent(
                        admin_pb.CreateAgentRequest(
                            agent_id="bob", agent=agent_pb2.Agent(capacity=v)
                        ),
                        metadata=s.admin_auth,
                    )
                )
            )(value),
            "agent.capacity",
        )
        for value in (float("nan"), float("inf"), 1e308)
    ],
    (
        "a 1M display name",
        lambda s: s.admin.CreateAgent(
            admin_pb.CreateAgentRequest(
                agent_id="bob", agent=agent_pb2.Agent(display_name=HUGE, capacity=1)
            ),
            metadata=s.admin_auth,
        ),
        "agent.display_name",
    ),
    (
        "a NUL in a resource name",
        lambda s: s.admin.GetAgent(
            admin_pb.GetAgentRequest(name="agents/a\x00"), metadata=s.admin_auth
        ),
        "name",
    ),
]


@pytest.mark.parametrize(("case", "call", "field"), ADMIN, ids=[c[0] for c in ADMIN])
async def test_admin_limits(
    stubs: Stubs, pool: asyncpg.Pool, case: str, call: Callable[[Stubs], Awaitable[Any]], field: str
) -> None:
    before = await stored(pool)
    error, status = await refused(call(stubs))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, case
    assert field in violations(status)
    assert await stored(pool) == before


async def test_agent_limits(stubs: Stubs) -> None:
    request = agent_service_pb2.SendMessageRequest(
        conversation="conversations/c", text="hi", canned_reply_id=HUGE
    )
    error, status = await refused(stubs.agent.SendMessage(request, metadata=stubs.agent_auth))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "canned_reply_id" in violations(status)


async def test_a_body_that_is_not_protobuf(stubs: Stubs) -> None:
    for method in (
        "/usher.v1.ConversationService/StartConversation",
        "/usher.v1.AdminService/CreateAgent",
    ):
        call = stubs.channel.unary_unary(
            method, request_serializer=lambda b: b, response_deserializer=lambda b: b
        )
        auth = stubs.admin_auth if "Admin" in method else stubs.gateway_auth
        error, status = await refused(call(b"\xff\xff\xff\xff not protobuf", metadata=auth))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert status.code == code_pb2.INVALID_ARGUMENT
        assert "Traceback" not in (error.details() or "")


async def test_the_server_keeps_serving(stubs: Stubs) -> None:
    await refused(stubs.gateway.StartConversation(start(tags=[HUGE]), metadata=stubs.gateway_auth))
    answer = await stubs.gateway.StartConversation(
        start(queue="queues/sales"), metadata=stubs.gateway_auth
    )
    assert answer.conversation.name
