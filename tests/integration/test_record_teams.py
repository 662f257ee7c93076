"""Departments and team visibility over real gRPC, PostgreSQL and Redis: the departments filter
of RecordService's lists, counts and exports, and the tenant setting that lets agents read
(never change) their department colleagues' conversations (``core.api.policy.Relation.TEAM``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest
from google.protobuf import duration_pb2, field_mask_pb2
from usher.client import (
    AdminClient,
    AgentClient,
    GatewayClient,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    RecordClient,
)
from usher.v1 import admin_service_pb2 as admin_pb
from usher.v1 import agent_pb2, conversation_pb2, queue_pb2, tenant_pb2
from usher.v1 import agent_service_pb2 as agent_svc
from usher.v1 import conversation_service_pb2 as gw
from usher.v1 import record_service_pb2 as pb

from tests.integration.api_kit import Running, running

T = "acme"
LONG = duration_pb2.Duration(seconds=3600)


@dataclass
class World:
    pool: asyncpg.Pool
    admin: AdminClient
    ann: RecordClient
    """In ``sales`` with bob; serves no queue of her own."""
    ann_agent: AgentClient
    cat: RecordClient
    """In ``support``."""
    supervisor: RecordClient
    bobs: str
    """Bob's (``sales``), active, queue ``bobs``."""
    cats: str
    """Cat's (``support``), active, queue ``support``."""
    waiting_sales: str
    """Queued in ``sales`` (designates the sales department); nobody online serves it."""
    moving: str
    """Bob's first, then transferred to the support department: it waits (QUEUED)."""


async def _start(gateway: GatewayClient, who: str, queue: str, text: str) -> str:
    started = await gateway.start_conversation(
        gw.StartConversationRequest(
            channel="webchat",
            customer=conversation_pb2.CustomerIdentity(external_id=who, name=who),
            queue=queue,
            first_message=gw.CustomerMessage(text=text),
        )
    )
    return started.conversation.name


async def _accept(pool: asyncpg.Pool, agent: AgentClient, conversation: str) -> None:
    offer_id = await pool.fetchval(
        "SELECT offer_id FROM offers WHERE tenant_id = $1 AND conversation_id = $2"
        " AND outcome IS NULL",
        T,
        conversation.removeprefix("conversations/"),
    )
    assert offer_id is not None, f"no live offer for {conversation}"
    await agent.accept_offer(agent_svc.AcceptOfferRequest(offer=f"offers/{offer_id}"))


async def _online(agent: AgentClient) -> None:
    await agent.set_status(agent_svc.SetStatusRequest(status=agent_pb2.AGENT_STATUS_ONLINE))


async def _away(agent: AgentClient) -> None:
    await agent.set_status(agent_svc.SetStatusRequest(status=agent_pb2.AGENT_STATUS_AWAY))


async def team_reads(admin: AdminClient, on: bool) -> None:
    await admin.update_tenant_settings(
        admin_pb.UpdateTenantSettingsRequest(
            settings=tenant_pb2.TenantSettings(agents_see_team_conversations=on),
            update_mask=field_mask_pb2.FieldMask(paths=["agents_see_team_conversations"]),
        )
    )


@pytest.fixture
async def api(pool: asyncpg.Pool, redis_url: str) -> AsyncIterator[Running]:
    async with running(pool, redis_url, with_core=True) as r:
        yield r


@pytest.fixture
async def world(api: Running) -> AsyncIterator[World]:
    async with AdminClient(api.target, await api.token(T, "admin")) as admin:
        for department in ("sales", "support"):
            await admin.create_department(
                admin_pb.CreateDepartmentRequest(department_id=department)
            )
        for agent_id, department in (("ann", "sales"), ("bob", "sales"), ("cat", "support")):
            await admin.create_agent(
                admin_pb.CreateAgentRequest(
                    agent_id=agent_id,
                    agent=agent_pb2.Agent(
                        display_name=agent_id,
                        capacity=3,
                        departments=[f"departments/{department}"],
                    ),
                )
            )
        for queue_id, queue in (
            ("bobs", queue_pb2.Queue(designated_agents=["agents/bob"], offer_timeout=LONG)),
            (
                "sales",
                queue_pb2.Queue(designated_departments=["departments/sales"], offer_timeout=LONG),
            ),
            (
                "support",
                queue_pb2.Queue(designated_departments=["departments/support"], offer_timeout=LONG),
            ),
        ):
            await admin.create_queue(admin_pb.CreateQueueRequest(queue_id=queue_id, queue=queue))
        async with (
            GatewayClient(api.target, await api.token(T, "gateway")) as gateway,
            AgentClient(api.target, await api.token(T, "agent", "bob")) as bob,
            AgentClient(api.target, await api.token(T, "agent", "cat")) as cat_agent,
            AgentClient(api.target, await api.token(T, "agent", "ann")) as ann_agent,
            RecordClient(api.target, await api.token(T, "agent", "ann")) as ann,
            RecordClient(api.target, await api.token(T, "agent", "cat")) as cat,
            RecordClient(api.target, await api.token(T, "supervisor")) as supervisor,
        ):
            await _online(bob)
            bobs = await _start(gateway, "kim", "queues/bobs", "where is my order")
            await _accept(api.pool, bob, bobs)
            moving = await _start(gateway, "lee", "queues/bobs", "move me")
            await _accept(api.pool, bob, moving)
            await _online(cat_agent)
            cats = await _start(gateway, "sam", "queues/support", "support secret")
            await _accept(api.pool, cat_agent, cats)
            # nobody takes what waits from here on
            await _away(cat_agent)
            await bob.request_transfer(
                agent_svc.RequestTransferRequest(
                    conversation=moving, department="departments/support"
                )
            )
            await _away(bob)
            waiting_sales = await _start(gateway, "joe", "queues/sales", "hello sales")
            yield World(
                api.pool,
                admin,
                ann,
                ann_agent,
                cat,
                supervisor,
                bobs,
                cats,
                waiting_sales,
                moving,
            )


async def _names(client: RecordClient, **filter_: object) -> set[str]:
    response = await client.list_conversations(
        pb.ListConversationsRequest(filter=pb.ConversationFilter(**filter_))  # type: ignore[arg-type]
    )
    return {r.conversation.name for r in response.conversations}


async def test_the_departments_filter_matches_owner_queue_and_transfer(world: World) -> None:
    s = world.supervisor
    state = await s.list_conversations(pb.ListConversationsRequest())
    states = {r.conversation.name: r.conversation.state for r in state.conversations}
    assert states[world.moving] == conversation_pb2.CONVERSATION_STATE_QUEUED
    assert states[world.waiting_sales] == conversation_pb2.CONVERSATION_STATE_QUEUED
    # sales: bob owns one (a member); one waits in the queue designating sales
    assert await _names(s, departments=["departments/sales"]) == {world.bobs, world.waiting_sales}
    # support: cat owns one; the transferred one waits for support (its queue is bob's)
    assert await _names(s, departments=["departments/support"]) == {world.cats, world.moving}
    both = await _names(s, departments=["departments/sales", "departments/support"])
    assert both == {world.bobs, world.waiting_sales, world.cats, world.moving}
    assert await _names(
        s,
        departments=["departments/support"],
        states=[conversation_pb2.CONVERSATION_STATE_QUEUED],
    ) == {world.moving}
    assert await _names(s, departments=["departments/nobody"]) == set()
    counted = await s.count_conversations(
        pb.CountConversationsRequest(departments=["departments/support"])
    )
    assert (counted.active, counted.waiting) == (1, 1)
    chunks = [
        c
        async for c in s.export_conversations(
            pb.ExportConversationsRequest(
                filter=pb.ConversationFilter(departments=["departments/sales"]),
                format=pb.EXPORT_FORMAT_CSV,
            )
        )
    ]
    rows = list(csv.reader(io.StringIO(b"".join(chunks).decode("utf-8-sig"))))
    exported = {f"conversations/{row[0]}" for row in rows[1:] if row}
    assert exported == {world.bobs, world.waiting_sales}


async def test_a_malformed_department_is_invalid(world: World) -> None:
    with pytest.raises(InvalidArgument):
        await _names(world.supervisor, departments=["teams/sales"])
    with pytest.raises(InvalidArgument):
        await world.supervisor.count_conversations(
            pb.CountConversationsRequest(departments=["sales"])
        )


async def test_team_reads_are_off_by_default(world: World) -> None:
    assert world.bobs not in await _names(world.ann)
    with pytest.raises(NotFound):
        await world.ann_agent.get_conversation(agent_svc.GetConversationRequest(name=world.bobs))
    with pytest.raises(NotFound):
        await world.ann.get_conversation_activity(
            pb.GetConversationActivityRequest(conversation=world.bobs)
        )
    counted = await world.ann.count_conversations(pb.CountConversationsRequest())
    assert counted.team == 0


async def test_team_reads_let_an_agent_read_a_colleagues_conversations(world: World) -> None:
    await team_reads(world.admin, True)
    settings = await world.admin.get_tenant_settings(admin_pb.GetTenantSettingsRequest())
    assert settings.settings.agents_see_team_conversations
    # ann (sales) reads bob's (sales): list, get, messages, activity, the team tab
    names = await _names(world.ann)
    assert world.bobs in names
    got = await world.ann_agent.get_conversation(agent_svc.GetConversationRequest(name=world.bobs))
    assert got.conversation.owner == "agents/bob"
    messages = await world.ann_agent.list_messages(agent_svc.ListMessagesRequest(parent=world.bobs))
    assert messages.messages[0].text == "where is my order"
    activity = await world.ann.get_conversation_activity(
        pb.GetConversationActivityRequest(conversation=world.bobs)
    )
    assert "started" in {e.kind for e in activity.entries}
    counted = await world.ann.count_conversations(pb.CountConversationsRequest())
    assert counted.team == 1  # bob's active one; the transferred one waits for support
    await world.ann.pin_conversation(pb.PinConversationRequest(conversation=world.bobs))
    # read only: no change to a colleague's conversation
    with pytest.raises(PermissionDenied):
        await world.ann_agent.send_message(
            agent_svc.SendMessageRequest(conversation=world.bobs, text="hi")
        )
    with pytest.raises(PermissionDenied):
        await world.ann_agent.update_tags(
            agent_svc.UpdateTagsRequest(conversation=world.bobs, add_tags=["vip"])
        )
    # another department's stays unseen
    assert world.cats not in names
    for read in (
        world.ann_agent.get_conversation(agent_svc.GetConversationRequest(name=world.cats)),
        world.ann_agent.list_messages(agent_svc.ListMessagesRequest(parent=world.cats)),
        world.ann.get_conversation_activity(
            pb.GetConversationActivityRequest(conversation=world.cats)
        ),
        world.ann.pin_conversation(pb.PinConversationRequest(conversation=world.cats)),
    ):
        with pytest.raises(NotFound):
            await read
    # cat (support) sees neither sales conversation
    cat_sees = await _names(world.cat)
    assert world.bobs not in cat_sees
    # turned off again, the team's are gone
    await team_reads(world.admin, False)
    assert world.bobs not in await _names(world.ann)
    with pytest.raises(NotFound):
        await world.ann_agent.get_conversation(agent_svc.GetConversationRequest(name=world.bobs))
