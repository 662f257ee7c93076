"""Error details over real gRPC, through the SDK: on every service a malformed request answers
INVALID_ARGUMENT with a ``BadRequest`` naming the field, a missing resource NOT_FOUND with a
``ResourceInfo`` naming it, and neither echoes oversized input nor leaks a bug's text."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
from google.rpc import error_details_pb2
from usher.client import (
    AdminClient,
    AgentClient,
    GatewayClient,
    Internal,
    InvalidArgument,
    NotFound,
    SupervisorClient,
    UsherError,
)
from usher.v1 import admin_service_pb2 as admin_pb
from usher.v1 import (
    agent_pb2,
    agent_service_pb2,
    conversation_pb2,
    conversation_service_pb2,
    supervisor_service_pb2,
)

from core.api.errors import INTERNAL_MESSAGE, MAX_QUOTED
from core.store.admin import AdminStore
from tests.integration.api_kit import Running, running

T = "acme"


@dataclass
class Clients:
    gateway: GatewayClient
    agent: AgentClient
    supervisor: SupervisorClient
    admin: AdminClient


@pytest.fixture
async def api(pool: asyncpg.Pool, redis_url: str) -> AsyncIterator[Running]:
    async with running(pool, redis_url, with_core=True) as r:
        yield r


@pytest.fixture
async def clients(api: Running) -> AsyncIterator[Clients]:
    async with AdminClient(api.target, await api.token(T, "admin")) as admin:
        # the first write configures the tenant's routing state
        await admin.create_agent(
            admin_pb.CreateAgentRequest(
                agent_id="ann", agent=agent_pb2.Agent(display_name="Ann", capacity=2)
            )
        )
        async with (
            GatewayClient(api.target, await api.token(T, "gateway")) as gateway,
            AgentClient(api.target, await api.token(T, "agent", "ann")) as agent,
            SupervisorClient(api.target, await api.token(T, "supervisor")) as supervisor,
        ):
            yield Clients(gateway, agent, supervisor, admin)


async def refused(call: Awaitable[Any], kind: type[UsherError]) -> UsherError:
    with pytest.raises(kind) as failed:
        await call
    return failed.value


async def bad_field(call: Awaitable[Any]) -> str:
    """The one field the INVALID_ARGUMENT answer to ``call`` names."""
    error = await refused(call, InvalidArgument)
    bad = error.detail(error_details_pb2.BadRequest)
    assert bad is not None, f"no BadRequest in {error}"
    [violation] = bad.field_violations
    assert violation.description
    return violation.field


async def missing(call: Awaitable[Any]) -> tuple[str, str]:
    """(resource type, resource name) of the NOT_FOUND answer to ``call``."""
    error = await refused(call, NotFound)
    info = error.detail(error_details_pb2.ResourceInfo)
    assert info is not None, f"no ResourceInfo in {error}"
    return info.resource_type, info.resource_name


async def test_conversation_service(clients: Clients) -> None:
    start = conversation_service_pb2.StartConversationRequest(
        channel="whatsapp", customer=conversation_pb2.CustomerIdentity(name="Kim")
    )
    assert await bad_field(clients.gateway.start_conversation(start)) == "customer.external_id"
    post = conversation_service_pb2.PostCustomerMessageRequest(
        conversation="conversations/nope", text="hi"
    )
    assert await missing(clients.gateway.post_customer_message(post)) == (
        "usher.v1.Conversation",
        "conversations/nope",
    )


async def test_agent_service(clients: Clients) -> None:
    accept = agent_service_pb2.AcceptOfferRequest
    assert await bad_field(clients.agent.accept_offer(accept(offer="offers/"))) == "offer"
    assert await missing(clients.agent.accept_offer(accept(offer="offers/gone"))) == (
        "usher.v1.Offer",
        "offers/gone",
    )


async def test_supervisor_service(clients: Clients) -> None:
    monitor = supervisor_service_pb2.MonitorConversationRequest
    assert await bad_field(clients.supervisor.monitor_conversation(monitor(conversation="c1"))) == (
        "conversation"
    )
    # refused by the engine (a shard Failure whose details name conversation_id)
    assert await missing(
        clients.supervisor.monitor_conversation(monitor(conversation="conversations/nope"))
    ) == ("usher.v1.Conversation", "conversations/nope")


async def test_admin_service(clients: Clients) -> None:
    create = admin_pb.CreateAgentRequest(agent_id="no spaces", agent=agent_pb2.Agent(capacity=1))
    assert await bad_field(clients.admin.create_agent(create)) == "agent_id"
    assert await missing(clients.admin.get_agent(admin_pb.GetAgentRequest(name="agents/eve"))) == (
        "usher.v1.Agent",
        "agents/eve",
    )
    # refused by the engine: the queue requires a skill that does not exist
    queue = admin_pb.CreateQueueRequest(queue_id="vip")
    queue.queue.requirements.add(skill="skills/cantonese", min_level=1)
    assert await missing(clients.admin.create_queue(queue)) == (
        "usher.v1.Skill",
        "skills/cantonese",
    )


async def test_oversized_input_is_not_echoed(clients: Clients) -> None:
    huge = "conversations/" + "x" * 5000
    post = conversation_service_pb2.PostCustomerMessageRequest(conversation=huge, text="hi")
    error = await refused(clients.gateway.post_customer_message(post), InvalidArgument)
    assert "x" * MAX_QUOTED not in error.message and len(error.message) < 200
    assert all("x" * MAX_QUOTED not in d.value.decode(errors="replace") for d in error.details)


async def test_a_bug_is_internal_without_its_text(
    clients: Clients, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(self: AdminStore, tenant: str, agent_id: str) -> None:
        raise RuntimeError("password=hunter2 in /srv/usher")

    monkeypatch.setattr(AdminStore, "agent", broken)
    error = await refused(
        clients.admin.get_agent(admin_pb.GetAgentRequest(name="agents/ann")), Internal
    )
    assert error.message == INTERNAL_MESSAGE
    assert error.status is not None and b"hunter2" not in error.status.SerializeToString()
    info = error.detail(error_details_pb2.ErrorInfo)
    assert info is not None and info.metadata["error_id"]
