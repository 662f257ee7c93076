"""Choices on messages through the real server and the Python SDK: an agent's SendMessage and a
bot's PostBotMessage carry them to the gateways' outbound stream and the transcript (stored in
PostgreSQL with the message); a customer's pick comes back as the option's id in the agent's
feed and the transcript; malformed choices are refused field by field and store nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from google.rpc import error_details_pb2
from usher.client import GatewayClient
from usher.client import InvalidArgument as Invalid
from usher.v1 import (
    agent_service_pb2,
    conversation_pb2,
    conversation_service_pb2,
)

from tests.integration.gateways.kit import TENANT, WAIT, Core, core

CHOICES = conversation_pb2.MessageChoices(
    style=conversation_pb2.CHOICE_STYLE_LIST,
    button_text="Topics",
    header="Orders",
    footer="Pick one",
    options=[
        conversation_pb2.MessageOption(id="refund", title="Refund", description="Money back"),
        conversation_pb2.MessageOption(id="delivery", title="Delivery"),
    ],
)


@pytest.fixture
async def the_core(pool: asyncpg.Pool, redis_url: str) -> AsyncIterator[Core]:
    async with core(pool, redis_url) as c:
        yield c


@pytest.fixture
async def gateway(the_core: Core) -> AsyncIterator[GatewayClient]:
    client = GatewayClient(the_core.target, await the_core.running.token(TENANT, "gateway"))
    async with client:
        yield client


async def next_where(stream: Any, wanted: Any) -> Any:
    async def scan() -> Any:
        async for item in stream:
            if wanted(item):
                return item
        raise AssertionError("the stream ended")

    return await asyncio.wait_for(scan(), WAIT)


def customer(text: str, key: str, **fields: Any) -> conversation_service_pb2.CustomerMessage:
    return conversation_service_pb2.CustomerMessage(text=text, provider_message_id=key, **fields)


async def test_agent_choices_go_out_and_the_pick_comes_back_as_the_option_id(
    the_core: Core, gateway: GatewayClient
) -> None:
    outbound = gateway.events(channel="web", resume_after_event_id=1)  # from the start
    events = the_core.agent.events()
    who = conversation_pb2.CustomerIdentity(external_id="visitor-1")
    await gateway.receive_customer_message(
        conversation_service_pb2.ReceiveCustomerMessageRequest(
            channel="web", customer=who, message=customer("hello", "w1")
        )
    )
    conversation = await the_core.accept_next(events)

    sent = await the_core.reply(conversation, "What is it about?", choices=CHOICES)
    assert sent.choices == CHOICES
    item = await next_where(outbound, lambda i: i.WhichOneof("item") == "message")
    assert item.message.choices == CHOICES
    assert item.message.text == "What is it about?"

    await gateway.receive_customer_message(
        conversation_service_pb2.ReceiveCustomerMessageRequest(
            channel="web",
            customer=who,
            message=customer("Refund", "w2", selected_option_id="refund"),
        )
    )
    seen = await next_where(
        events,
        lambda e: e.WhichOneof("event") == "message" and e.message.text == "Refund",
    )
    assert seen.message.selected_option_id == "refund"

    transcript = await the_core.transcript(conversation)
    assert [
        (m.text, m.selected_option_id)
        for m in transcript
        if m.sender == conversation_pb2.SENDER_CUSTOMER
    ] == [
        ("hello", ""),
        ("Refund", "refund"),
    ]
    (offered,) = [m for m in transcript if m.sender == conversation_pb2.SENDER_AGENT]
    assert offered.choices == CHOICES
    rows = await the_core.running.pool.fetch(
        "SELECT sender, choices->'options'->0->>'id' AS first, selected_option_id FROM messages"
        " WHERE tenant_id = $1 AND conversation_id = $2 AND sender <> 'system' ORDER BY message_id",
        TENANT,
        conversation.removeprefix("conversations/"),
    )
    assert [(r["sender"], r["first"], r["selected_option_id"]) for r in rows] == [
        ("customer", None, None),
        ("agent", "refund", None),
        ("customer", None, "refund"),
    ]
    await outbound.aclose()
    await events.aclose()


async def test_a_bot_offers_choices_and_reads_the_pick(
    the_core: Core, gateway: GatewayClient
) -> None:
    outbound = gateway.events(channel="sms", resume_after_event_id=1)  # from the start
    started = await gateway.start_conversation(
        conversation_service_pb2.StartConversationRequest(
            request_id="bot-1",
            channel="sms",
            customer=conversation_pb2.CustomerIdentity(external_id="+85291234567"),
            with_bot=True,
        )
    )
    conversation = started.conversation.name
    buttons = conversation_pb2.MessageChoices(
        options=[
            conversation_pb2.MessageOption(id="yes", title="Yes"),
            conversation_pb2.MessageOption(id="no", title="No"),
        ]
    )
    posted = await gateway.post_bot_message(
        conversation_service_pb2.PostBotMessageRequest(
            request_id="b1", conversation=conversation, text="Did that help?", choices=buttons
        )
    )
    assert posted.message.choices == buttons
    item = await next_where(outbound, lambda i: i.WhichOneof("item") == "message")
    assert item.message.choices == buttons
    assert item.message.sender == conversation_pb2.SENDER_BOT

    pick = await gateway.post_customer_message(
        conversation_service_pb2.PostCustomerMessageRequest(
            conversation=conversation, text="1", provider_message_id="s1", selected_option_id="no"
        )
    )
    assert pick.message.selected_option_id == "no"
    again = await gateway.post_customer_message(
        conversation_service_pb2.PostCustomerMessageRequest(
            conversation=conversation, text="1", provider_message_id="s1", selected_option_id="no"
        )
    )
    assert again.duplicate and again.message.selected_option_id == "no"
    await outbound.aclose()


def violations(error: Invalid) -> list[str]:
    found = error.detail(error_details_pb2.BadRequest)
    assert found is not None
    return [v.field for v in found.field_violations]


def option(option_id: str, title: str = "T", description: str = "") -> Any:
    return conversation_pb2.MessageOption(id=option_id, title=title, description=description)


@pytest.mark.parametrize(
    ("choices", "field"),
    [
        (conversation_pb2.MessageChoices(), "choices.options"),
        (
            conversation_pb2.MessageChoices(options=[option(f"o{i}") for i in range(11)]),
            "choices.options",
        ),
        (
            conversation_pb2.MessageChoices(options=[option("a"), option("a")]),
            "choices.options[1].id",
        ),
        (conversation_pb2.MessageChoices(options=[option("no spaces")]), "choices.options[0].id"),
        (conversation_pb2.MessageChoices(options=[option("a", "")]), "choices.options[0].title"),
        (
            conversation_pb2.MessageChoices(options=[option("a", "x" * 101)]),
            "choices.options[0].title",
        ),
        (
            conversation_pb2.MessageChoices(options=[option("a", "two\nlines")]),
            "choices.options[0].title",
        ),
        (
            conversation_pb2.MessageChoices(options=[option("a")], button_text="b" * 41),
            "choices.button_text",
        ),
    ],
)
async def test_malformed_choices_are_refused_by_field_and_store_nothing(
    the_core: Core, gateway: GatewayClient, choices: Any, field: str
) -> None:
    events = the_core.agent.events()
    await gateway.receive_customer_message(
        conversation_service_pb2.ReceiveCustomerMessageRequest(
            channel="web",
            customer=conversation_pb2.CustomerIdentity(external_id="visitor-2"),
            message=customer("hi", "v1"),
        )
    )
    conversation = await the_core.accept_next(events)
    before = len(await the_core.transcript(conversation))
    with pytest.raises(Invalid) as refused:
        await the_core.agent.send_message(
            agent_service_pb2.SendMessageRequest(
                conversation=conversation, text="Pick", choices=choices
            )
        )
    assert field in violations(refused.value)
    assert len(await the_core.transcript(conversation)) == before
    with pytest.raises(Invalid) as bad_pick:
        await gateway.post_customer_message(
            conversation_service_pb2.PostCustomerMessageRequest(
                conversation=conversation, text="x", selected_option_id="not an id"
            )
        )
    assert violations(bad_pick.value) == ["selected_option_id"]
    await events.aclose()
