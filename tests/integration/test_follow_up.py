"""FollowUpService over real gRPC, PostgreSQL and Redis: left messages listed with a handled
flag, answered by an agent who then owns the conversation and whose reply reaches the gateway;
agent-started conversations with a known customer; the channel's reply window and the policy."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import TypeVar

import asyncpg
import pytest
from google.protobuf import duration_pb2, field_mask_pb2
from usher.client import (
    AdminClient,
    AgentClient,
    AlreadyExists,
    FailedPrecondition,
    FollowUpClient,
    GatewayClient,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from usher.v1 import admin_service_pb2 as pb
from usher.v1 import agent_pb2, conversation_pb2, queue_pb2, tenant_pb2
from usher.v1 import agent_service_pb2 as agent_pb
from usher.v1 import conversation_service_pb2 as gw
from usher.v1 import follow_up_service_pb2 as fu

from tests.integration.api_kit import Running, running

C = TypeVar("C", AdminClient, GatewayClient, FollowUpClient, AgentClient)
X = TypeVar("X")
T = "acme"
WAIT = 10.0  # a safety net against hangs, never an assertion about speed
ACTIVE = conversation_pb2.CONVERSATION_STATE_ACTIVE
CLOSED = conversation_pb2.CONVERSATION_STATE_CLOSED


@dataclass
class Desk:
    api: Running
    admin: AdminClient
    gateway: GatewayClient
    ann: AgentClient
    ann_follow: FollowUpClient
    bob_follow: FollowUpClient
    supervisor: FollowUpClient

    async def leave_message(self, wa_id: str, text: str) -> str:
        """A WhatsApp message to the closed queue: kept as a left message."""
        received = await self.gateway.receive_customer_message(
            gw.ReceiveCustomerMessageRequest(
                channel="whatsapp",
                customer=conversation_pb2.CustomerIdentity(external_id=wa_id, name="Kim"),
                message=gw.CustomerMessage(text=text, provider_message_id=f"w-{wa_id}-{text}"),
                start=gw.ConversationOptions(queue="queues/closed"),
            )
        )
        assert received.conversation.state == CLOSED
        assert received.conversation.close_reason == "left_message"
        return received.conversation.name

    async def customer_of(self, conversation: str) -> str:
        found: str = await self.api.pool.fetchval(
            "SELECT customer_id FROM conversations WHERE conversation_id = $1",
            conversation.removeprefix("conversations/"),
        )
        return found


@pytest.fixture
async def desk(pool: asyncpg.Pool, redis_url: str) -> AsyncIterator[Desk]:
    async with running(pool, redis_url, with_core=True) as api, AsyncExitStack() as stack:

        async def client(kind: type[C], role: str, agent_id: str | None = None) -> C:
            token = await api.token(T, role, agent_id)
            return await stack.enter_async_context(kind(api.target, token))

        admin = await client(AdminClient, "admin")
        await admin.create_skill(pb.CreateSkillRequest(skill_id="billing"))
        long = duration_pb2.Duration(seconds=3600)
        billing = [queue_pb2.SkillRequirement(skill="skills/billing", min_level=1)]
        await admin.create_queue(
            pb.CreateQueueRequest(queue_id="support", queue=queue_pb2.Queue(offer_timeout=long))
        )
        await admin.create_queue(
            pb.CreateQueueRequest(
                queue_id="closed",
                queue=queue_pb2.Queue(
                    offer_timeout=long,
                    requirements=billing,
                    business_hours=queue_pb2.BusinessHours(time_zone="UTC"),  # never open
                ),
            )
        )
        await admin.create_queue(
            pb.CreateQueueRequest(
                queue_id="billing", queue=queue_pb2.Queue(offer_timeout=long, requirements=billing)
            )
        )
        ann_skills = [agent_pb2.SkillLevel(skill="skills/billing", level=3)]
        await admin.create_agent(
            pb.CreateAgentRequest(
                agent_id="ann", agent=agent_pb2.Agent(capacity=5, skills=ann_skills)
            )
        )
        await admin.create_agent(
            pb.CreateAgentRequest(agent_id="bob", agent=agent_pb2.Agent(capacity=5))
        )
        ann = await client(AgentClient, "agent", "ann")
        bob = await client(AgentClient, "agent", "bob")
        for console in (ann, bob):
            await console.set_status(
                agent_pb.SetStatusRequest(status=agent_pb2.AGENT_STATUS_ONLINE)
            )
        yield Desk(
            api,
            admin,
            await client(GatewayClient, "gateway"),
            ann,
            await client(FollowUpClient, "agent", "ann"),
            await client(FollowUpClient, "agent", "bob"),
            await client(FollowUpClient, "supervisor"),
        )


async def first(events: AsyncIterable[X], pick: Callable[[X], bool]) -> X:
    async def scan() -> X:
        async for event in events:
            if pick(event):
                return event
        raise AssertionError("the stream ended")

    return await asyncio.wait_for(scan(), WAIT)


async def test_an_answered_left_message_is_the_agents_and_the_reply_reaches_the_customer(
    desk: Desk,
) -> None:
    """Out of hours too: the queue's hours hold customers back, not an agent answering."""
    conversation = await desk.leave_message("85290000001", "call me back")
    listed = await desk.ann_follow.list_left_messages(fu.ListLeftMessagesRequest())
    assert [x.conversation.name for x in listed.left_messages] == [conversation]
    assert not listed.left_messages[0].handled
    assert listed.left_messages[0].HasField("last_inbound_time")

    outbound = desk.gateway.events(channel="whatsapp", resume_after_event_id=1)  # replayed

    answered = await desk.ann_follow.answer_left_message(
        fu.AnswerLeftMessageRequest(conversation=conversation)
    )

    assert answered.conversation.name == conversation
    assert answered.conversation.state == ACTIVE
    assert answered.conversation.owner == "agents/ann"
    await desk.ann.send_message(
        agent_pb.SendMessageRequest(conversation=conversation, text="We called: how can we help?")
    )
    reply = await first(
        outbound,
        lambda item: (
            item.conversation == conversation
            and item.WhichOneof("item") == "message"
            and item.message.text == "We called: how can we help?"
        ),
    )
    assert reply.external_id == "85290000001"
    handled = await desk.api.pool.fetchval(
        "SELECT handled_by FROM left_messages_handled WHERE conversation_id = $1",
        conversation.removeprefix("conversations/"),
    )
    assert handled == "agents/ann"
    left = await desk.ann_follow.list_left_messages(fu.ListLeftMessagesRequest())
    assert list(left.left_messages) == []  # open again: no longer a left message


async def test_left_messages_list_unhandled_first_and_only_for_the_queues_agents(
    desk: Desk,
) -> None:
    older = await desk.leave_message("85290000001", "first")
    newer = await desk.leave_message("85290000002", "second")

    marked = await desk.ann_follow.mark_left_message_handled(
        fu.MarkLeftMessageHandledRequest(conversation=newer, handled=True)
    )

    assert marked.left_message.handled and marked.left_message.handler == "agents/ann"
    assert marked.left_message.HasField("handle_time")
    listed = await desk.supervisor.list_left_messages(fu.ListLeftMessagesRequest())
    assert [(x.conversation.name, x.handled) for x in listed.left_messages] == [
        (older, False),
        (newer, True),
    ]
    paged = await desk.supervisor.list_left_messages(fu.ListLeftMessagesRequest(page_size=1))
    assert [x.conversation.name for x in paged.left_messages] == [older]
    rest = await desk.supervisor.list_left_messages(
        fu.ListLeftMessagesRequest(page_size=1, page_token=paged.next_page_token)
    )
    assert [x.conversation.name for x in rest.left_messages] == [newer]
    assert rest.next_page_token == ""
    unhandled = await desk.ann_follow.list_left_messages(
        fu.ListLeftMessagesRequest(unhandled_only=True)
    )
    assert [x.conversation.name for x in unhandled.left_messages] == [older]
    cleared = await desk.supervisor.mark_left_message_handled(
        fu.MarkLeftMessageHandledRequest(conversation=newer, handled=False)
    )
    assert not cleared.left_message.handled

    # bob does not serve the queue (billing): he sees none and may mark none
    assert (
        list((await desk.bob_follow.list_left_messages(fu.ListLeftMessagesRequest())).left_messages)
        == []
    )
    with pytest.raises(PermissionDenied):
        await desk.bob_follow.mark_left_message_handled(
            fu.MarkLeftMessageHandledRequest(conversation=older, handled=True)
        )
    with pytest.raises(PermissionDenied):
        await desk.bob_follow.answer_left_message(fu.AnswerLeftMessageRequest(conversation=older))
    with pytest.raises(NotFound):
        await desk.supervisor.mark_left_message_handled(
            fu.MarkLeftMessageHandledRequest(conversation="conversations/nope", handled=True)
        )


async def test_left_messages_page_by_keyset_with_tokens_bound_to_the_list(desk: Desk) -> None:
    names = [await desk.leave_message(f"8529000010{i}", f"m{i}") for i in range(5)]
    newest_first = names[::-1]
    first = await desk.supervisor.list_left_messages(fu.ListLeftMessagesRequest(page_size=2))
    assert [x.conversation.name for x in first.left_messages] == newest_first[:2]
    # a message left meanwhile sorts before the position: no page repeats or skips a row
    arrived = await desk.leave_message("85290000199", "late")
    seen = [x.conversation.name for x in first.left_messages]
    token = first.next_page_token
    while token:
        page = await desk.supervisor.list_left_messages(
            fu.ListLeftMessagesRequest(page_size=2, page_token=token)
        )
        seen += [x.conversation.name for x in page.left_messages]
        token = page.next_page_token
    assert seen == newest_first
    again = await desk.supervisor.list_left_messages(fu.ListLeftMessagesRequest())
    assert [x.conversation.name for x in again.left_messages] == [arrived, *newest_first]

    # a token belongs to its list: another filter or another reader is refused
    with pytest.raises(InvalidArgument):
        await desk.supervisor.list_left_messages(
            fu.ListLeftMessagesRequest(unhandled_only=True, page_token=first.next_page_token)
        )
    with pytest.raises(InvalidArgument):
        await desk.ann_follow.list_left_messages(
            fu.ListLeftMessagesRequest(page_token=first.next_page_token)
        )
    with pytest.raises(InvalidArgument):
        await desk.supervisor.list_left_messages(fu.ListLeftMessagesRequest(page_token="10"))


async def test_whatsapp_outside_its_window_is_refused(desk: Desk) -> None:
    started = await desk.gateway.start_conversation(  # the customer never wrote
        gw.StartConversationRequest(
            request_id="s1",
            channel="whatsapp",
            customer=conversation_pb2.CustomerIdentity(external_id="85290000003"),
            queue="queues/support",
        )
    )
    await desk.gateway.leave_conversation(
        gw.LeaveConversationRequest(conversation=started.conversation.name)
    )
    customer = await desk.customer_of(started.conversation.name)

    with pytest.raises(FailedPrecondition) as refused:
        await desk.ann_follow.start_conversation_with_customer(
            fu.StartConversationWithCustomerRequest(
                customer=f"customers/{customer}", channel="whatsapp", queue="queues/support"
            )
        )

    assert refused.value.reason == "CHANNEL_WINDOW_CLOSED"


async def test_an_agent_starts_a_conversation_with_a_known_customer(desk: Desk) -> None:
    started = await desk.gateway.start_conversation(
        gw.StartConversationRequest(
            request_id="s1",
            channel="webchat",
            customer=conversation_pb2.CustomerIdentity(external_id="visitor-1", name="Lee"),
            queue="queues/support",
            first_message=gw.CustomerMessage(text="hello"),
        )
    )
    customer = f"customers/{await desk.customer_of(started.conversation.name)}"
    request = fu.StartConversationWithCustomerRequest(
        request_id="out-1", customer=customer, channel="webchat", queue="queues/support"
    )
    with pytest.raises(AlreadyExists):  # the customer's conversation is still open
        await desk.ann_follow.start_conversation_with_customer(request)
    await desk.gateway.leave_conversation(
        gw.LeaveConversationRequest(conversation=started.conversation.name)
    )

    mine = await desk.ann_follow.start_conversation_with_customer(request)
    again = await desk.ann_follow.start_conversation_with_customer(request)

    assert mine.conversation.owner == "agents/ann" and mine.conversation.state == ACTIVE
    assert mine.conversation.customer.external_id == "visitor-1"
    assert mine.conversation.customer.name == "Lee"
    assert "follow_up" in mine.conversation.tags
    assert again.conversation.name == mine.conversation.name
    offers = await desk.api.pool.fetchval(
        "SELECT count(*) FROM offers WHERE conversation_id = $1",
        mine.conversation.name.removeprefix("conversations/"),
    )
    assert offers == 0  # bob serves the queue too, and was never offered it


async def test_who_may_start_what(desk: Desk) -> None:
    started = await desk.gateway.start_conversation(
        gw.StartConversationRequest(
            request_id="s1",
            channel="webchat",
            customer=conversation_pb2.CustomerIdentity(external_id="visitor-2"),
            queue="queues/support",
        )
    )
    await desk.gateway.leave_conversation(
        gw.LeaveConversationRequest(conversation=started.conversation.name)
    )
    customer = f"customers/{await desk.customer_of(started.conversation.name)}"

    def start(**fields: str) -> fu.StartConversationWithCustomerRequest:
        defaults = {"customer": customer, "channel": "webchat", "queue": "queues/support"}
        return fu.StartConversationWithCustomerRequest(**{**defaults, **fields})

    with pytest.raises(PermissionDenied):  # bob does not serve billing
        await desk.bob_follow.start_conversation_with_customer(start(queue="queues/billing"))
    with pytest.raises(PermissionDenied):  # an agent starts for themselves
        await desk.bob_follow.start_conversation_with_customer(start(agent="agents/ann"))
    with pytest.raises(InvalidArgument):  # a supervisor names the agent
        await desk.supervisor.start_conversation_with_customer(start())
    with pytest.raises(NotFound):
        await desk.supervisor.start_conversation_with_customer(
            start(customer="customers/nobody", agent="agents/bob")
        )
    with pytest.raises(NotFound):  # no identity on that channel
        await desk.supervisor.start_conversation_with_customer(
            start(channel="line", agent="agents/bob")
        )

    await desk.admin.create_agent(
        pb.CreateAgentRequest(agent_id="cy", agent=agent_pb2.Agent(capacity=1))
    )
    conversations = await desk.api.pool.fetchval("SELECT count(*) FROM conversations")
    with pytest.raises(FailedPrecondition):  # cy is signed out
        await desk.supervisor.start_conversation_with_customer(start(agent="agents/cy"))
    assert await desk.api.pool.fetchval("SELECT count(*) FROM conversations") == conversations

    assigned = await desk.supervisor.start_conversation_with_customer(start(agent="agents/bob"))

    assert assigned.conversation.owner == "agents/bob"


async def test_a_left_message_the_engine_let_go_is_followed_up_in_a_new_conversation(
    desk: Desk,
) -> None:
    await desk.admin.update_tenant_settings(
        pb.UpdateTenantSettingsRequest(
            settings=tenant_pb2.TenantSettings(
                closed_retention=duration_pb2.Duration(nanos=200_000_000)
            ),
            update_mask=field_mask_pb2.FieldMask(paths=["closed_retention"]),
        )
    )
    conversation = await desk.leave_message("85290000004", "call me")

    async def forgotten() -> None:
        while not await desk.api.pool.fetchval(
            """SELECT count(*) FROM events WHERE type = 'ConversationForgotten'
               AND payload ->> 'conversation_id' = $1""",
            conversation.removeprefix("conversations/"),
        ):
            await asyncio.sleep(0.05)

    await asyncio.wait_for(forgotten(), WAIT)

    answered = await desk.ann_follow.answer_left_message(
        fu.AnswerLeftMessageRequest(conversation=conversation)
    )

    follow_up = answered.conversation
    assert follow_up.name != conversation
    assert follow_up.owner == "agents/ann" and follow_up.state == ACTIVE
    assert follow_up.channel == "whatsapp" and follow_up.customer.external_id == "85290000004"
    assert "follow_up" in follow_up.tags
    assert await desk.customer_of(follow_up.name) == await desk.customer_of(conversation)
    handled = await desk.ann_follow.list_left_messages(fu.ListLeftMessagesRequest())
    assert [(x.conversation.name, x.handled) for x in handled.left_messages] == [
        (conversation, True)
    ]
