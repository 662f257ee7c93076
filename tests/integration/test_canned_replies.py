"""CannedReplyService and SendMessage with a canned reply, over real gRPC, PostgreSQL and Redis:
personal and shared replies and who sees them, validation (unknown variables, shortcuts per
scope and language, categories per scope), quotas, search in English, Chinese and Thai, and a
reply rendered for the conversation's customer that reaches the gateway, recorded on the message
and counted once even when the call is repeated."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import TypeVar

import asyncpg
import pytest
from google.protobuf import field_mask_pb2
from google.rpc import error_details_pb2
from usher.client import (
    AdminClient,
    AgentClient,
    AlreadyExists,
    CannedReplyClient,
    CustomerClient,
    GatewayClient,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
)
from usher.v1 import admin_service_pb2 as admin_pb
from usher.v1 import agent_pb2, conversation_pb2
from usher.v1 import agent_service_pb2 as agent_pb
from usher.v1 import canned_reply_service_pb2 as pb
from usher.v1 import conversation_service_pb2 as gw
from usher.v1 import customer_pb2 as cpb
from usher.v1 import customer_service_pb2 as cs

from core.store.canned_replies import CannedReplies
from tests.integration.api_kit import Running, running

C = TypeVar("C", AdminClient, GatewayClient, AgentClient, CannedReplyClient, CustomerClient)
X = TypeVar("X")
T = "acme"
WAIT = 10.0  # a safety net against hangs, never an assertion about speed
SHARED = pb.CANNED_REPLY_SCOPE_SHARED
PERSONAL = pb.CANNED_REPLY_SCOPE_PERSONAL


@dataclass
class Desk:
    api: Running
    gateway: GatewayClient
    ann: AgentClient
    bob: AgentClient
    ann_replies: CannedReplyClient
    bob_replies: CannedReplyClient
    supervisor: CannedReplyClient
    customers: CustomerClient

    async def shared(self, **fields: object) -> pb.CannedReply:
        made = await self.supervisor.create_canned_reply(
            pb.CreateCannedReplyRequest(canned_reply=pb.CannedReply(**fields))  # type: ignore[arg-type]
        )
        return made.canned_reply

    async def personal(self, client: CannedReplyClient, **fields: object) -> pb.CannedReply:
        made = await client.create_canned_reply(
            pb.CreateCannedReplyRequest(canned_reply=pb.CannedReply(**fields))  # type: ignore[arg-type]
        )
        return made.canned_reply


@pytest.fixture
async def desk(pool: asyncpg.Pool, redis_url: str) -> AsyncIterator[Desk]:
    async with running(pool, redis_url, with_core=True) as api, AsyncExitStack() as stack:

        async def client(kind: type[C], role: str, agent_id: str | None = None) -> C:
            token = await api.token(T, role, agent_id)
            return await stack.enter_async_context(kind(api.target, token))

        admin = await client(AdminClient, "admin")
        await admin.create_queue(admin_pb.CreateQueueRequest(queue_id="support"))
        for agent_id, name in (("ann", "Ann"), ("bob", "Bob")):
            await admin.create_agent(
                admin_pb.CreateAgentRequest(
                    agent_id=agent_id, agent=agent_pb2.Agent(display_name=name, capacity=5)
                )
            )
        ann = await client(AgentClient, "agent", "ann")
        await ann.set_status(agent_pb.SetStatusRequest(status=agent_pb2.AGENT_STATUS_ONLINE))
        yield Desk(
            api,
            await client(GatewayClient, "gateway"),
            ann,
            await client(AgentClient, "agent", "bob"),
            await client(CannedReplyClient, "agent", "ann"),
            await client(CannedReplyClient, "agent", "bob"),
            await client(CannedReplyClient, "supervisor"),
            await client(CustomerClient, "supervisor"),
        )


def violations(exc: InvalidArgument | AlreadyExists) -> dict[str, str]:
    bad = exc.detail(error_details_pb2.BadRequest)
    assert bad is not None
    return {v.field: v.description for v in bad.field_violations}


def names(replies: Iterable[pb.CannedReply]) -> list[str]:
    return [r.name for r in replies]


async def first(events: AsyncIterable[X], pick: Callable[[X], bool]) -> X:
    async def scan() -> X:
        async for event in events:
            if pick(event):
                return event
        raise AssertionError("the stream ended")

    return await asyncio.wait_for(scan(), WAIT)


# --- who sees what -------------------------------------------------------------------------------


async def test_personal_replies_are_their_owners_and_shared_ones_everyones(desk: Desk) -> None:
    category = await desk.supervisor.create_canned_reply_category(
        pb.CreateCannedReplyCategoryRequest(
            canned_reply_category_id="billing",
            canned_reply_category=pb.CannedReplyCategory(display_name="Billing"),
        )
    )
    assert category.canned_reply_category.scope == SHARED
    shared = await desk.shared(
        shortcut="/refund",
        title="Refund",
        text="Refunds take 5 days.",
        category="cannedReplyCategories/billing",
    )
    mine = await desk.personal(desk.ann_replies, shortcut="/hello", title="Hello", text="Hi!")

    assert shared.scope == SHARED and shared.owner == ""
    assert mine.scope == PERSONAL and mine.owner == "agents/ann"
    assert mine.use_count == 0 and not mine.HasField("last_use_time")
    ann_sees = await desk.ann_replies.list_canned_replies(pb.ListCannedRepliesRequest())
    bob_sees = await desk.bob_replies.list_canned_replies(pb.ListCannedRepliesRequest())
    assert sorted(names(ann_sees.canned_replies)) == sorted([shared.name, mine.name])
    assert names(bob_sees.canned_replies) == [shared.name]
    with pytest.raises(NotFound):
        await desk.bob_replies.get_canned_reply(pb.GetCannedReplyRequest(name=mine.name))
    with pytest.raises(NotFound):  # not even to delete: it is not there for bob
        await desk.bob_replies.delete_canned_reply(pb.DeleteCannedReplyRequest(name=mine.name))
    found = await desk.bob_replies.search_canned_replies(pb.SearchCannedRepliesRequest(query="/h"))
    assert names(found.canned_replies) == []
    with pytest.raises(NotFound):
        await desk.bob_replies.render_canned_reply(pb.RenderCannedReplyRequest(name=mine.name))

    # agents read shared replies and categories but do not change them, nor make shared ones
    with pytest.raises(PermissionDenied):
        await desk.ann_replies.update_canned_reply(
            pb.UpdateCannedReplyRequest(
                canned_reply=pb.CannedReply(name=shared.name, title="Mine now"),
                update_mask=field_mask_pb2.FieldMask(paths=["title"]),
            )
        )
    with pytest.raises(PermissionDenied):
        await desk.ann_replies.delete_canned_reply_category(
            pb.DeleteCannedReplyCategoryRequest(name="cannedReplyCategories/billing")
        )
    with pytest.raises(PermissionDenied):
        await desk.personal(desk.ann_replies, scope=SHARED, title="Shared?", text="no")
    with pytest.raises(PermissionDenied):
        await desk.personal(desk.ann_replies, owner="agents/bob", title="Bob's?", text="no")

    # supervisors see and manage everyone's; the PERSONAL scope with an owner narrows it
    everything = await desk.supervisor.list_canned_replies(pb.ListCannedRepliesRequest())
    assert len(everything.canned_replies) == 2
    anns = await desk.supervisor.list_canned_replies(
        pb.ListCannedRepliesRequest(scope=PERSONAL, owner="agents/ann")
    )
    assert names(anns.canned_replies) == [mine.name]
    only_shared = await desk.ann_replies.list_canned_replies(
        pb.ListCannedRepliesRequest(scope=SHARED)
    )
    assert names(only_shared.canned_replies) == [shared.name]
    with pytest.raises(InvalidArgument):  # an agent lists their own personal replies only
        await desk.ann_replies.list_canned_replies(
            pb.ListCannedRepliesRequest(scope=PERSONAL, owner="agents/bob")
        )
    for_bob = await desk.personal(desk.supervisor, owner="agents/bob", title="For Bob", text="x")
    assert for_bob.owner == "agents/bob"
    bob_sees = await desk.bob_replies.list_canned_replies(
        pb.ListCannedRepliesRequest(scope=PERSONAL)
    )
    assert names(bob_sees.canned_replies) == [for_bob.name]


async def test_categories_hold_replies_of_their_scope(desk: Desk) -> None:
    anns = await desk.ann_replies.create_canned_reply_category(
        pb.CreateCannedReplyCategoryRequest(
            canned_reply_category=pb.CannedReplyCategory(display_name="Mine", display_order=2)
        )
    )
    bobs = await desk.bob_replies.create_canned_reply_category(
        pb.CreateCannedReplyCategoryRequest(
            canned_reply_category=pb.CannedReplyCategory(display_name="Bob's")
        )
    )
    category = anns.canned_reply_category
    assert category.scope == PERSONAL and category.owner == "agents/ann"
    listed = await desk.ann_replies.list_canned_reply_categories(
        pb.ListCannedReplyCategoriesRequest()
    )
    assert [c.name for c in listed.canned_reply_categories] == [category.name]
    reply = await desk.personal(desk.ann_replies, title="In mine", text="x", category=category.name)
    assert reply.category == category.name
    with pytest.raises(InvalidArgument) as bad:  # bob's category is not in ann's scope
        await desk.personal(
            desk.ann_replies, title="Elsewhere", text="x", category=bobs.canned_reply_category.name
        )
    assert "canned_reply.category" in violations(bad.value)
    with pytest.raises(InvalidArgument) as bad:  # a shared reply in a personal category
        await desk.shared(title="Shared", text="x", category=category.name)
    assert "canned_reply.category" in violations(bad.value)

    renamed = await desk.ann_replies.update_canned_reply_category(
        pb.UpdateCannedReplyCategoryRequest(
            canned_reply_category=pb.CannedReplyCategory(name=category.name, display_name="Ann"),
            update_mask=field_mask_pb2.FieldMask(paths=["display_name"]),
        )
    )
    assert renamed.canned_reply_category.display_name == "Ann"
    assert renamed.canned_reply_category.display_order == 2
    await desk.ann_replies.delete_canned_reply_category(
        pb.DeleteCannedReplyCategoryRequest(name=category.name)
    )
    kept = await desk.ann_replies.get_canned_reply(pb.GetCannedReplyRequest(name=reply.name))
    assert kept.canned_reply.category == ""  # the reply stays, in no category
    with pytest.raises(NotFound):
        await desk.ann_replies.get_canned_reply_category(
            pb.GetCannedReplyCategoryRequest(name=category.name)
        )


# --- what a reply may say ------------------------------------------------------------------------


async def test_a_reply_is_checked_whole_when_saved(desk: Desk) -> None:
    with pytest.raises(InvalidArgument) as bad:
        await desk.shared(title="", text="Dear {customer.nmae}", shortcut="refund")
    assert set(violations(bad.value)) == {
        "canned_reply.title",
        "canned_reply.text",
        "canned_reply.shortcut",
    }
    assert "customer.nmae" in violations(bad.value)["canned_reply.text"]
    with pytest.raises(InvalidArgument) as bad:  # refused at the edge, by the limits table
        await desk.shared(title="t", text="x", language="??")
    assert set(violations(bad.value)) == {"canned_reply.language"}
    for text in (
        "{customer.name!r}",  # no conversions
        "{customer.name:>9999}",  # no format specs
        "{customer.__class__}",  # no attribute access
        "{customer.fields.vip_level}",  # no such custom field (yet)
        "a lone { brace",
    ):
        with pytest.raises(InvalidArgument) as bad:
            await desk.shared(title="t", text=text)
        assert "canned_reply.text" in violations(bad.value), text

    await desk.customers.create_custom_field(
        cs.CreateCustomFieldRequest(
            field_id="vip_level",
            field=cpb.CustomField(
                display_name="VIP", type=cpb.CUSTOM_FIELD_TYPE_TEXT, enabled=True
            ),
        )
    )
    made = await desk.shared(
        title="VIP", text="{{literal}} {customer.fields.vip_level} for { customer.name }"
    )
    assert list(made.variables) == ["customer.fields.vip_level", "customer.name"]


async def test_a_shortcut_is_unique_per_scope_and_language(desk: Desk) -> None:
    await desk.shared(shortcut="/refund", language="en", title="Refund", text="x")
    with pytest.raises(AlreadyExists) as taken:
        await desk.shared(shortcut="/REFUND", language="EN", title="Again", text="y")
    assert "canned_reply.shortcut" in violations(taken.value)
    await desk.shared(shortcut="/refund", language="zh-Hant", title="退款", text="y")
    await desk.personal(desk.ann_replies, shortcut="/refund", language="en", title="Mine", text="z")
    await desk.personal(desk.bob_replies, shortcut="/refund", language="en", title="His", text="z")
    with pytest.raises(AlreadyExists) as taken:
        await desk.supervisor.create_canned_reply(
            pb.CreateCannedReplyRequest(
                canned_reply_id="dup", canned_reply=pb.CannedReply(title="a", text="a")
            )
        )
        await desk.supervisor.create_canned_reply(
            pb.CreateCannedReplyRequest(
                canned_reply_id="dup", canned_reply=pb.CannedReply(title="b", text="b")
            )
        )
    assert "canned_reply_id" in violations(taken.value)


async def test_an_agent_keeps_at_most_fifty_personal_categories(desk: Desk) -> None:
    for i in range(50):
        await desk.ann_replies.create_canned_reply_category(
            pb.CreateCannedReplyCategoryRequest(
                canned_reply_category=pb.CannedReplyCategory(display_name=f"c{i}")
            )
        )
    with pytest.raises(ResourceExhausted) as full:
        await desk.ann_replies.create_canned_reply_category(
            pb.CreateCannedReplyCategoryRequest(
                canned_reply_category=pb.CannedReplyCategory(display_name="one more")
            )
        )
    quota = full.value.detail(error_details_pb2.QuotaFailure)
    assert quota is not None and quota.violations[0].subject == "canned:personal_categories"
    await desk.bob_replies.create_canned_reply_category(  # bob's own allowance
        pb.CreateCannedReplyCategoryRequest(
            canned_reply_category=pb.CannedReplyCategory(display_name="bob's first")
        )
    )


# --- search --------------------------------------------------------------------------------------


async def test_search_by_shortcut_and_text_in_english_chinese_and_thai(desk: Desk) -> None:
    en = await desk.shared(
        shortcut="/refund",
        language="en",
        title="Refund policy",
        text="Your refund reaches your card within 5 working days.",
    )
    zh = await desk.shared(
        shortcut="/退款",
        language="zh-Hant",
        title="退款政策",
        text="您的退款將於五個工作天內退回信用卡。",
    )
    th = await desk.shared(
        shortcut="/คืนเงิน",
        language="th",
        title="นโยบายการคืนเงิน",
        text="เงินคืนจะเข้าบัตรของคุณภายในห้าวันทำการค่ะ",
    )
    delivery = await desk.shared(
        shortcut="/delivery", language="en", title="Delivery", text="Late? A refund is possible."
    )

    async def search(query: str, language: str = "") -> list[str]:
        found = await desk.ann_replies.search_canned_replies(
            pb.SearchCannedRepliesRequest(query=query, language=language)
        )
        return names(found.canned_replies)

    assert await search("/ref") == [en.name]
    assert await search("refund") == [en.name, delivery.name]  # the shortcut's reply first
    assert await search("ＲＥＦＵＮＤ policy") == [en.name]  # full-width, any case, two terms
    assert await search("/退") == [zh.name]
    assert await search("工作天") == [zh.name]  # inside a sentence written without spaces
    assert await search("信用卡") == [zh.name]
    assert await search("คืนเงิน") == [th.name]
    assert await search("ห้าวันทำการ") == [th.name]  # inside Thai text without spaces
    assert await search("", language="zh") == [zh.name]  # zh finds zh-Hant
    assert await search("refund", language="th") == []
    assert sorted(await search("")) == sorted([en.name, zh.name, th.name, delivery.name])
    paged = await desk.ann_replies.search_canned_replies(
        pb.SearchCannedRepliesRequest(query="", page_size=3)
    )
    rest = await desk.ann_replies.search_canned_replies(
        pb.SearchCannedRepliesRequest(query="", page_size=3, page_token=paged.next_page_token)
    )
    assert len(paged.canned_replies) == 3 and len(rest.canned_replies) == 1
    assert not rest.next_page_token


# --- sending -------------------------------------------------------------------------------------


async def _conversation_with_mei(desk: Desk) -> tuple[str, str]:
    """A web chat with Mei, taken by ann: (conversation name, customer id)."""
    started = await desk.gateway.start_conversation(
        gw.StartConversationRequest(
            channel="webchat",
            queue="queues/support",
            customer=conversation_pb2.CustomerIdentity(
                external_id="visitor-1", name="Mei", phone="+85291234567"
            ),
        )
    )
    conversation = started.conversation.name
    await desk.ann.take_conversation(agent_pb.TakeConversationRequest(conversation=conversation))
    customer: str = await desk.api.pool.fetchval(
        "SELECT customer_id FROM conversations WHERE conversation_id = $1",
        conversation.removeprefix("conversations/"),
    )
    return conversation, customer


async def test_a_canned_reply_is_rendered_for_the_customer_and_counted_once(desk: Desk) -> None:
    await desk.customers.create_custom_field(
        cs.CreateCustomFieldRequest(
            field_id="vip_level",
            field=cpb.CustomField(
                display_name="VIP", type=cpb.CUSTOM_FIELD_TYPE_TEXT, enabled=True
            ),
        )
    )
    reply = await desk.shared(
        shortcut="/welcome",
        title="Welcome",
        text="Hi {customer.name}, I am {agent.name} ({customer.fields.vip_level})."
        " {customer.email}",
        attachments=[
            conversation_pb2.Attachment(
                sha256="a" * 64, name="prices.pdf", content_type="application/pdf", size=10
            )
        ],
    )
    reply_id = reply.name.removeprefix("cannedReplies/")
    conversation, customer = await _conversation_with_mei(desk)
    await desk.customers.update_customer(
        cs.UpdateCustomerRequest(
            customer=cpb.Customer(
                name=f"customers/{customer}",
                display_name="{agent.name}",  # a value is never read as a variable
                fields={"vip_level": cpb.CustomFieldValue(string_value="gold")},
            ),
            update_mask=field_mask_pb2.FieldMask(paths=["display_name", "fields"]),
        )
    )
    expected = "Hi {agent.name}, I am Ann (gold). "

    preview = await desk.ann_replies.render_canned_reply(
        pb.RenderCannedReplyRequest(name=reply.name, conversation=conversation)
    )
    assert preview.text == expected
    assert list(preview.missing_variables) == ["customer.email"]  # rendered empty
    assert [a.name for a in preview.attachments] == ["prices.pdf"]
    with pytest.raises(NotFound):  # bob may not read ann's conversation
        await desk.bob_replies.render_canned_reply(
            pb.RenderCannedReplyRequest(name=reply.name, conversation=conversation)
        )

    outbound = desk.gateway.events(channel="webchat", resume_after_event_id=1)
    request = agent_pb.SendMessageRequest(
        request_id="send-1",
        conversation=conversation,
        canned_reply_id=reply_id,
        text="Anything else?",
    )
    sent = await desk.ann.send_message(request)

    assert not sent.duplicate
    assert sent.message.text == expected + "\nAnything else?"
    assert sent.message.canned_reply_id == reply_id
    assert [a.name for a in sent.message.attachments] == ["prices.pdf"]
    delivered = await first(
        outbound,
        lambda item: item.WhichOneof("item") == "message" and item.message.text.startswith("Hi"),
    )
    assert delivered.message.text == expected + "\nAnything else?"
    assert delivered.conversation == conversation
    listed = await desk.ann.list_messages(agent_pb.ListMessagesRequest(parent=conversation))
    stored = [m for m in listed.messages if m.canned_reply_id]
    assert [(m.name, m.text) for m in stored] == [(sent.message.name, sent.message.text)]

    again = await desk.ann.send_message(request)  # a retried call: the original, counted once
    assert again.duplicate and again.message.name == sent.message.name
    counted = await desk.supervisor.get_canned_reply(pb.GetCannedReplyRequest(name=reply.name))
    assert counted.canned_reply.use_count == 1
    assert counted.canned_reply.HasField("last_use_time")

    await desk.ann.send_message(
        agent_pb.SendMessageRequest(conversation=conversation, canned_reply_id=reply_id)
    )
    counted = await desk.supervisor.get_canned_reply(pb.GetCannedReplyRequest(name=reply.name))
    assert counted.canned_reply.use_count == 2
    now = dt.datetime.now(dt.UTC)
    usage = await CannedReplies(desk.api.pool).usage(
        T, now - dt.timedelta(days=1), now + dt.timedelta(days=1)
    )
    assert [(u.reply_id, u.agent_id, u.uses) for u in usage] == [(reply_id, "ann", 2)]


async def test_sending_a_reply_the_agent_may_not_read_sends_nothing(desk: Desk) -> None:
    conversation, _ = await _conversation_with_mei(desk)
    bobs = await desk.personal(desk.bob_replies, title="Bob's", text="from bob")
    empty = await desk.shared(title="Only a name", text="{customer.email}")
    before = await desk.api.pool.fetchval("SELECT count(*) FROM messages")

    with pytest.raises(NotFound):
        await desk.ann.send_message(
            agent_pb.SendMessageRequest(
                conversation=conversation, canned_reply_id=bobs.name.split("/")[1]
            )
        )
    with pytest.raises(NotFound):
        await desk.ann.send_message(
            agent_pb.SendMessageRequest(conversation=conversation, canned_reply_id="nope")
        )
    with pytest.raises(InvalidArgument) as bad:  # renders empty for Mei, who has no e-mail
        await desk.ann.send_message(
            agent_pb.SendMessageRequest(
                conversation=conversation, canned_reply_id=empty.name.split("/")[1]
            )
        )
    assert "canned_reply_id" in violations(bad.value)
    assert await desk.api.pool.fetchval("SELECT count(*) FROM messages") == before
