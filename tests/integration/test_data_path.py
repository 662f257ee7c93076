"""The one-writer data path: a message is part of its command, answers and streams come from
events, and a resume after any event id replays exactly what was missed."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import grpc
import pytest
from usher.v1 import agent_pb2, agent_service_pb2, conversation_pb2, conversation_service_pb2

from core.api.context import ApiContext
from core.routing import commands as c
from core.runtime.shard import Failure, Outcome
from tests.integration import test_api_flow as flow
from tests.integration.test_api_flow import (
    GATEWAY,
    WAIT,
    Env,
    agent,
    kind,
    next_where,
    offer_of,
    sign_in,
    start,
)

env = flow.env  # the fixture: the API over one in-process shard
QUIET = 1.0
"""Seconds without a new item that end a collection (a window, not an assertion)."""


async def _collect(stream: Any, count: int) -> list[Any]:
    """The next ``count`` items (or events) of a server stream."""
    out: list[Any] = []

    async def read() -> None:
        while len(out) < count:
            response = await stream.read()
            assert response is not grpc.aio.EOF, "the stream ended"
            out.extend(getattr(response, "items", None) or response.events)

    await asyncio.wait_for(read(), WAIT)
    return out


async def _a_story(env: Env) -> str:
    """Start, accept, two customer messages, a reply, typing, a read, the customer leaves."""
    started = await start(env, "+85290000001", text="hello")
    conversation = started.conversation.name
    ann = env.agents.StreamEvents(agent_service_pb2.StreamEventsRequest(), metadata=agent("ann"))
    offer = await next_where(ann, offer_of)
    ann.cancel()
    await env.agents.AcceptOffer(
        agent_service_pb2.AcceptOfferRequest(offer=offer.name), metadata=agent("ann")
    )
    for n, text in enumerate(("order 42", "is it shipped?")):
        await env.gateway.PostCustomerMessage(
            conversation_service_pb2.PostCustomerMessageRequest(
                conversation=conversation, text=text, provider_message_id=f"w-{n}"
            ),
            metadata=GATEWAY,
        )
    await env.gateway.NotifyTyping(
        conversation_service_pb2.NotifyTypingRequest(conversation=conversation, active=True),
        metadata=GATEWAY,
    )
    sent = await env.agents.SendMessage(
        agent_service_pb2.SendMessageRequest(conversation=conversation, text="yes, today"),
        metadata=agent("ann"),
    )
    await env.gateway.MarkRead(
        conversation_service_pb2.MarkReadRequest(message=sent.message.name), metadata=GATEWAY
    )
    await env.gateway.LeaveConversation(
        conversation_service_pb2.LeaveConversationRequest(conversation=conversation),
        metadata=GATEWAY,
    )
    return conversation


async def test_a_resume_after_every_event_id_replays_exactly_what_was_missed(env: Env) -> None:
    await sign_in(env, "ann")
    origin = env.position()
    await _a_story(env)
    end = env.position()

    async def everything(stream: Any) -> list[Any]:
        """What the stream shows until it goes quiet."""
        seen: list[Any] = []
        while True:
            try:
                seen += await asyncio.wait_for(_collect(stream, 1), QUIET)
            except TimeoutError:
                stream.cancel()
                return seen

    agent_stream, gateway_stream = (
        lambda after: env.agents.StreamEvents(
            agent_service_pb2.StreamEventsRequest(resume_after_event_id=after),
            metadata=agent("ann"),
        ),
        lambda after: env.gateway.StreamOutbound(
            conversation_service_pb2.StreamOutboundRequest(resume_after_event_id=after),
            metadata=GATEWAY,
        ),
    )
    for open_stream, oneof, shown in (
        (agent_stream, "event", {"offer", "assignment_changed", "message", "typing", "receipt"}),
        (gateway_stream, "item", {"message", "system_message", "state_change"}),
    ):
        reference = await everything(open_stream(origin))
        assert {item.WhichOneof(oneof) for item in reference} == shown
        assert reference[-1].event_id <= end
        for after in range(origin, reference[-1].event_id):
            expected = [item for item in reference if item.event_id > after]
            assert await everything(open_stream(after)) == expected, (oneof, after)


async def test_an_invalid_first_message_creates_nothing(env: Env) -> None:
    before = await env.pool.fetchval("SELECT count(*) FROM conversations")
    request = conversation_service_pb2.StartConversationRequest(
        request_id="r-nul",
        channel="whatsapp",
        customer=conversation_pb2.CustomerIdentity(external_id="+85290000002"),
        queue="queues/q",
        first_message=conversation_service_pb2.CustomerMessage(text="bad\x00text"),
    )
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await env.gateway.StartConversation(request, metadata=GATEWAY)
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert await env.pool.fetchval("SELECT count(*) FROM conversations") == before
    request.first_message.text = "good text"
    started = await env.gateway.StartConversation(request, metadata=GATEWAY)
    assert not started.duplicate and started.first_message.text == "good text"


async def test_a_refused_agent_message_stores_nothing(env: Env) -> None:
    await sign_in(env, "ann")
    started = await start(env, "+85290000003")
    ann = env.agents.StreamEvents(agent_service_pb2.StreamEventsRequest(), metadata=agent("ann"))
    offer = await next_where(ann, offer_of)
    await env.agents.AcceptOffer(
        agent_service_pb2.AcceptOfferRequest(offer=offer.name), metadata=agent("ann")
    )
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await env.agents.SendMessage(
            agent_service_pb2.SendMessageRequest(
                conversation=started.conversation.name, text="not yours"
            ),
            metadata=agent("bob"),
        )
    assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert await env.pool.fetchval("SELECT count(*) FROM messages WHERE content = 'not yours'") == 0


async def test_one_call_lands_in_the_open_conversation_or_starts_one(env: Env) -> None:
    def receive(key: str, text: str) -> Any:
        return env.gateway.ReceiveCustomerMessage(
            conversation_service_pb2.ReceiveCustomerMessageRequest(
                channel="whatsapp",
                customer=conversation_pb2.CustomerIdentity(external_id="+85290000004"),
                message=conversation_service_pb2.CustomerMessage(
                    text=text, provider_message_id=key
                ),
                start=conversation_service_pb2.ConversationOptions(queue="queues/q"),
            ),
            metadata=GATEWAY,
        )

    first = await receive("k1", "hi")
    second = await receive("k2", "anyone?")
    again = await receive("k1", "hi")
    assert first.started and not second.started and again.duplicate
    assert first.conversation.name == second.conversation.name == again.conversation.name
    assert again.message.name == first.message.name
    assert second.conversation.state == conversation_pb2.CONVERSATION_STATE_QUEUED


async def test_a_lost_answer_after_commit_is_retried_into_exactly_one_message(env: Env) -> None:
    """The commit happens but its answer is lost (as when a shard dies right after it): the
    client's retry is answered with the original, and every stream shows the message once."""
    await sign_in(env, "ann")
    started = await start(env, "+85290000005")
    conversation = started.conversation.name
    ann = env.agents.StreamEvents(agent_service_pb2.StreamEventsRequest(), metadata=agent("ann"))
    offer = await next_where(ann, offer_of)
    await env.agents.AcceptOffer(
        agent_service_pb2.AcceptOfferRequest(offer=offer.name), metadata=agent("ann")
    )
    real_submit = env.api.submit
    lost: list[c.Command] = []

    async def losing_answers(command: c.Command) -> Outcome:
        outcome = await real_submit(command)
        if isinstance(command, c.RecordMessage) and not lost:
            lost.append(command)
            return Outcome(failure=Failure("UNAVAILABLE", "shard unavailable"))
        return outcome

    object.__setattr__(env.api, "submit", losing_answers)
    request = conversation_service_pb2.PostCustomerMessageRequest(
        conversation=conversation, text="card 4111", provider_message_id="w-lost"
    )
    with pytest.raises(grpc.aio.AioRpcError) as unavailable:
        await env.gateway.PostCustomerMessage(request, metadata=GATEWAY)
    assert unavailable.value.code() is grpc.StatusCode.UNAVAILABLE
    retried = await env.gateway.PostCustomerMessage(request, metadata=GATEWAY)
    assert retried.duplicate and retried.message.text == "card 4111"
    reply = await env.agents.SendMessage(
        agent_service_pb2.SendMessageRequest(
            conversation=conversation, text="thanks", request_id="reply-1"
        ),
        metadata=agent("ann"),
    )
    assert not reply.duplicate
    shown = await next_where(ann, kind("message"))
    assert shown.message.text == "card 4111"
    outbound = env.gateway.StreamOutbound(
        conversation_service_pb2.StreamOutboundRequest(resume_after_event_id=1),
        metadata=GATEWAY,
    )
    delivered = await next_where(
        outbound, lambda i: i if i.WhichOneof("item") == "message" else None
    )
    assert delivered.message.text == "thanks"
    rows = await env.pool.fetch(
        "SELECT content FROM messages WHERE content IN ('card 4111', 'thanks')"
    )
    assert sorted(r["content"] for r in rows) == ["card 4111", "thanks"]
    assert isinstance(env.api, ApiContext) and dataclasses.is_dataclass(env.api)


async def test_an_agent_shows_the_load_the_shard_holds(env: Env) -> None:
    await sign_in(env, "ann")
    await start(env, "+85290000006")
    ann = env.agents.StreamEvents(agent_service_pb2.StreamEventsRequest(), metadata=agent("ann"))
    offer = await next_where(ann, offer_of)
    await env.agents.AcceptOffer(
        agent_service_pb2.AcceptOfferRequest(offer=offer.name), metadata=agent("ann")
    )
    status = await env.agents.SetStatus(
        agent_service_pb2.SetStatusRequest(status=agent_pb2.AGENT_STATUS_AWAY),
        metadata=agent("ann"),
    )
    assert status.agent.load == 1.0 and status.agent.capacity == 2.0
