"""RecordService over real gRPC, PostgreSQL and Redis: lists with combined filters and role
scoping, keyset pages, counts per tab, pins, activity logs, customers' histories, exports."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import openpyxl
import pytest
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2
from usher.client import (
    AdminClient,
    AgentClient,
    GatewayClient,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    RecordClient,
    UsherError,
)
from usher.v1 import admin_service_pb2 as admin_pb
from usher.v1 import agent_pb2, conversation_pb2, queue_pb2
from usher.v1 import agent_service_pb2 as agent_svc
from usher.v1 import conversation_service_pb2 as gw
from usher.v1 import record_service_pb2 as pb

from tests.integration.api_kit import Running, running

T = "acme"
ACTIVE = conversation_pb2.CONVERSATION_STATE_ACTIVE
QUEUED = conversation_pb2.CONVERSATION_STATE_QUEUED
OFFERED = conversation_pb2.CONVERSATION_STATE_OFFERED


@dataclass
class World:
    pool: asyncpg.Pool
    bob_agent: AgentClient
    ann: RecordClient
    bob: RecordClient
    supervisor: RecordClient
    gateway: GatewayClient
    mine: str
    """Bob's, active, queue ``bobs``; the customer wrote Chinese and Thai."""
    colleague: str
    """Bob's, active, queue ``all`` (which ann serves too)."""
    waiting: str
    """Queued in ``anns`` (only ann serves it; she is offline)."""


async def _start(gateway: GatewayClient, who: str, phone: str, queue: str, text: str) -> str:
    started = await gateway.start_conversation(
        gw.StartConversationRequest(
            channel="webchat",
            customer=conversation_pb2.CustomerIdentity(
                external_id=who, name=who.title() + " Chan", phone=phone
            ),
            queue=queue,
            first_message=gw.CustomerMessage(text=text),
        )
    )
    return started.conversation.name


async def _accept(pool: asyncpg.Pool, bob: AgentClient, conversation: str) -> None:
    offer_id = await pool.fetchval(
        "SELECT offer_id FROM offers WHERE tenant_id = $1 AND conversation_id = $2"
        " AND outcome IS NULL",
        T,
        conversation.removeprefix("conversations/"),
    )
    assert offer_id is not None
    await bob.accept_offer(agent_svc.AcceptOfferRequest(offer=f"offers/{offer_id}"))


@pytest.fixture
async def api(pool: asyncpg.Pool, redis_url: str) -> AsyncIterator[Running]:
    async with running(pool, redis_url, with_core=True) as r:
        yield r


@pytest.fixture
async def world(api: Running) -> AsyncIterator[World]:
    long = duration_pb2.Duration(seconds=3600)
    async with AdminClient(api.target, await api.token(T, "admin")) as admin:
        for agent_id in ("ann", "bob"):
            await admin.create_agent(
                admin_pb.CreateAgentRequest(
                    agent_id=agent_id, agent=agent_pb2.Agent(display_name=agent_id, capacity=3)
                )
            )
        for queue_id, agents in (("bobs", ["agents/bob"]), ("anns", ["agents/ann"]), ("all", [])):
            await admin.create_queue(
                admin_pb.CreateQueueRequest(
                    queue_id=queue_id,
                    queue=queue_pb2.Queue(designated_agents=agents, offer_timeout=long),
                )
            )
    async with (
        GatewayClient(api.target, await api.token(T, "gateway")) as gateway,
        AgentClient(api.target, await api.token(T, "agent", "bob")) as bob_agent,
        RecordClient(api.target, await api.token(T, "agent", "ann")) as ann,
        RecordClient(api.target, await api.token(T, "agent", "bob")) as bob,
        RecordClient(api.target, await api.token(T, "supervisor")) as supervisor,
    ):
        await bob_agent.set_status(agent_svc.SetStatusRequest(status=agent_pb2.AGENT_STATUS_ONLINE))
        mine = await _start(
            gateway, "kim", "+85291234567", "queues/bobs", "我的订单在哪里 สวัสดีครับ order"
        )
        await _accept(api.pool, bob_agent, mine)
        colleague = await _start(gateway, "lee", "+85291234568", "queues/all", "refund please")
        await _accept(api.pool, bob_agent, colleague)
        waiting = await _start(gateway, "sam", "+85291234569", "queues/anns", "hello")
        yield World(api.pool, bob_agent, ann, bob, supervisor, gateway, mine, colleague, waiting)


async def _names(client: RecordClient, **filter_: object) -> set[str]:
    response = await client.list_conversations(
        pb.ListConversationsRequest(filter=pb.ConversationFilter(**filter_))  # type: ignore[arg-type]
    )
    return {r.conversation.name for r in response.conversations}


def _violations(error: UsherError) -> set[str]:
    bad = error.detail(error_details_pb2.BadRequest)
    assert bad is not None
    return {v.field for v in bad.field_violations}


async def test_agents_see_their_own_and_the_waiting_ones_of_their_queues(world: World) -> None:
    assert await _names(world.ann) == {world.waiting}
    assert await _names(world.bob) == {world.mine, world.colleague}
    everything = await world.supervisor.list_conversations(pb.ListConversationsRequest())
    assert {r.conversation.name for r in everything.conversations} == {
        world.mine,
        world.colleague,
        world.waiting,
    }
    assert (everything.total_size, everything.total_size_exact) == (3, True)


async def test_filters_combine(world: World) -> None:
    s = world.supervisor
    assert await _names(s, states=[ACTIVE]) == {world.mine, world.colleague}
    assert await _names(s, states=[ACTIVE], queues=["queues/all"]) == {world.colleague}
    assert await _names(s, owner="agents/bob", states=[QUEUED]) == set()
    assert await _names(s, keyword="订单") == {world.mine}
    assert await _names(s, keyword="สวัสดี") == {world.mine}
    assert await _names(s, keyword="REFUND") == {world.colleague}
    assert await _names(s, keyword="订单", states=[QUEUED]) == set()
    assert await _names(s, customer_phone="+85291234569") == {world.waiting}
    assert await _names(s, customer_name="lee ch") == {world.colleague}
    assert await _names(s, channels=["whatsapp"]) == set()
    assert await _names(world.ann, keyword="订单") == set()  # not hers


async def test_pages_are_keyset_and_tokens_are_checked(world: World) -> None:
    s = world.supervisor
    seen: list[str] = []
    token = ""
    while True:
        request = pb.ListConversationsRequest(page_size=1, page_token=token)
        page = await s.list_conversations(request)
        seen += [r.conversation.name for r in page.conversations]
        token = page.next_page_token
        if not token:
            break
    assert seen == [world.waiting, world.colleague, world.mine]  # newest first
    first = await s.list_conversations(pb.ListConversationsRequest(page_size=1))
    with pytest.raises(InvalidArgument) as foreign:
        await s.list_conversations(
            pb.ListConversationsRequest(
                page_size=1,
                page_token=first.next_page_token,
                filter=pb.ConversationFilter(states=[ACTIVE]),
            )
        )
    assert _violations(foreign.value) == {"page_token"}
    with pytest.raises(InvalidArgument) as garbage:
        await s.list_conversations(pb.ListConversationsRequest(page_token="not-a-token"))
    assert _violations(garbage.value) == {"page_token"}
    oldest = await s.list_conversations(
        pb.ListConversationsRequest(order_by=pb.CONVERSATION_ORDER_LONGEST_WAITING_FIRST)
    )
    waited = [r.conversation.name for r in oldest.conversations]
    assert waited == [world.mine, world.colleague, world.waiting]


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (pb.ListConversationsRequest(page_size=501), "page_size"),
        (
            pb.ListConversationsRequest(filter=pb.ConversationFilter(customer_phone="12345")),
            "filter.customer_phone",
        ),
        (
            pb.ListConversationsRequest(filter=pb.ConversationFilter(queues=["sales"])),
            "filter.queues[0]",
        ),
        (
            pb.ListConversationsRequest(filter=pb.ConversationFilter(close_reasons=["bored"])),
            "filter.close_reasons",
        ),
    ],
)
async def test_bad_filters_are_refused(
    world: World, request_: pb.ListConversationsRequest, field: str
) -> None:
    with pytest.raises(InvalidArgument) as refused:
        await world.supervisor.list_conversations(request_)
    assert _violations(refused.value) == {field}


async def test_counts_per_tab_follow_the_scope(world: World) -> None:
    everything = await world.supervisor.count_conversations(pb.CountConversationsRequest())
    assert (everything.waiting, everything.active, everything.mine) == (1, 2, 0)
    ann = await world.ann.count_conversations(pb.CountConversationsRequest())
    assert (ann.waiting, ann.active, ann.mine) == (1, 0, 0)
    bob = await world.bob.count_conversations(pb.CountConversationsRequest())
    assert (bob.waiting, bob.active, bob.mine) == (0, 2, 2)


async def test_pins_are_per_caller_and_only_on_what_they_see(world: World) -> None:
    await world.ann.pin_conversation(pb.PinConversationRequest(conversation=world.waiting))
    await world.ann.pin_conversation(pb.PinConversationRequest(conversation=world.waiting))
    assert await _names(world.ann, pinned=True) == {world.waiting}
    assert await _names(world.supervisor, pinned=True) == set()
    listed = await world.ann.list_conversations(pb.ListConversationsRequest())
    assert [r.pinned for r in listed.conversations] == [True]
    assert (await world.ann.count_conversations(pb.CountConversationsRequest())).pinned == 1
    with pytest.raises(NotFound):
        await world.ann.pin_conversation(pb.PinConversationRequest(conversation=world.colleague))
    with pytest.raises(NotFound):
        await world.ann.pin_conversation(pb.PinConversationRequest(conversation="conversations/x"))
    await world.ann.unpin_conversation(pb.UnpinConversationRequest(conversation=world.waiting))
    assert await _names(world.ann, pinned=True) == set()


async def test_activity_log_reads_the_events_and_notes(world: World) -> None:
    await world.bob_agent.add_note(
        agent_svc.AddNoteRequest(conversation=world.mine, text="called back")
    )
    log = await world.bob.get_conversation_activity(
        pb.GetConversationActivityRequest(conversation=world.mine)
    )
    kinds = [e.kind for e in log.entries]
    assert kinds[0] == "started"
    assert {"queued", "offered", "offer_accepted", "message", "noted"} <= set(kinds)
    accepted = next(e for e in log.entries if e.kind == "offer_accepted")
    assert accepted.actor == "agents/bob"
    assert any(e.message.startswith(world.mine + "/messages/") for e in log.entries)
    assert log.next_page_token == ""
    paged: list[str] = []
    token = ""
    while True:
        request = pb.GetConversationActivityRequest(
            conversation=world.mine, page_size=2, page_token=token
        )
        page = await world.supervisor.get_conversation_activity(request)
        paged += [e.kind for e in page.entries]
        token = page.next_page_token
        if not token:
            break
    assert paged == kinds
    with pytest.raises(NotFound):
        await world.ann.get_conversation_activity(
            pb.GetConversationActivityRequest(conversation=world.mine)
        )


async def test_a_customers_history(world: World) -> None:
    kim = await world.supervisor.list_conversations(
        pb.ListConversationsRequest(filter=pb.ConversationFilter(customer_phone="+85291234567"))
    )
    customer_id = kim.conversations[0].customer_id
    history = await world.supervisor.list_customer_conversations(
        pb.ListCustomerConversationsRequest(customer=f"customers/{customer_id}")
    )
    assert [r.conversation.name for r in history.conversations] == [world.mine]
    theirs = await world.ann.list_customer_conversations(
        pb.ListCustomerConversationsRequest(customer=f"customers/{customer_id}")
    )
    assert list(theirs.conversations) == []


async def _export(client: RecordClient, request: pb.ExportConversationsRequest) -> bytes:
    return b"".join([chunk async for chunk in client.export_conversations(request)])


async def test_csv_export_with_transcripts(world: World) -> None:
    data = await _export(
        world.supervisor,
        pb.ExportConversationsRequest(format=pb.EXPORT_FORMAT_CSV, include_transcripts=True),
    )
    text = data.decode("utf-8-sig")
    conversations, transcript = text.split("\r\n\r\n")
    rows = list(csv.DictReader(io.StringIO(conversations)))
    assert {f"conversations/{r['conversation_id']}" for r in rows} == {
        world.mine,
        world.colleague,
        world.waiting,
    }
    messages = list(csv.DictReader(io.StringIO(transcript)))
    assert any("我的订单" in m["content"] for m in messages)


async def test_xlsx_export_of_a_search(world: World) -> None:
    data = await _export(
        world.bob,
        pb.ExportConversationsRequest(
            format=pb.EXPORT_FORMAT_XLSX,
            include_transcripts=True,
            filter=pb.ConversationFilter(keyword="สวัสดี"),
        ),
    )
    book = openpyxl.load_workbook(io.BytesIO(data), read_only=True)
    sheet = [list(r) for r in book["conversations"].iter_rows(values_only=True)]
    assert sheet[0][0] == "conversation_id"
    assert [f"conversations/{r[0]}" for r in sheet[1:]] == [world.mine]
    texts = [r[7] for r in book["messages"].iter_rows(values_only=True)]
    assert any("สวัสดี" in str(t) for t in texts)
    with pytest.raises(InvalidArgument):
        await _export(world.bob, pb.ExportConversationsRequest())


async def test_gateways_may_not_call_it(api: Running, world: World) -> None:
    async with RecordClient(api.target, await api.token(T, "gateway")) as gateway:
        with pytest.raises(PermissionDenied):
            await gateway.list_conversations(pb.ListConversationsRequest())


async def test_the_readme_console_takes_the_longest_waiting_conversation(
    api: Running, world: World
) -> None:
    """The README's console example, as written there (ann signs in first)."""
    token = await api.token(T, "agent", "ann")
    async with RecordClient(api.target, token) as records, AgentClient(api.target, token) as agent:
        await agent.set_status(agent_svc.SetStatusRequest(status=agent_pb2.AGENT_STATUS_ONLINE))
        page = await records.list_conversations(
            pb.ListConversationsRequest(
                filter=pb.ConversationFilter(states=[QUEUED, OFFERED]),  # waiting
                order_by=pb.CONVERSATION_ORDER_LONGEST_WAITING_FIRST,
                page_size=20,
            )
        )
        first = page.conversations[0].conversation.name
        taken = await agent.take_conversation(agent_svc.TakeConversationRequest(conversation=first))
    assert first == world.waiting
    assert taken.conversation.state == ACTIVE and taken.conversation.owner == "agents/ann"
