"""BlocklistService and the inbound check over real gRPC, PostgreSQL and Redis: a blocked
sender is acknowledged and kept for the record but starts no conversation and reaches no
agent; unblocking and expiry let the next message through; who may block what."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import TypeVar

import asyncpg
import pytest
from google.protobuf import duration_pb2, timestamp_pb2
from google.rpc import error_details_pb2
from usher.client import (
    AdminClient,
    AgentClient,
    BlocklistClient,
    GatewayClient,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from usher.v1 import admin_service_pb2 as pb
from usher.v1 import agent_pb2, conversation_pb2, queue_pb2
from usher.v1 import agent_service_pb2 as agent_pb
from usher.v1 import blocklist_service_pb2 as bl
from usher.v1 import conversation_service_pb2 as gw

from core.store.blocklist import Blocklist, Kind, sender_keys
from tests.integration.api_kit import Running, running

C = TypeVar("C", AdminClient, GatewayClient, BlocklistClient, AgentClient)
T = "acme"
PHONE = "+85291234567"


@dataclass
class Desk:
    api: Running
    pool: asyncpg.Pool
    admin: AdminClient
    gateway: GatewayClient
    supervisor: BlocklistClient
    ann: AgentClient
    ann_blocks: BlocklistClient

    async def whatsapp(
        self, wa_id: str, key: str, text: str = "hi", **identity: str
    ) -> gw.ReceiveCustomerMessageResponse:
        return await self.gateway.receive_customer_message(
            gw.ReceiveCustomerMessageRequest(
                channel="whatsapp",
                customer=conversation_pb2.CustomerIdentity(external_id=wa_id, **identity),
                message=gw.CustomerMessage(text=text, provider_message_id=key),
                start=gw.ConversationOptions(queue="queues/support"),
            )
        )

    async def count(self, table: str) -> int:
        found: int = await self.pool.fetchval(
            f"SELECT count(*) FROM {table} WHERE tenant_id = $1", T
        )
        return found


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
            pool,
            admin,
            await client(GatewayClient, "gateway"),
            await client(BlocklistClient, "supervisor"),
            ann,
            await client(BlocklistClient, "agent", "ann"),
        )


async def block(desk: Desk, ttl: float | None = None, **target: str) -> bl.Block:
    request = bl.CreateBlockRequest(block=bl.Block(reason="spam"))
    for field, value in target.items():
        setattr(request.block, field, value)
    if ttl is not None:
        request.ttl.FromMilliseconds(round(ttl * 1000))
    return (await desk.supervisor.create_block(request)).block


async def test_a_blocked_phone_is_acknowledged_kept_and_never_routed(desk: Desk) -> None:
    created = await block(desk, phone=PHONE)
    assert created.state == bl.BLOCK_STATE_ACTIVE and created.creator.startswith("credentials/")

    answer = await desk.whatsapp(PHONE.removeprefix("+"), "wamid-1", "buy now")
    again = await desk.whatsapp(PHONE.removeprefix("+"), "wamid-1", "buy now")  # redelivered

    assert answer.blocked and again.blocked
    assert not answer.HasField("conversation") and not answer.started
    assert await desk.count("conversations") == 0
    assert await desk.count("offers") == 0
    assert await desk.count("messages") == 0
    kept = await desk.pool.fetch(
        "SELECT block_id, channel, external_id, content FROM blocked_messages WHERE tenant_id = $1",
        T,
    )
    assert [tuple(r) for r in kept] == [
        (int(created.name.split("/")[1]), "whatsapp", PHONE.removeprefix("+"), "buy now")
    ]
    mine = await desk.ann.list_my_conversations(agent_pb.ListMyConversationsRequest())
    assert list(mine.conversations) == []


async def test_unblocking_lets_the_next_message_start_a_conversation(desk: Desk) -> None:
    created = await block(desk, phone=PHONE)
    assert (await desk.whatsapp("x1", "wamid-1", phone=PHONE)).blocked

    ended = await desk.supervisor.unblock(bl.UnblockRequest(name=created.name))
    assert ended.block.state == bl.BLOCK_STATE_UNBLOCKED
    assert ended.block.unblocker.startswith("credentials/") and ended.block.HasField("unblock_time")
    again = await desk.supervisor.unblock(bl.UnblockRequest(name=created.name))
    assert again.block.unblock_time == ended.block.unblock_time

    answer = await desk.whatsapp("x1", "wamid-2", phone=PHONE)
    assert not answer.blocked and answer.started
    assert answer.conversation.state in (
        conversation_pb2.CONVERSATION_STATE_OFFERED,
        conversation_pb2.CONVERSATION_STATE_QUEUED,
    )
    assert await desk.count("offers") == 1


async def test_a_block_expires_by_itself(desk: Desk) -> None:
    created = await block(desk, ttl=0.5, ip_address="203.0.113.7")
    assert created.HasField("expire_time")
    start = gw.StartConversationRequest(
        request_id="r1",
        channel="webchat",
        customer=conversation_pb2.CustomerIdentity(external_id="v1", ip_address="203.0.113.7"),
        queue="queues/support",
        first_message=gw.CustomerMessage(text="hello"),
    )
    assert (await desk.gateway.start_conversation(start)).blocked

    await asyncio.sleep(0.6)
    start.request_id = "r2"
    started = await desk.gateway.start_conversation(start)
    assert not started.blocked and started.conversation.name
    found = await desk.supervisor.get_block(bl.GetBlockRequest(name=created.name))
    assert found.block.state == bl.BLOCK_STATE_EXPIRED
    listed = await desk.supervisor.list_blocks(bl.ListBlocksRequest())
    assert list(listed.blocks) == []
    everything = await desk.supervisor.list_blocks(bl.ListBlocksRequest(show_inactive=True))
    assert [b.name for b in everything.blocks] == [created.name]


async def test_a_blocked_customer_writing_in_their_open_conversation_reaches_no_one(
    desk: Desk,
) -> None:
    first = await desk.whatsapp("85290000001", "wamid-1", email="Kim@Example.com")
    conversation = first.conversation.name
    customer = await desk.pool.fetchval(
        "SELECT customer_id FROM conversations WHERE tenant_id = $1", T
    )
    await block(desk, email="kim@example.COM")

    posted = await desk.gateway.post_customer_message(
        gw.PostCustomerMessageRequest(
            conversation=conversation, text="again", provider_message_id="m2"
        )
    )
    received = await desk.whatsapp("85290000001", "wamid-3", "and again", email="kim@example.com")

    assert posted.blocked and not posted.HasField("message")
    assert received.blocked
    texts = await desk.pool.fetch(
        "SELECT content FROM messages WHERE tenant_id = $1 AND sender = 'customer'", T
    )
    assert [r["content"] for r in texts] == ["hi"]
    kept = await desk.pool.fetch(
        "SELECT conversation_id, customer_id FROM blocked_messages ORDER BY blocked_message_id"
    )
    assert [tuple(r) for r in kept] == [
        (conversation.split("/")[1], customer),
        (None, customer),
    ]
    by_customer = await desk.supervisor.list_blocks(
        bl.ListBlocksRequest(customer=f"customers/{customer}")
    )
    assert list(by_customer.blocks) == []  # blocked by e-mail, not by customer id
    by_email = await desk.supervisor.list_blocks(bl.ListBlocksRequest(email="KIM@example.com"))
    assert [b.email for b in by_email.blocks] == ["kim@example.com"]


async def test_an_agent_blocks_the_customer_of_a_conversation_they_own(desk: Desk) -> None:
    first = await desk.whatsapp("85290000002", "wamid-1")
    conversation = first.conversation.name
    with pytest.raises(PermissionDenied):  # offered, not owned yet
        await desk.ann_blocks.create_block(bl.CreateBlockRequest(conversation=conversation))
    await desk.ann.take_conversation(agent_pb.TakeConversationRequest(conversation=conversation))

    created = await desk.ann_blocks.create_block(
        bl.CreateBlockRequest(conversation=conversation, block=bl.Block(reason="abusive"))
    )

    customer = await desk.pool.fetchval("SELECT customer_id FROM conversations")
    assert created.block.customer == f"customers/{customer}"
    assert created.block.creator == "agents/ann" and created.block.reason == "abusive"
    assert (await desk.whatsapp("85290000002", "wamid-2")).blocked
    with pytest.raises(PermissionDenied):
        await desk.ann_blocks.create_block(bl.CreateBlockRequest(block=bl.Block(phone=PHONE)))
    with pytest.raises(PermissionDenied):
        await desk.ann_blocks.list_blocks(bl.ListBlocksRequest())
    with pytest.raises(PermissionDenied):
        await desk.ann_blocks.unblock(bl.UnblockRequest(name=created.block.name))


async def test_bad_blocks_are_refused_and_change_nothing(desk: Desk) -> None:
    cases = {
        "block.phone": bl.CreateBlockRequest(block=bl.Block(phone="91234567")),
        "block.email": bl.CreateBlockRequest(block=bl.Block(email="nobody")),
        "block.ip_address": bl.CreateBlockRequest(block=bl.Block(ip_address="300.1.1.1")),
        "block.target": bl.CreateBlockRequest(block=bl.Block(reason="who?")),
        "block.expire_time": bl.CreateBlockRequest(
            block=bl.Block(phone=PHONE, expire_time=timestamp_pb2.Timestamp(seconds=1))
        ),
        "ttl": bl.CreateBlockRequest(
            block=bl.Block(phone=PHONE), ttl=duration_pb2.Duration(seconds=-5)
        ),
    }
    for field, request in cases.items():
        with pytest.raises(InvalidArgument) as refused:
            await desk.supervisor.create_block(request)
        violations = refused.value.detail(error_details_pb2.BadRequest)
        assert violations is not None, field
        assert [v.field for v in violations.field_violations] == [field], field
    with pytest.raises(NotFound):
        await block(desk, customer="customers/nobody")
    assert await desk.count("blocks") == 0


async def test_tenants_do_not_see_each_others_blocks(desk: Desk) -> None:
    created = await block(desk, phone=PHONE)
    token = await desk.api.token("other", "supervisor")
    async with BlocklistClient(desk.api.target, token) as other:
        with pytest.raises(NotFound):
            await other.get_block(bl.GetBlockRequest(name=created.name))
        with pytest.raises(NotFound):
            await other.unblock(bl.UnblockRequest(name=created.name))
        assert list((await other.list_blocks(bl.ListBlocksRequest())).blocks) == []


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_each_front_door_sees_another_doors_change_within_its_cache_lifetime(
    pool: asyncpg.Pool,
) -> None:
    await pool.execute("INSERT INTO tenants (tenant_id) VALUES ('acme')")
    clock = Clock()
    here, there = (Blocklist(pool, ttl=5.0, monotonic=clock) for _ in range(2))
    keys = sender_keys(customer_id=None, external_id="85291234567")
    assert await there.match(T, keys) is None  # cached: no blocks

    created = await here.create(
        T, Kind.PHONE, PHONE, reason="spam", created_by="credentials/x", expires_at=None
    )

    assert created is not None
    assert await here.match(T, keys) == created.block_id  # this door: at once
    assert await there.match(T, keys) is None  # the other: its copy is still fresh
    clock.now = 5.0
    assert await there.match(T, keys) == created.block_id


async def test_a_tenant_with_more_blocks_than_cached_is_matched_in_postgresql(
    pool: asyncpg.Pool,
) -> None:
    await pool.execute("INSERT INTO tenants (tenant_id) VALUES ('acme')")
    blocklist = Blocklist(pool, max_cached=1)
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    phone = await blocklist.create(
        T, Kind.PHONE, PHONE, reason="", created_by="agents/ann", expires_at=None
    )
    ip = await blocklist.create(
        T, Kind.IP, "2001:db8:0::1", reason="", created_by="agents/ann", expires_at=soon
    )
    assert phone is not None and ip is not None and ip.value == "2001:db8::1"

    assert await blocklist.has_blocks(T)
    assert await blocklist.match(T, sender_keys(customer_id="c", phone=PHONE)) == phone.block_id
    assert await blocklist.match(T, sender_keys(customer_id="c", ip_address="2001:DB8::1")) == (
        ip.block_id
    )
    assert await blocklist.match(T, sender_keys(customer_id="c", email="a@b.c")) is None
    await blocklist.unblock(T, phone.block_id, by="agents/ann")
    assert await blocklist.match(T, sender_keys(customer_id="c", phone=PHONE)) is None


def test_a_sender_is_matched_by_every_form_of_their_identity() -> None:
    keys = sender_keys(
        customer_id="c1",
        external_id="85291234567",
        phone="",
        email="Kim@Example.COM",
        ip_address="not an address",
    )
    assert keys == [(Kind.CUSTOMER, "c1"), (Kind.PHONE, PHONE), (Kind.EMAIL, "kim@example.com")]
    assert sender_keys(customer_id=None, external_id="kim@example.com") == [
        (Kind.EMAIL, "kim@example.com")
    ]
