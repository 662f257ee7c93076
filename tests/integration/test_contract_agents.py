"""The contract kept for agents' statuses and the FIRST LINE routing options, over real gRPC,
PostgreSQL and Redis: signing out while holding conversations, a custom status named alone,
skills relaxed when no skilled agent is online, and the customer told the agent is busy."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import TypeVar

import asyncpg
import pytest
from google.protobuf import duration_pb2, field_mask_pb2
from google.rpc import error_details_pb2
from usher.client import AdminClient, AgentClient, FailedPrecondition, GatewayClient
from usher.v1 import admin_service_pb2 as pb
from usher.v1 import agent_pb2, conversation_pb2, queue_pb2, tenant_pb2
from usher.v1 import agent_service_pb2 as agent_pb
from usher.v1 import conversation_service_pb2 as gw

from tests.integration.api_kit import Running, running

T = "acme"
WAIT = 10.0  # a safety net against hangs, never an assertion about speed
X = TypeVar("X")


@dataclass
class Desk:
    api: Running
    admin: AdminClient
    gateway: GatewayClient
    stack: AsyncExitStack

    async def agent(self, agent_id: str, *, skills: dict[str, int] | None = None) -> AgentClient:
        """Create the agent, sign it in and return its console."""
        await self.admin.create_agent(
            pb.CreateAgentRequest(
                agent_id=agent_id,
                agent=agent_pb2.Agent(
                    display_name=agent_id.title(),
                    capacity=2,
                    skills=[
                        agent_pb2.SkillLevel(skill=f"skills/{s}", level=n)
                        for s, n in (skills or {}).items()
                    ],
                ),
            )
        )
        token = await self.api.token(T, "agent", agent_id)
        console = await self.stack.enter_async_context(AgentClient(self.api.target, token))
        await console.set_status(agent_pb.SetStatusRequest(status=agent_pb2.AGENT_STATUS_ONLINE))
        return console

    async def settings(self, settings: tenant_pb2.TenantSettings, *paths: str) -> None:
        await self.admin.update_tenant_settings(
            pb.UpdateTenantSettingsRequest(
                settings=settings, update_mask=field_mask_pb2.FieldMask(paths=list(paths))
            )
        )

    async def start(self, customer: str, queue: str = "support", language: str = "") -> str:
        started = await self.gateway.start_conversation(
            gw.StartConversationRequest(
                channel="webchat",
                customer=conversation_pb2.CustomerIdentity(external_id=customer),
                queue=f"queues/{queue}",
                language=language,
                first_message=gw.CustomerMessage(text="hello"),
            )
        )
        return started.conversation.name


@pytest.fixture
async def desk(pool: asyncpg.Pool, redis_url: str) -> AsyncIterator[Desk]:
    async with running(pool, redis_url, with_core=True) as api, AsyncExitStack() as stack:
        admin = await stack.enter_async_context(
            AdminClient(api.target, await api.token(T, "admin"))
        )
        gateway = await stack.enter_async_context(
            GatewayClient(api.target, await api.token(T, "gateway"))
        )
        long = duration_pb2.Duration(seconds=3600)
        await admin.create_queue(
            pb.CreateQueueRequest(queue_id="support", queue=queue_pb2.Queue(offer_timeout=long))
        )
        yield Desk(api, admin, gateway, stack)


async def first(events: AsyncIterable[X], pick: Callable[[X], bool]) -> X:
    async def scan() -> X:
        async for event in events:
            if pick(event):
                return event
        raise AssertionError("the stream ended")

    return await asyncio.wait_for(scan(), WAIT)


async def take(console: AgentClient, conversation: str) -> None:
    await console.take_conversation(agent_pb.TakeConversationRequest(conversation=conversation))


async def status_of(desk: Desk, agent_id: str) -> agent_pb2.Agent:
    return (await desk.admin.get_agent(pb.GetAgentRequest(name=f"agents/{agent_id}"))).agent


# --- signing out -------------------------------------------------------------------------------


async def test_signing_out_while_holding_conversations_is_refused(desk: Desk) -> None:
    ann = await desk.agent("ann")
    conversation = await desk.start("kim")
    await take(ann, conversation)

    with pytest.raises(FailedPrecondition) as refused:
        await ann.set_status(agent_pb.SetStatusRequest(status=agent_pb2.AGENT_STATUS_OFFLINE))

    assert refused.value.reason == "HOLDING_CONVERSATIONS"
    info = refused.value.detail(error_details_pb2.ErrorInfo)
    assert info is not None
    assert info.metadata["conversations"] == conversation.removeprefix("conversations/")
    assert (await status_of(desk, "ann")).status == agent_pb2.AGENT_STATUS_ONLINE
    read = await ann.get_conversation(agent_pb.GetConversationRequest(name=conversation))
    assert read.conversation.owner == "agents/ann"
    assert read.conversation.state == conversation_pb2.CONVERSATION_STATE_ACTIVE


async def test_signing_out_while_holding_conversations_hands_them_back_when_the_tenant_says_so(
    desk: Desk,
) -> None:
    requeue = tenant_pb2.TenantSettings(
        sign_out_with_conversations=tenant_pb2.SIGN_OUT_POLICY_REQUEUE
    )
    await desk.settings(requeue, "sign_out_with_conversations")
    read = await desk.admin.get_tenant_settings(pb.GetTenantSettingsRequest())
    assert read.settings.sign_out_with_conversations == tenant_pb2.SIGN_OUT_POLICY_REQUEUE
    ann = await desk.agent("ann")
    conversation = await desk.start("kim")
    await take(ann, conversation)
    bob = await desk.agent("bob")
    bob_events = bob.events()

    signed_out = await ann.set_status(
        agent_pb.SetStatusRequest(status=agent_pb2.AGENT_STATUS_OFFLINE)
    )

    assert signed_out.agent.status == agent_pb2.AGENT_STATUS_OFFLINE
    assert signed_out.agent.load == 0
    offered = await first(
        bob_events,
        lambda e: e.WhichOneof("event") == "offer" and e.offer.conversation == conversation,
    )
    assert offered.offer.conversation == conversation
    await bob_events.aclose()


# --- custom statuses ---------------------------------------------------------------------------


async def test_a_custom_status_named_alone_takes_its_base_status(desk: Desk) -> None:
    statuses = tenant_pb2.TenantSettings(
        custom_statuses=[
            tenant_pb2.CustomStatus(name="at my desk", base=agent_pb2.AGENT_STATUS_ONLINE),
            tenant_pb2.CustomStatus(
                name="lunch", base=agent_pb2.AGENT_STATUS_BREAK, auto_reply="Back at 2pm"
            ),
        ]
    )
    await desk.settings(statuses, "custom_statuses")
    ann = await desk.agent("ann")

    for custom, base in (
        ("lunch", agent_pb2.AGENT_STATUS_BREAK),
        ("at my desk", agent_pb2.AGENT_STATUS_ONLINE),
    ):
        changed = await ann.set_status(agent_pb.SetStatusRequest(custom_status=custom))
        assert (changed.agent.status, changed.agent.custom_status) == (base, custom)
        assert (await status_of(desk, "ann")).status == base


# --- relaxed skills by presence ----------------------------------------------------------------


async def test_relaxed_skills_offer_to_other_online_agents_when_no_skilled_agent_is_online(
    desk: Desk,
) -> None:
    await desk.admin.create_skill(pb.CreateSkillRequest(skill_id="billing"))
    created = await desk.admin.create_queue(
        pb.CreateQueueRequest(
            queue_id="billing",
            queue=queue_pb2.Queue(
                requirements=[queue_pb2.SkillRequirement(skill="skills/billing", min_level=5)],
                relax_when_none_online=True,
                offer_timeout=duration_pb2.Duration(seconds=3600),
            ),
        )
    )
    assert created.queue.relax_when_none_online
    read = await desk.admin.get_queue(pb.GetQueueRequest(name="queues/billing"))
    assert read.queue.relax_when_none_online
    generalist = await desk.agent("gene")
    events = generalist.events()

    conversation = await desk.start("kim", queue="billing")

    offered = await first(events, lambda e: e.WhichOneof("event") == "offer")
    assert offered.offer.conversation == conversation
    await events.aclose()
    # the queue is served by the other online agents too: one may read and take it
    gil = await desk.agent("gil")
    seen = await gil.get_conversation(agent_pb.GetConversationRequest(name=conversation))
    assert seen.conversation.state == conversation_pb2.CONVERSATION_STATE_OFFERED
    taken = await gil.take_conversation(agent_pb.TakeConversationRequest(conversation=conversation))
    assert taken.conversation.owner == "agents/gil"


# --- the agent-idle message to the customer ----------------------------------------------------


async def test_agent_idle_tells_the_customer_the_agent_is_busy_when_the_tenant_says_so(
    desk: Desk,
) -> None:
    busy = conversation_pb2.SYSTEM_MESSAGE_KIND_AGENT_BUSY
    settings = tenant_pb2.TenantSettings(
        agent_idle_notify=duration_pb2.Duration(seconds=1),
        agent_idle_tell_customer=True,
        system_messages=[
            tenant_pb2.SystemMessageText(language="zh-Hant", kind=busy, text="專員正在忙碌中")
        ],
    )
    await desk.settings(
        settings, "agent_idle_notify", "agent_idle_tell_customer", "system_messages"
    )
    read = await desk.admin.get_tenant_settings(pb.GetTenantSettingsRequest())
    assert read.settings.agent_idle_tell_customer
    ann = await desk.agent("ann")
    outbound = desk.gateway.events(channel="webchat")
    conversation = await desk.start("kim", language="zh-Hant")
    await take(ann, conversation)  # the customer's first message now waits for ann's answer

    told = await first(
        outbound,
        lambda i: i.WhichOneof("item") == "system_message" and i.system_message.kind == busy,
    )

    assert told.conversation == conversation
    assert (told.system_message.text, told.system_message.language) == ("專員正在忙碌中", "zh-Hant")
    await outbound.aclose()
