"""The gateway, agent and supervisor services end to end: a real grpc.aio server over an
in-process shard on real PostgreSQL, driven with the generated stubs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
import grpc
import pytest
import redis.asyncio as aioredis
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from usher.v1 import (
    agent_pb2,
    agent_service_pb2,
    agent_service_pb2_grpc,
    conversation_pb2,
    conversation_service_pb2,
    conversation_service_pb2_grpc,
    supervisor_service_pb2,
    supervisor_service_pb2_grpc,
)

from core.api.agents import AgentServicer
from core.api.context import ApiContext, Caller
from core.api.conversations import ConversationServicer
from core.api.local import build_local_context
from core.api.supervisors import SupervisorServicer
from core.routing import ManualClock
from core.routing import commands as c
from core.routing import model as m
from core.routing.model import DEFAULT_TEXTS, SystemMessage
from core.runtime.shard import Shard
from core.store.connect import Connections

T = "acme"
WAIT = 10.0  # a safety net against hangs, never an assertion about speed
R = TypeVar("R")


def caller_from_metadata(context: Any) -> Caller:
    """``x-test-caller: role[:agent]`` stands in for the credential in these tests."""
    value = dict(context.invocation_metadata())["x-test-caller"]
    role, _, agent = value.partition(":")
    return Caller(tenant=T, role=role, agent_id=agent or None, credential_id=value)


@dataclass
class Env:
    api: ApiContext
    shard: Shard
    clock: ManualClock
    gateway: conversation_service_pb2_grpc.ConversationServiceStub
    agents: agent_service_pb2_grpc.AgentServiceStub
    supervisors: supervisor_service_pb2_grpc.SupervisorServiceStub
    pool: asyncpg.Pool

    def position(self) -> int:
        return self.api.feeds.feed(T).last_id


GATEWAY = (("x-test-caller", "gateway"),)
SUPERVISOR = (("x-test-caller", "supervisor:sue"),)


def agent(name: str) -> tuple[tuple[str, str], ...]:
    return (("x-test-caller", f"agent:{name}"),)


@pytest.fixture
async def env(pool: asyncpg.Pool, redis: aioredis.Redis) -> AsyncIterator[Env]:
    clock = ManualClock()
    connections = Connections(pg=pool, redis=redis, database_url="", redis_url="")
    api, shard = build_local_context(connections, clock=clock)
    setup: list[c.Command] = [
        c.ConfigureTenant(tenant=T),
        c.DefineSkill(tenant=T, skill="billing"),
        c.ConfigureQueue(
            tenant=T,
            settings=m.QueueSettings("q", requirements=(m.SkillRequirement("billing", 1),)),
        ),
        c.ConfigureQueue(
            tenant=T, settings=m.QueueSettings("everyone", strategy=m.Strategy.BROADCAST)
        ),
        c.ConfigureAgent(
            tenant=T, profile=m.AgentProfile("ann", name="Ann", skills={"billing": 3}, capacity=2)
        ),
        c.ConfigureAgent(
            tenant=T, profile=m.AgentProfile("bob", name="Bob", skills={"billing": 3}, capacity=2)
        ),
    ]
    for outcome in await shard.submit(setup):
        assert outcome.ok, outcome.failure
    server = grpc.aio.server()
    conversation_service_pb2_grpc.add_ConversationServiceServicer_to_server(
        ConversationServicer(api, caller_of=caller_from_metadata), server
    )
    agent_service_pb2_grpc.add_AgentServiceServicer_to_server(
        AgentServicer(api, caller_of=caller_from_metadata), server
    )
    supervisor_service_pb2_grpc.add_SupervisorServiceServicer_to_server(
        SupervisorServicer(api, caller_of=caller_from_metadata), server
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    yield Env(
        api,
        shard,
        clock,
        conversation_service_pb2_grpc.ConversationServiceStub(channel),
        agent_service_pb2_grpc.AgentServiceStub(channel),
        supervisor_service_pb2_grpc.SupervisorServiceStub(channel),
        pool,
    )
    await channel.close()
    await server.stop(None)
    await shard.stop()


async def sign_in(env: Env, *names: str) -> None:
    for name in names:
        await env.agents.SetStatus(
            agent_service_pb2.SetStatusRequest(status=agent_pb2.AGENT_STATUS_ONLINE),
            metadata=agent(name),
        )


async def start(env: Env, external_id: str, queue: str = "queues/q", text: str = "hi") -> Any:
    return await env.gateway.StartConversation(
        conversation_service_pb2.StartConversationRequest(
            request_id=f"start-{external_id}",
            channel="whatsapp",
            customer=conversation_pb2.CustomerIdentity(external_id=external_id, name="Kim"),
            queue=queue,
            first_message=conversation_service_pb2.CustomerMessage(
                text=text, provider_message_id=f"wamid-{external_id}"
            ),
        ),
        metadata=GATEWAY,
    )


_UNREAD: dict[int, list[Any]] = {}
"""Items of a stream's last response that ``next_where`` has not looked at yet (a response
may gather several)."""


async def next_where(stream: Any, pick: Callable[[Any], R | None]) -> R:
    """The first item of a server stream's responses that ``pick`` maps to a value."""
    unread = _UNREAD.setdefault(id(stream), [])

    async def scan() -> R:
        while True:
            while unread:
                found = pick(unread.pop(0))
                if found is not None:
                    return found
            response = await stream.read()
            assert response is not grpc.aio.EOF, "the stream ended"
            unread.extend(getattr(response, "items", None) or response.events)

    return await asyncio.wait_for(scan(), WAIT)


def offer_of(event: Any) -> Any:
    return event.offer if event.WhichOneof("event") == "offer" else None


def kind(name: str) -> Callable[[Any], Any]:
    def pick(item: Any) -> Any:
        oneof = "item" if hasattr(item, "external_id") else "event"
        field = item.WhichOneof(oneof)
        return item if field == name else None

    return pick


def error_reason(error: grpc.aio.AioRpcError) -> str:
    status = rpc_status.from_call(error)
    assert status is not None
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return info.reason
    return ""


CUSTOMER, AGENT, SYSTEM = (
    conversation_pb2.SENDER_CUSTOMER,
    conversation_pb2.SENDER_AGENT,
    conversation_pb2.SENDER_SYSTEM,
)


async def test_a_conversation_from_start_to_end(env: Env) -> None:
    await sign_in(env, "ann")
    outbound = env.gateway.StreamOutbound(
        conversation_service_pb2.StreamOutboundRequest(resume_after_event_id=env.position()),
        metadata=GATEWAY,
    )
    ann_events = env.agents.StreamEvents(
        agent_service_pb2.StreamEventsRequest(resume_after_event_id=env.position()),
        metadata=agent("ann"),
    )
    bob_events = env.agents.StreamEvents(
        agent_service_pb2.StreamEventsRequest(resume_after_event_id=env.position()),
        metadata=agent("bob"),
    )

    started = await start(env, "+85291234567", text="my bill is wrong")
    conversation = started.conversation.name
    assert started.first_message.text == "my bill is wrong"
    assert started.conversation.customer.external_id == "+85291234567"
    again = await start(env, "+85291234567", text="my bill is wrong")
    assert again.duplicate and again.conversation.name == conversation

    offer = await next_where(ann_events, offer_of)
    assert offer.conversation == conversation and offer.channel == "whatsapp"
    accepted = await env.agents.AcceptOffer(
        agent_service_pb2.AcceptOfferRequest(offer=offer.name), metadata=agent("ann")
    )
    assert accepted.conversation.state == conversation_pb2.CONVERSATION_STATE_ACTIVE
    assert accepted.conversation.owner == "agents/ann"
    welcome = await next_where(outbound, kind("system_message"))
    assert welcome.system_message.kind == conversation_pb2.SYSTEM_MESSAGE_KIND_WELCOME
    assert welcome.external_id == "+85291234567" and welcome.system_message.text
    change = await next_where(outbound, kind("state_change"))
    assert change.state_change.state == conversation_pb2.CONVERSATION_STATE_QUEUED
    joined = await next_where(outbound, kind("system_message"))
    assert joined.system_message.kind == conversation_pb2.SYSTEM_MESSAGE_KIND_AGENT_JOINED

    posted = await env.gateway.PostCustomerMessage(
        conversation_service_pb2.PostCustomerMessageRequest(
            conversation=conversation, text="order 42", provider_message_id="wamid-2"
        ),
        metadata=GATEWAY,
    )
    repeat = await env.gateway.PostCustomerMessage(
        conversation_service_pb2.PostCustomerMessageRequest(
            conversation=conversation, text="order 42", provider_message_id="wamid-2"
        ),
        metadata=GATEWAY,
    )
    assert repeat.duplicate and repeat.message.name == posted.message.name
    seen = await next_where(ann_events, kind("message"))
    assert seen.message.text == "order 42"

    sent = await env.agents.SendMessage(
        agent_service_pb2.SendMessageRequest(
            request_id="r1", conversation=conversation, text="on it"
        ),
        metadata=agent("ann"),
    )
    resent = await env.agents.SendMessage(
        agent_service_pb2.SendMessageRequest(
            request_id="r1", conversation=conversation, text="on it"
        ),
        metadata=agent("ann"),
    )
    assert resent.duplicate and resent.message.name == sent.message.name
    delivered = await next_where(outbound, kind("message"))
    assert delivered.message.text == "on it" and delivered.message.agent == "agents/ann"
    assert delivered.external_id == "+85291234567" and delivered.conversation == conversation

    await sign_in(env, "bob")
    transfer = await env.agents.RequestTransfer(
        agent_service_pb2.RequestTransferRequest(
            conversation=conversation, agent="agents/bob", note="billing expert"
        ),
        metadata=agent("ann"),
    )
    asked = await next_where(bob_events, kind("transfer_request"))
    assert asked.transfer_request.name == transfer.transfer.name
    await env.agents.AnswerTransfer(
        agent_service_pb2.AnswerTransferRequest(transfer=transfer.transfer.name, accept=True),
        metadata=agent("bob"),
    )
    mine = await env.agents.ListMyConversations(
        agent_service_pb2.ListMyConversationsRequest(), metadata=agent("bob")
    )
    assert [x.name for x in mine.conversations] == [conversation]

    ended = await env.agents.EndConversation(
        agent_service_pb2.EndConversationRequest(conversation=conversation),
        metadata=agent("bob"),
    )
    assert ended.conversation.state == conversation_pb2.CONVERSATION_STATE_CLOSED

    def closed(item: Any) -> Any:
        if item.WhichOneof("item") != "state_change":
            return None
        return (
            item if item.state_change.state == conversation_pb2.CONVERSATION_STATE_CLOSED else None
        )

    assert (await next_where(outbound, closed)).state_change.reason == "agent_ended"
    transcript = await env.agents.ListMessages(
        agent_service_pb2.ListMessagesRequest(parent=conversation), metadata=agent("bob")
    )
    said = [(x.sender, x.text) for x in transcript.messages if x.sender != SYSTEM]
    assert said == [(CUSTOMER, "my bill is wrong"), (CUSTOMER, "order 42"), (AGENT, "on it")]
    notices = [x.text for x in transcript.messages if x.sender == SYSTEM]
    assert notices[:2] == [welcome.system_message.text, joined.system_message.text]
    assert notices[2:] == [  # bob joined on the transfer; the agent ended
        DEFAULT_TEXTS[SystemMessage.AGENT_JOINED].format(agent="Bob"),
        DEFAULT_TEXTS[SystemMessage.AGENT_ENDED],
    ]
    explained = await env.supervisors.ExplainRouting(
        supervisor_service_pb2.ExplainRoutingRequest(conversation=conversation),
        metadata=SUPERVISOR,
    )
    assert [d.offer for d in explained.decisions] == [offer.name]
    for call in (outbound, ann_events, bob_events):
        call.cancel()


async def test_an_offer_that_times_out_is_made_to_the_next_agent(env: Env) -> None:
    await sign_in(env, "ann", "bob")
    streams = {
        name: env.agents.StreamEvents(
            agent_service_pb2.StreamEventsRequest(resume_after_event_id=env.position()),
            metadata=agent(name),
        )
        for name in ("ann", "bob")
    }
    await start(env, "+85290000001")
    first = await env.pool.fetchrow("SELECT offer_id, agent_ids FROM offers")
    (first_agent,) = first["agent_ids"]
    other = "bob" if first_agent == "ann" else "ann"

    env.clock.advance(31)
    await env.shard.tick()

    rescinded = await next_where(streams[first_agent], kind("offer_rescinded"))
    assert rescinded.offer_rescinded.reason == "expired"
    reoffer = await next_where(streams[other], offer_of)
    assert reoffer.name != f"offers/{first['offer_id']}"
    with pytest.raises(grpc.aio.AioRpcError) as gone:
        await env.agents.AcceptOffer(
            agent_service_pb2.AcceptOfferRequest(offer=f"offers/{first['offer_id']}"),
            metadata=agent(first_agent),
        )
    assert gone.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_reason(gone.value) == "OFFER_GONE"
    for call in streams.values():
        call.cancel()


async def test_two_agents_accepting_one_broadcast_offer(env: Env) -> None:
    await sign_in(env, "ann", "bob")
    await start(env, "+85290000002", queue="queues/everyone")
    offer_id = await env.pool.fetchval("SELECT offer_id FROM offers")

    results = await asyncio.gather(
        *(
            env.agents.AcceptOffer(
                agent_service_pb2.AcceptOfferRequest(offer=f"offers/{offer_id}"),
                metadata=agent(name),
            )
            for name in ("ann", "bob")
        ),
        return_exceptions=True,
    )

    wins = [r for r in results if isinstance(r, agent_service_pb2.AcceptOfferResponse)]
    losses = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(wins) == 1 and len(losses) == 1
    assert losses[0].code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_reason(losses[0]) == "OFFER_GONE"
    owners = await env.pool.fetch("SELECT owner_agent_id FROM conversations")
    assert [r["owner_agent_id"] for r in owners] == [wins[0].conversation.owner[len("agents/") :]]


async def test_a_dropped_stream_resumes_with_no_gap_and_no_repeat(env: Env) -> None:
    begin = env.position()

    def ids(item: Any) -> Any:
        return item.event_id

    whole = env.gateway.StreamOutbound(
        conversation_service_pb2.StreamOutboundRequest(resume_after_event_id=begin),
        metadata=GATEWAY,
    )
    first = env.gateway.StreamOutbound(
        conversation_service_pb2.StreamOutboundRequest(resume_after_event_id=begin),
        metadata=GATEWAY,
    )
    await start(env, "+85290000003")
    await start(env, "+85290000004")
    last = await next_where(first, ids)
    first.cancel()

    await start(env, "+85290000005")
    await start(env, "+85290000006")
    resumed = env.gateway.StreamOutbound(
        conversation_service_pb2.StreamOutboundRequest(resume_after_event_id=last),
        metadata=GATEWAY,
    )
    expected = []
    while len(expected) < 4:  # no agent is signed in: one QUEUED change per conversation
        expected.append(await next_where(whole, ids))
    got = [last]
    while len(got) < len(expected):
        got.append(await next_where(resumed, ids))
    assert got == expected
    whole.cancel()
    resumed.cancel()


async def test_bad_requests_change_nothing(env: Env) -> None:
    await sign_in(env, "ann")
    events_before = await env.pool.fetchval("SELECT count(*) FROM events")
    messages_before = await env.pool.fetchval("SELECT count(*) FROM messages")

    async def code(call: Any) -> grpc.StatusCode:
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await call
        return failed.value.code()

    INVALID, MISSING = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND
    post = conversation_service_pb2.PostCustomerMessageRequest
    assert (
        await code(
            env.gateway.PostCustomerMessage(post(conversation="c1", text="x"), metadata=GATEWAY)
        )
        == INVALID
    )
    assert (
        await code(
            env.gateway.PostCustomerMessage(
                post(conversation="conversations/nope", text="x"), metadata=GATEWAY
            )
        )
        == MISSING
    )
    assert (
        await code(
            env.gateway.StartConversation(
                conversation_service_pb2.StartConversationRequest(
                    customer=conversation_pb2.CustomerIdentity(external_id="x")
                ),
                metadata=GATEWAY,
            )
        )
        == INVALID
    )
    assert (
        await code(
            env.gateway.StartConversation(
                conversation_service_pb2.StartConversationRequest(
                    channel="sms",
                    customer=conversation_pb2.CustomerIdentity(external_id="x"),
                    queue="queues/none",
                ),
                metadata=GATEWAY,
            )
        )
        == MISSING
    )
    accept = agent_service_pb2.AcceptOfferRequest
    assert await code(env.agents.AcceptOffer(accept(offer="offers/"), metadata=agent("ann"))) == (
        INVALID
    )
    assert (
        await code(env.agents.AcceptOffer(accept(offer="offers/unknown"), metadata=agent("ann")))
        == MISSING
    )
    assert (
        await code(
            env.agents.SetStatus(agent_service_pb2.SetStatusRequest(), metadata=agent("ann"))
        )
        == INVALID
    )
    assert (
        await code(
            env.agents.EndConversation(
                agent_service_pb2.EndConversationRequest(conversation="conversations/nope"),
                metadata=agent("ann"),
            )
        )
        == MISSING
    )

    assert await env.pool.fetchval("SELECT count(*) FROM events") == events_before
    assert await env.pool.fetchval("SELECT count(*) FROM messages") == messages_before


async def test_a_customer_with_an_open_conversation_is_pointed_to_it(env: Env) -> None:
    first = await start(env, "+85290000001")
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await env.gateway.StartConversation(
            conversation_service_pb2.StartConversationRequest(
                request_id="another-start",
                channel="whatsapp",
                customer=conversation_pb2.CustomerIdentity(external_id="+85290000001"),
                queue="queues/q",
            ),
            metadata=GATEWAY,
        )
    assert refused.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert error_reason(refused.value) == "OPEN_CONVERSATION"
    status = rpc_status.from_call(refused.value)
    assert status is not None
    resource = error_details_pb2.ResourceInfo()
    assert any(detail.Unpack(resource) for detail in status.details)
    assert resource.resource_name == first.conversation.name


async def test_typing_and_receipts_reach_the_other_side(env: Env) -> None:
    await sign_in(env, "ann")
    outbound = env.gateway.StreamOutbound(
        conversation_service_pb2.StreamOutboundRequest(resume_after_event_id=env.position()),
        metadata=GATEWAY,
    )
    ann_events = env.agents.StreamEvents(
        agent_service_pb2.StreamEventsRequest(resume_after_event_id=env.position()),
        metadata=agent("ann"),
    )
    started = await start(env, "+85290000002", text="are you there?")
    conversation = started.conversation.name
    offer = await next_where(ann_events, offer_of)
    await env.agents.AcceptOffer(
        agent_service_pb2.AcceptOfferRequest(offer=offer.name), metadata=agent("ann")
    )

    await env.gateway.NotifyTyping(
        conversation_service_pb2.NotifyTypingRequest(conversation=conversation, active=True),
        metadata=GATEWAY,
    )
    assert (await next_where(ann_events, kind("typing"))).typing.active
    await env.agents.MarkRead(
        agent_service_pb2.AgentServiceMarkReadRequest(message=started.first_message.name),
        metadata=agent("ann"),
    )
    read = await next_where(outbound, kind("receipt"))
    assert read.receipt.message == started.first_message.name
    assert read.receipt.status == conversation_pb2.RECEIPT_STATUS_READ

    await env.agents.NotifyTyping(
        agent_service_pb2.AgentServiceNotifyTypingRequest(conversation=conversation, active=True),
        metadata=agent("ann"),
    )
    typing = await next_where(outbound, kind("typing"))
    assert typing.typing.active and typing.typing.agent == "agents/ann"
    sent = await env.agents.SendMessage(
        agent_service_pb2.SendMessageRequest(
            request_id="t1", conversation=conversation, text="yes"
        ),
        metadata=agent("ann"),
    )
    await env.gateway.MarkRead(
        conversation_service_pb2.MarkReadRequest(
            message=sent.message.name, status=conversation_pb2.RECEIPT_STATUS_DELIVERED
        ),
        metadata=GATEWAY,
    )
    delivered = await next_where(ann_events, kind("receipt"))
    assert delivered.receipt.message == sent.message.name
    assert delivered.receipt.status == conversation_pb2.RECEIPT_STATUS_DELIVERED
    with pytest.raises(grpc.aio.AioRpcError) as refused:  # bob does not own it
        await env.agents.NotifyTyping(
            agent_service_pb2.AgentServiceNotifyTypingRequest(
                conversation=conversation, active=True
            ),
            metadata=agent("bob"),
        )
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    for call in (outbound, ann_events):
        call.cancel()


async def test_a_first_message_out_of_hours_is_kept_as_a_left_message(env: Env) -> None:
    closed = m.QueueSettings("closed", hours=m.BusinessHours())  # never open
    assert (await env.api.submit(c.ConfigureQueue(tenant=T, settings=closed))).ok

    started = await start(env, "+85290000003", queue="queues/closed", text="call me back")

    assert started.conversation.state == conversation_pb2.CONVERSATION_STATE_CLOSED
    assert started.first_message.text == "call me back"
    transcript = await env.agents.ListMessages(
        agent_service_pb2.ListMessagesRequest(parent=started.conversation.name),
        metadata=SUPERVISOR,
    )
    assert "call me back" in [x.text for x in transcript.messages]


async def test_a_redelivery_after_the_conversation_closed_is_still_a_duplicate(env: Env) -> None:
    started = await start(env, "+85290000004", text="hello")
    conversation = started.conversation.name
    await env.gateway.LeaveConversation(
        conversation_service_pb2.LeaveConversationRequest(conversation=conversation),
        metadata=GATEWAY,
    )

    again = await env.gateway.PostCustomerMessage(
        conversation_service_pb2.PostCustomerMessageRequest(
            conversation=conversation, text="hello", provider_message_id="wamid-+85290000004"
        ),
        metadata=GATEWAY,
    )
    assert again.duplicate and again.message.name == started.first_message.name
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await env.gateway.PostCustomerMessage(
            conversation_service_pb2.PostCustomerMessageRequest(
                conversation=conversation, text="new", provider_message_id="wamid-new"
            ),
            metadata=GATEWAY,
        )
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
