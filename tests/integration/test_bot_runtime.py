"""Bots running in the shard, over real gRPC, PostgreSQL and a real web service for webhooks:
each trigger kind (a new conversation, a phrase, a QR code's reference, out of hours, a keyword
while waiting), a flow through every step kind (choices, a question filling a customer field, a
webhook signed and answered, the knowledge base, tags, a hand-off into routing with the fields
and the reason, an end that closes), a webhook that times out taking the fallback, one reply to
a redelivered message, an agent handing back to the bot, a restart mid-flow resuming at the
same step (and a pending webhook issued again), the statistics and the conversation lists."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
from google.protobuf import field_mask_pb2
from usher.client import (
    AdminClient,
    AgentClient,
    BotClient,
    GatewayClient,
    KnowledgeClient,
    RecordClient,
)
from usher.v1 import admin_service_pb2 as admin_pb
from usher.v1 import (
    agent_pb2,
    agent_service_pb2,
    channel_pb2,
    conversation_pb2,
    knowledge_service_pb2,
    queue_pb2,
    record_service_pb2,
    tenant_pb2,
)
from usher.v1 import bot_service_pb2 as bpb
from usher.v1 import conversation_service_pb2 as gpb

from core.api.bot_service import INSECURE_ENV
from core.bots.flow import (
    ActionsStep,
    Content,
    FieldSpec,
    HandOffAction,
    KeywordTrigger,
    MessageStep,
    OutOfHoursTrigger,
    PhraseMatch,
    PhraseTrigger,
    ReferenceTrigger,
    SetFieldAction,
    SetTagsAction,
)
from core.routing import commands as c
from core.routing import model as m
from core.runtime.shard import Shard
from tests.bot_kit import bot, menu_bot
from tests.integration.api_kit import Running, running
from tests.integration.bot_hooks import Hook, Script, hook_service, serve

T = "acme"
WAIT = 30.0  # a safety net against hangs, never an assertion about speed
BOT = conversation_pb2.SENDER_BOT


async def eventually(probe: Callable[[], Any], *, timeout: float = WAIT) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = probe()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        assert asyncio.get_running_loop().time() < deadline, "timed out waiting"
        await asyncio.sleep(0.05)


@dataclass
class Desk:
    api: Running
    pool: asyncpg.Pool
    hook: Hook
    bots: BotClient
    gateway: GatewayClient
    agent: AgentClient
    records: RecordClient

    async def write(
        self,
        text: str = "",
        *,
        customer: str = "c1",
        channel: str = "web",
        key: str = "",
        **more: Any,
    ) -> gpb.ReceiveCustomerMessageResponse:
        """The customer writes on a channel (``option``: a pick)."""
        option = more.pop("option", "")
        return await self.gateway.receive_customer_message(
            gpb.ReceiveCustomerMessageRequest(
                channel=channel,
                customer=conversation_pb2.CustomerIdentity(external_id=customer, name="Mei"),
                message=gpb.CustomerMessage(
                    text=text or option,
                    provider_message_id=key or f"m-{customer}-{text}-{option}-{id(more)}",
                    selected_option_id=option,
                ),
                start=gpb.ConversationOptions(**more),
            )
        )

    async def transcript(self, conversation: str) -> list[conversation_pb2.Message]:
        listed = await self.agent.list_messages(
            agent_service_pb2.ListMessagesRequest(parent=conversation)
        )
        return list(listed.messages)

    async def bot_said(self, conversation: str) -> list[str]:
        return [m.text for m in await self.transcript(conversation) if m.sender == BOT]

    async def until_said(self, conversation: str, count: int) -> list[str]:
        async def enough() -> list[str] | None:
            said = await self.bot_said(conversation)
            return said if len(said) >= count else None

        found: list[str] = await eventually(enough)
        return found

    async def state(self, conversation: str) -> int:
        got = await self.agent.get_conversation(
            agent_service_pb2.GetConversationRequest(name=conversation)
        )
        return got.conversation.state

    async def stats(self, bot_id: str) -> bpb.BotStats:
        found = await self.bots.get_bot_stats(bpb.GetBotStatsRequest(name=f"bots/{bot_id}"))
        return found.stats


@pytest.fixture
async def desk(
    pool: asyncpg.Pool, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Desk]:
    monkeypatch.setenv(INSECURE_ENV, "1")
    async with (
        hook_service() as hook,
        running(pool, redis_url, with_core=True) as api,
        AsyncExitStack() as stack,
    ):
        admin = await stack.enter_async_context(
            AdminClient(api.target, await api.token(T, "admin"))
        )
        await admin.create_skill(admin_pb.CreateSkillRequest(skill_id="billing"))
        for queue_id, hours in (("support", None), ("night", queue_pb2.BusinessHours())):
            await admin.create_queue(
                admin_pb.CreateQueueRequest(
                    queue_id=queue_id,
                    queue=queue_pb2.Queue(
                        display_name=queue_id, business_hours=hours, route_out_of_hours=True
                    ),
                )
            )
        await admin.update_tenant_settings(
            admin_pb.UpdateTenantSettingsRequest(
                settings=tenant_pb2.TenantSettings(default_queue="queues/support"),
                update_mask=field_mask_pb2.FieldMask(paths=["default_queue"]),
            )
        )
        for channel_id, kind in (
            ("web", channel_pb2.CHANNEL_TYPE_WEB_CHAT),
            ("wa", channel_pb2.CHANNEL_TYPE_WHATSAPP),
        ):
            await admin.create_channel(
                admin_pb.CreateChannelRequest(
                    channel_id=channel_id, channel=channel_pb2.Channel(type=kind)
                )
            )
        await admin.create_agent(
            admin_pb.CreateAgentRequest(
                agent_id="ann",
                agent=agent_pb2.Agent(
                    display_name="Ann",
                    capacity=3,
                    skills=[agent_pb2.SkillLevel(skill="skills/billing", level=3)],
                ),
            )
        )
        agent = await stack.enter_async_context(
            AgentClient(api.target, await api.token(T, "agent", "ann"))
        )
        bots = await stack.enter_async_context(
            BotClient(api.target, await api.token(T, "supervisor"))
        )
        gateway = await stack.enter_async_context(
            GatewayClient(api.target, await api.token(T, "gateway"))
        )
        records = await stack.enter_async_context(
            RecordClient(api.target, await api.token(T, "supervisor"))
        )
        yield Desk(api, pool, hook, bots, gateway, agent, records)


async def online(desk: Desk) -> None:
    await desk.agent.set_status(
        agent_service_pb2.SetStatusRequest(status=agent_pb2.AGENT_STATUS_ONLINE)
    )


def note(bot_id: str, text: str, **kwargs: Any) -> Any:
    """A one-message bot."""
    kwargs.setdefault("default_reply", "Sorry?")
    return bot(bot_id, (MessageStep(id="say", content=Content(body=text)),), **kwargs)


# --- triggers -----------------------------------------------------------------------------------


async def test_each_trigger_kind_starts_its_bot(desk: Desk) -> None:
    await serve(desk.bots, note("greeter", "Hello from the web!", channels=("web",)))
    await serve(
        desk.bots,
        note(
            "ebill",
            "Let us set up e-billing.",
            channels=("wa",),
            triggers=(PhraseTrigger(text="e-bill", match=PhraseMatch.CONTAINS),),
        ),
    )
    await serve(
        desk.bots,
        note(
            "store",
            "Thanks for scanning at the store!",
            channels=("wa",),
            triggers=(ReferenceTrigger(reference="store-42"),),
        ),
    )
    await serve(
        desk.bots,
        note("late", "We are closed now.", channels=("wa",), triggers=(OutOfHoursTrigger(),)),
    )
    await serve(
        desk.bots,
        note(
            "price",
            "Plans start at $99.",
            channels=("wa",),
            triggers=(KeywordTrigger(keywords=("price", "價錢")),),
        ),
    )

    web = await desk.write("hi", customer="k1")
    assert await desk.until_said(web.conversation.name, 1) == ["Hello from the web!"]
    assert web.conversation.state == conversation_pb2.CONVERSATION_STATE_BOT

    phrase = await desk.write("I want E-BILL please", customer="k2", channel="wa")
    assert await desk.until_said(phrase.conversation.name, 1) == ["Let us set up e-billing."]

    scanned = await desk.gateway.start_conversation(
        gpb.StartConversationRequest(
            request_id="qr-1",
            channel="wa",
            customer=conversation_pb2.CustomerIdentity(external_id="k3"),
            reference="store-42",
            first_message=gpb.CustomerMessage(text="hello", provider_message_id="qr-m1"),
        )
    )
    said = await desk.until_said(scanned.conversation.name, 1)
    assert said == ["Thanks for scanning at the store!"]

    night = await desk.write("anyone?", customer="k4", channel="wa", queue="queues/night")
    assert await desk.until_said(night.conversation.name, 1) == ["We are closed now."]

    waiting = await desk.write("hello", customer="k5", channel="wa")
    assert waiting.conversation.state == conversation_pb2.CONVERSATION_STATE_QUEUED
    await desk.write("what is the 價錢?", customer="k5", channel="wa")
    assert await desk.until_said(waiting.conversation.name, 1) == ["Plans start at $99."]
    assert await desk.state(waiting.conversation.name) == conversation_pb2.CONVERSATION_STATE_QUEUED

    figures = {b: await desk.stats(b) for b in ("greeter", "ebill", "store", "late", "price")}
    assert figures["store"].triggered_by_reference == 1
    assert figures["store"].triggered_by_message == 0
    assert all(figures[b].triggered_by_message == 1 for b in ("greeter", "ebill", "late", "price"))
    assert all(f.conversations == 1 and f.customers_reached == 1 for f in figures.values())


# --- a flow through every step kind -------------------------------------------------------------


async def test_a_flow_collects_calls_hands_off_with_the_fields_and_is_handed_back(
    desk: Desk,
) -> None:
    desk.hook.secret = await serve(
        desk.bots, menu_bot(channels=("web",), webhook_url=desk.hook.url)
    )
    desk.hook.script = Script(body={"next_step": "to_human", "text": "Order 42 needs a person."})
    offers = desk.agent.events()
    await online(desk)

    started = await desk.write("hi", customer="k1")
    conversation = started.conversation.name
    menu = (await desk.transcript(conversation))[-1]
    assert menu.sender == BOT and menu.text == "How can we help?"
    assert [o.id for o in menu.choices.options] == ["order", "faq", "human", "bye"]
    assert (menu.choices.header, menu.choices.button_text) == ("Welcome", "Choose")

    await desk.write(option="order", customer="k1")
    await desk.write("not an e-mail", customer="k1")
    await desk.write("mei@example.com", customer="k1")
    assert await desk.until_said(conversation, 4) == [
        "How can we help?",
        "Your e-mail, please?",
        "That is not an e-mail address.",
        "Order 42 needs a person.",  # the webhook's answer, after the commit that asked for it
    ]
    [(body, signed)] = desk.hook.calls
    assert signed, "the request is signed with the bot's secret"
    assert (body["step"], body["effect"], body["fields"]) == (
        "lookup",
        1,
        {"email": "mei@example.com"},
    )
    assert body["conversation"] == conversation.removeprefix("conversations/")

    offer = await asyncio.wait_for(_next_offer(offers), WAIT)
    assert offer.conversation == conversation
    # the offer shows the hand-off, live and in a stream's opening offers
    assert (offer.bot_hand_off.bot, offer.bot_hand_off.reason) == ("bots/menu", "bot_handoff")
    assert dict(offer.bot_hand_off.fields) == {"email": "mei@example.com"}
    assert offer.bot_hand_off.HasField("hand_off_time")
    opening = desk.agent.events()
    reopened = await asyncio.wait_for(_next_offer(opening), WAIT)
    await opening.aclose()
    assert reopened.name == offer.name and reopened.bot_hand_off == offer.bot_hand_off
    got = await desk.agent.get_conversation(
        agent_service_pb2.GetConversationRequest(name=conversation)
    )
    hand_off = got.conversation.bot_hand_off
    assert (hand_off.bot, hand_off.reason) == ("bots/menu", "bot_handoff")
    assert dict(hand_off.fields) == {"email": "mei@example.com"}
    assert got.conversation.priority == 5
    customer = await desk.pool.fetchrow(
        "SELECT email, tags FROM customers WHERE tenant_id = $1 AND customer_id = $2",
        T,
        await _customer_id(desk, conversation),
    )
    assert customer["email"] == "mei@example.com" and "wants_human" in customer["tags"]

    await desk.agent.accept_offer(agent_service_pb2.AcceptOfferRequest(offer=offer.name))
    await desk.agent.set_conversation_mode(
        agent_service_pb2.SetConversationModeRequest(
            conversation=conversation, mode=conversation_pb2.CONVERSATION_MODE_AUTO
        )
    )
    said = await desk.bot_said(conversation)
    assert said[-2:] == ["Welcome back to the bot.", "How can we help?"]
    await desk.write(option="bye", customer="k1")
    assert await _closed(desk, conversation)
    stats = await desk.stats("menu")
    assert (stats.conversations, stats.handed_off, stats.finished_in_bot) == (1, 1, 1)
    answered = await desk.records.list_conversations(
        record_service_pb2.ListConversationsRequest(
            filter=record_service_pb2.ConversationFilter(bot_answered=True)
        )
    )
    assert [r.conversation.name for r in answered.conversations] == [conversation]
    await offers.aclose()


async def test_a_flow_that_hands_off_while_offered_is_shown_to_the_offered_agent(
    desk: Desk,
) -> None:
    await serve(
        desk.bots,
        bot(
            "refunds",
            (
                ActionsStep(
                    id="route",
                    actions=(
                        SetFieldAction(field=FieldSpec(key="company", type="text"), value="Acme"),
                        SetFieldAction(
                            field=FieldSpec(key="address", type="text"), value="Main St 1"
                        ),
                        SetFieldAction(
                            field=FieldSpec(key="display_name", type="text"), value="Mei Chan"
                        ),
                        SetTagsAction(add=("refund",)),
                        HandOffAction(queue="support"),
                    ),
                ),
            ),
            channels=("web",),
            triggers=(KeywordTrigger(keywords=("refund",)),),
            default_reply="Sorry?",
        ),
    )
    events = desk.agent.events()
    await online(desk)
    started = await desk.write("hello", customer="k9")  # no bot: it waits, offered to Ann
    offer = await asyncio.wait_for(_next_offer(events), WAIT)
    assert offer.conversation == started.conversation.name
    assert not offer.HasField("bot_hand_off")

    await desk.write("I want a refund", customer="k9")  # the keyword's flow hands off at once

    seen: list[Any] = []

    async def next_hand_off() -> Any:
        async for event in events:
            seen.append(event)
            if event.WhichOneof("event") == "bot_hand_off":
                return event
        raise AssertionError("the agent stream ended")

    shown = await asyncio.wait_for(next_hand_off(), WAIT)
    # what the bot wrote to the customer's record shows on Ann's card at once
    [changed] = [e for e in seen if e.WhichOneof("event") == "customer_profile_changed"]
    assert changed.conversation == started.conversation.name
    profile = changed.customer_profile_changed.profile
    assert profile.display_name == "Mei Chan" and "refund" in profile.tags
    got = await desk.agent.get_conversation(
        agent_service_pb2.GetConversationRequest(name=started.conversation.name)
    )
    stored = got.conversation.customer_profile  # read from the record: the same values
    assert stored.display_name == "Mei Chan" and list(stored.tags) == list(profile.tags)
    assert shown.conversation == started.conversation.name
    hand_off = shown.bot_hand_off
    assert (hand_off.bot, hand_off.bot_version, hand_off.reason) == (
        "bots/refunds",
        1,
        "bot_handoff",
    )
    assert dict(hand_off.fields) == {
        "address": "Main St 1",
        "company": "Acme",
        "display_name": "Mei Chan",
    }
    await events.aclose()


async def _customer_id(desk: Desk, conversation: str) -> str:
    found: str = await desk.pool.fetchval(
        "SELECT customer_id FROM conversations WHERE tenant_id = $1 AND conversation_id = $2",
        T,
        conversation.removeprefix("conversations/"),
    )
    return found


async def _closed(desk: Desk, conversation: str) -> bool:
    return await desk.state(conversation) == conversation_pb2.CONVERSATION_STATE_CLOSED


async def _next_offer(events: Any) -> Any:
    async for event in events:
        if event.WhichOneof("event") == "offer":
            return event.offer
    raise AssertionError("the agent stream ended")


async def test_a_knowledge_answer_then_a_webhook_timeout_takes_the_fallback(desk: Desk) -> None:
    knowledge = KnowledgeClient(desk.api.target, await desk.api.token(T, "supervisor"))
    await knowledge.create_article(
        knowledge_service_pb2.CreateArticleRequest(
            article_id="reset",
            article=knowledge_service_pb2.Article(
                title="How to reset your password",
                body="Open Settings, then Security, then Reset password.",
                keywords=["password", "reset", "login"],
                language="en",
                published=True,
            ),
        )
    )
    await knowledge.close()
    desk.hook.secret = await serve(
        desk.bots, menu_bot(channels=("web",), webhook_url=desk.hook.url)
    )
    started = await desk.write("hi", customer="k1")
    conversation = started.conversation.name
    await desk.write(option="faq", customer="k1")
    await desk.write("how do I reset my password?", customer="k1")
    said = await desk.until_said(conversation, 3)
    assert said[1:] == [
        "What is your question?",
        "Open Settings, then Security, then Reset password.",
    ]
    await eventually(lambda: _closed(desk, conversation))

    desk.hook.script = Script(delay=3.0, body={"text": "too late"})  # the step waits 1 s
    again = await desk.write("hi again", customer="k1")
    second = again.conversation.name
    assert second != conversation
    await desk.write(option="order", customer="k1")
    await desk.write("mei@example.com", customer="k1")
    said = await desk.until_said(second, 3)
    assert said == ["How can we help?", "Your e-mail, please?", "Sorry, our system is away."]
    await eventually(lambda: _state_is(desk, second, conversation_pb2.CONVERSATION_STATE_QUEUED))
    assert "too late" not in await desk.bot_said(second)


async def _state_is(desk: Desk, conversation: str, state: int) -> bool:
    return await desk.state(conversation) == state


async def test_a_redelivered_message_gets_one_reply(desk: Desk) -> None:
    await serve(desk.bots, menu_bot(channels=("web",), webhook_url=desk.hook.url))
    started = await desk.write("hi", customer="k1", key="wamid.1")
    conversation = started.conversation.name
    first = await desk.write("blah", customer="k1", key="wamid.2")
    again = await desk.write("blah", customer="k1", key="wamid.2")
    assert again.duplicate and again.message.name == first.message.name
    said = await desk.bot_said(conversation)
    assert said == ["How can we help?", "Please pick one of the options.", "How can we help?"]


async def test_could_not_answer_is_listed_and_counted(desk: Desk) -> None:
    await serve(desk.bots, menu_bot(channels=("web",), max_misses=2))
    started = await desk.write("hi", customer="k1")
    await desk.write("what", customer="k1")
    await desk.write("huh", customer="k1")
    conversation = started.conversation.name
    assert await desk.state(conversation) == conversation_pb2.CONVERSATION_STATE_QUEUED
    listed = await desk.records.list_conversations(
        record_service_pb2.ListConversationsRequest(
            filter=record_service_pb2.ConversationFilter(bot_could_not_answer=True)
        )
    )
    assert [r.conversation.name for r in listed.conversations] == [conversation]
    stats = await desk.stats("menu")
    assert (stats.handed_off, stats.could_not_answer, stats.finished_in_bot) == (1, 1, 0)


# --- a restart mid-flow -------------------------------------------------------------------------


async def test_a_restarted_shard_resumes_the_flow_and_calls_a_pending_webhook_again(
    pool: asyncpg.Pool, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(INSECURE_ENV, "1")
    async with hook_service() as hook:
        async with running(pool, redis_url, with_core=True) as api:
            admin = AdminClient(api.target, await api.token(T, "admin"))
            await admin.create_queue(
                admin_pb.CreateQueueRequest(queue_id="support", queue=queue_pb2.Queue())
            )
            web = channel_pb2.Channel(type=channel_pb2.CHANNEL_TYPE_WEB_CHAT)
            await admin.create_channel(admin_pb.CreateChannelRequest(channel_id="web", channel=web))
            await admin.close()
            bots = BotClient(api.target, await api.token(T, "supervisor"))
            hook.secret = await serve(bots, menu_bot(channels=("web",), webhook_url=hook.url))
            await bots.close()

        def say(text: str, key: str, option: str = "") -> c.Command:
            return c.ReceiveMessage(
                tenant=T,
                conversation_id="conv-1",
                channel="web",
                customer_id="k1",
                message=m.MessageBody(
                    text=text or option, selected_option_id=option, provider_message_id=key
                ),
            )

        async def bot_said() -> list[str]:
            rows = await pool.fetch(
                "SELECT content FROM messages WHERE tenant_id = $1"
                " AND conversation_id = 'conv-1' AND sender = 'bot' ORDER BY message_id",
                T,
            )
            return [r["content"] for r in rows]

        first = Shard("first", pool)
        for command in (say("hi", "k-1"), say("", "k-2", option="order")):
            (outcome,) = await first.submit([command])
            assert outcome.ok
        await first.stop()  # the shard dies waiting for the customer's e-mail

        hook.script = Script(delay=30.0, body={"text": "never heard"})
        second = Shard("second", pool)
        (outcome,) = await second.submit([say("mei@example.com", "k-3")])  # the same step
        assert outcome.ok
        assert await bot_said() == ["How can we help?", "Your e-mail, please?"]
        await eventually(lambda: len(hook.calls) == 1)
        await second.stop()  # and dies with the webhook in flight

        hook.script = Script(body={"text": "Shipped."})
        third = Shard("third", pool, owns=lambda tenant: True)
        try:
            assert await third.warm_up() == 1  # loading the tenant issues the webhook again
            said = await eventually(lambda: _with(bot_said, "Shipped."))
            assert said[-1] == "Shipped."
            assert [call["effect"] for call, _ in hook.calls] == [1, 1]
            assert all(signed for _, signed in hook.calls)
            conv = third.engine.router(T).conversations["conv-1"]
            assert conv.state is m.ConversationState.CLOSED
        finally:
            await third.stop()


async def _with(read: Callable[[], Any], text: str) -> list[str] | None:
    said: list[str] = await read()
    return said if text in said else None
