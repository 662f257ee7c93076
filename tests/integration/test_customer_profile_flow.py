"""The customer's profile travels with the conversation, over real gRPC, PostgreSQL and Redis
through the SDK: an offer shows it (fields, tags, groups, previous conversations, last agent);
a change to the customer reaches the agent's stream with no read; a block on the customer of an
open conversation shows on it and stops their messages reaching the agent (kept for the
record) until it is lifted."""

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
    BlocklistClient,
    CustomerClient,
    GatewayClient,
)
from usher.v1 import admin_service_pb2 as pb
from usher.v1 import agent_pb2, conversation_pb2, customer_pb2, queue_pb2
from usher.v1 import agent_service_pb2 as agent_pb
from usher.v1 import blocklist_service_pb2 as bl
from usher.v1 import conversation_service_pb2 as gw
from usher.v1 import customer_service_pb2 as cs

from tests.integration.api_kit import Running, running

C = TypeVar("C", AdminClient, GatewayClient, AgentClient, CustomerClient, BlocklistClient)
X = TypeVar("X")
T = "acme"
WA_ID = "85291234567"
WAIT = 10.0  # a safety net against hangs, never an assertion about speed


@dataclass
class Desk:
    api: Running
    gateway: GatewayClient
    ann: AgentClient
    customers: CustomerClient
    blocks: BlocklistClient

    async def write(self, key: str, text: str = "hi") -> gw.ReceiveCustomerMessageResponse:
        return await self.gateway.receive_customer_message(
            gw.ReceiveCustomerMessageRequest(
                channel="whatsapp",
                customer=conversation_pb2.CustomerIdentity(external_id=WA_ID, name="Kim"),
                message=gw.CustomerMessage(text=text, provider_message_id=key),
                start=gw.ConversationOptions(queue="queues/support"),
            )
        )

    async def update(self, customer: str, mask: list[str], **values: object) -> None:
        await self.customers.update_customer(
            cs.UpdateCustomerRequest(
                customer=customer_pb2.Customer(name=customer, **values),  # type: ignore[arg-type]
                update_mask=field_mask_pb2.FieldMask(paths=mask),
            )
        )


@pytest.fixture
async def desk(pool: asyncpg.Pool, redis_url: str) -> AsyncIterator[Desk]:
    async with running(pool, redis_url, with_core=True) as api, AsyncExitStack() as stack:

        async def client(kind: type[C], role: str, agent_id: str | None = None) -> C:
            token = await api.token(T, role, agent_id)
            return await stack.enter_async_context(kind(api.target, token))

        admin = await client(AdminClient, "admin")
        long = duration_pb2.Duration(seconds=3600)
        await admin.create_queue(
            pb.CreateQueueRequest(queue_id="support", queue=queue_pb2.Queue(offer_timeout=long))
        )
        await admin.create_agent(
            pb.CreateAgentRequest(agent_id="ann", agent=agent_pb2.Agent(capacity=5))
        )
        ann = await client(AgentClient, "agent", "ann")
        await ann.set_status(agent_pb.SetStatusRequest(status=agent_pb2.AGENT_STATUS_ONLINE))
        yield Desk(
            api,
            await client(GatewayClient, "gateway"),
            ann,
            await client(CustomerClient, "supervisor"),
            await client(BlocklistClient, "supervisor"),
        )


async def first(events: AsyncIterable[X], pick: Callable[[X], bool]) -> X:
    async def scan() -> X:
        async for event in events:
            if pick(event):
                return event
        raise AssertionError("the stream ended")

    return await asyncio.wait_for(scan(), WAIT)


def _offer(event: agent_pb.AgentEvent) -> bool:
    return event.WhichOneof("event") == "offer"


def _profile_change(event: agent_pb.AgentEvent) -> bool:
    return event.WhichOneof("event") == "customer_profile_changed"


def _message(event: agent_pb.AgentEvent) -> bool:
    return event.WhichOneof("event") == "message"


async def _serve(desk: Desk, conversation: str) -> None:
    """Ann takes the conversation's offer (from her stream) and ends it."""
    offer = await first(desk.ann.events(), lambda e: _offer(e) and e.conversation == conversation)
    await desk.ann.accept_offer(agent_pb.AcceptOfferRequest(offer=offer.offer.name))
    ended = await desk.ann.end_conversation(
        agent_pb.EndConversationRequest(
            conversation=conversation, outcome=conversation_pb2.OUTCOME_RESOLVED
        )
    )
    if ended.conversation.state == conversation_pb2.CONVERSATION_STATE_WRAP_UP:
        await desk.ann.finish_wrap_up(agent_pb.FinishWrapUpRequest(conversation=conversation))


async def test_an_offer_shows_the_customers_profile(desk: Desk) -> None:
    earlier = await desk.write("w1")
    customer = earlier.conversation.customer_profile.customer
    assert customer.startswith("customers/")
    assert earlier.conversation.customer_profile.previous_conversations == 0
    await _serve(desk, earlier.conversation.name)
    await desk.customers.create_custom_field(
        cs.CreateCustomFieldRequest(
            field_id="tier",
            field=customer_pb2.CustomField(
                display_name="Tier",
                type=customer_pb2.CUSTOM_FIELD_TYPE_SINGLE_CHOICE,
                choices=["gold", "silver"],
                enabled=True,
            ),
        )
    )
    await desk.customers.create_customer_group(
        cs.CreateCustomerGroupRequest(
            group_id="gold", group=customer_pb2.CustomerGroup(display_name="Gold members")
        )
    )
    await desk.customers.add_customer_group_members(
        cs.AddCustomerGroupMembersRequest(group="customerGroups/gold", customers=[customer])
    )
    await desk.update(
        customer,
        ["display_name", "tags", "fields.tier"],
        display_name="陳大文",
        tags=["vip"],
        fields={"tier": customer_pb2.CustomFieldValue(string_value="gold")},
    )
    stream = desk.ann.events()

    again = await desk.write("w2", "my order again")
    offer = await first(stream, lambda e: _offer(e) and e.conversation == again.conversation.name)

    profile = offer.offer.customer_profile
    assert profile.customer == customer and profile.display_name == "陳大文"
    assert [(f.key, f.label, f.value) for f in profile.fields] == [("tier", "Tier", "gold")]
    assert list(profile.tags) == ["vip"]
    assert [(g.group, g.display_name) for g in profile.groups] == [
        ("customerGroups/gold", "Gold members")
    ]
    assert profile.previous_conversations == 1 and profile.last_agent == "agents/ann"
    assert not profile.HasField("block")
    accepted = await desk.ann.accept_offer(agent_pb.AcceptOfferRequest(offer=offer.offer.name))
    assert accepted.conversation.customer_profile == profile


async def test_a_changed_customer_reaches_the_agents_stream_without_a_read(desk: Desk) -> None:
    written = await desk.write("w1")
    conversation = written.conversation.name
    customer = written.conversation.customer_profile.customer
    stream = desk.ann.events()
    offer = await first(stream, _offer)
    await desk.ann.accept_offer(agent_pb.AcceptOfferRequest(offer=offer.offer.name))

    await desk.update(customer, ["tags"], tags=["vip", "late payer"])
    changed = await first(stream, _profile_change)

    assert changed.conversation == conversation
    assert list(changed.customer_profile_changed.profile.tags) == ["vip", "late payer"]
    # an unrelated customer's change is not shown to Ann
    other = await desk.customers.create_customer(
        cs.CreateCustomerRequest(customer=customer_pb2.Customer(display_name="Someone"))
    )
    await desk.update(other.customer.name, ["tags"], tags=["x"])
    await desk.update(customer, ["tags"], tags=["vip"])
    nxt = await first(stream, _profile_change)
    assert list(nxt.customer_profile_changed.profile.tags) == ["vip"]


async def test_blocking_the_customer_of_an_open_conversation_stops_their_messages(
    desk: Desk,
) -> None:
    written = await desk.write("w1", "hello")
    conversation = written.conversation.name
    customer = written.conversation.customer_profile.customer
    stream = desk.ann.events()
    offer = await first(stream, _offer)
    await desk.ann.accept_offer(agent_pb.AcceptOfferRequest(offer=offer.offer.name))

    created = await desk.blocks.create_block(
        bl.CreateBlockRequest(block=bl.Block(customer=customer, reason="abusive"))
    )
    shown = await first(stream, _profile_change)
    posted = await desk.gateway.post_customer_message(
        gw.PostCustomerMessageRequest(
            conversation=conversation, text="you will regret", provider_message_id="w2"
        )
    )
    received = await desk.write("w3", "and again")

    block = shown.customer_profile_changed.profile.block
    assert (block.block, block.reason) == (created.block.name, "abusive")
    assert posted.blocked and not posted.HasField("message")
    assert received.blocked
    pool = desk.api.pool
    texts = await pool.fetch(
        "SELECT content FROM messages WHERE tenant_id = $1 AND sender = 'customer'"
        " ORDER BY message_id",
        T,
    )
    assert [r["content"] for r in texts] == ["hello"]
    kept = await pool.fetch(
        "SELECT content, conversation_id FROM blocked_messages WHERE tenant_id = $1"
        " ORDER BY blocked_message_id",
        T,
    )
    assert [r["content"] for r in kept] == ["you will regret", "and again"]
    assert kept[0]["conversation_id"] == conversation.removeprefix("conversations/")

    await desk.blocks.unblock(bl.UnblockRequest(name=created.block.name))
    lifted = await first(stream, _profile_change)
    assert not lifted.customer_profile_changed.profile.HasField("block")
    await desk.gateway.post_customer_message(
        gw.PostCustomerMessageRequest(
            conversation=conversation, text="sorry", provider_message_id="w4"
        )
    )
    message = await first(stream, _message)
    assert message.message.text == "sorry"  # the blocked ones never reached Ann's stream
