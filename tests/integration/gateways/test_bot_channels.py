"""A bot answering through real gateways and their providers' fakes: on WhatsApp its choices go
out as reply buttons and as a list, a tap and a list pick come back as the options' ids and move
the flow, a redelivered notification gets one reply, and every step kind runs (a question, a
condition, a signed webhook, a knowledge-base answer, the end); on LINE they go out as quick
replies whose postbacks move the flow; a flow that hands off reaches the agent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from usher.client import BotClient, KnowledgeClient
from usher.v1 import conversation_pb2, knowledge_service_pb2

from core.api.bot_service import INSECURE_ENV
from gateways.line import Line
from gateways.whatsapp import WhatsApp
from tests.bot_kit import branches_bot, menu_bot
from tests.integration.bot_hooks import Script, hook_service, serve
from tests.integration.gateways import fake_meta as meta
from tests.integration.gateways import test_line, test_whatsapp
from tests.integration.gateways.fake_line import fake_line
from tests.integration.gateways.fake_meta import FakeMeta
from tests.integration.gateways.kit import TENANT, Core, core, eventually, gateway

WA_ID = "85291234567"
LINE_USER = "U4af4980629a1b2c3d4e5f6a7b8c9d0e1"


@pytest.fixture
async def the_core(pool: asyncpg.Pool, redis_url: str) -> AsyncIterator[Core]:
    async with core(pool, redis_url) as c:
        yield c


async def bots(the_core: Core) -> BotClient:
    return BotClient(the_core.target, await the_core.running.token(TENANT, "supervisor"))


async def conversation_state(the_core: Core) -> str:
    found: str = await the_core.running.pool.fetchval(
        "SELECT state FROM conversations WHERE tenant_id = $1", TENANT
    )
    return found


def bot_texts(fake: FakeMeta) -> list[dict[str, Any]]:
    return [m for m in fake.sent if m.get("type") in ("interactive", "text")]


async def test_whatsapp_buttons_a_list_and_a_redelivery(the_core: Core, tmp_path: Path) -> None:
    async with (
        meta.fake_meta() as fake,
        gateway(
            the_core,
            WhatsApp(),
            tmp_path,
            channel_id="wa",
            channel=test_whatsapp.channel(fake),
        ) as gw,
        httpx.AsyncClient() as http,
    ):
        client = await bots(the_core)
        await serve(client, branches_bot("wa"))
        await client.close()

        hello = meta.notification(
            meta.messages(WA_ID, "Chan", test_whatsapp.text("wamid.B1", "hi"))
        )
        await test_whatsapp.post(http, gw, hello)
        again = await test_whatsapp.post(http, gw, hello)  # Meta redelivers
        assert again["duplicates"] == 1
        buttons = await eventually(lambda: fake.messages_of("interactive"))
        assert buttons[0]["interactive"] == {
            "type": "button",
            "header": {"type": "text", "text": "Bike shop"},
            "body": {"text": "How can we help?"},
            "footer": {"text": "Tap one"},
            "action": {
                "buttons": [
                    {"type": "reply", "reply": {"id": "visit", "title": "Visit a branch"}},
                    {"type": "reply", "reply": {"id": "person", "title": "A person"}},
                    {"type": "reply", "reply": {"id": "nothing", "title": "Nothing"}},
                ]
            },
        }

        tapped = meta.message(
            "wamid.B2",
            "interactive",
            {"type": "button_reply", "button_reply": {"id": "visit", "title": "Visit a branch"}},
        )
        await test_whatsapp.post(http, gw, meta.notification(meta.messages(WA_ID, "Chan", tapped)))
        lists = await eventually(lambda: fake.messages_of("interactive")[1:])
        assert lists[0]["interactive"]["type"] == "list"
        assert lists[0]["interactive"]["action"]["button"] == "Branches"
        rows = lists[0]["interactive"]["action"]["sections"][0]["rows"]
        assert [r["id"] for r in rows] == [f"b{i}" for i in range(1, 6)]

        chosen = meta.message(
            "wamid.B3",
            "interactive",
            {"type": "list_reply", "list_reply": {"id": "b3", "title": "Branch 3"}},
        )
        await test_whatsapp.post(http, gw, meta.notification(meta.messages(WA_ID, "Chan", chosen)))
        await eventually(lambda: "See you at the branch." in fake.texts())
        await eventually(lambda: _is(the_core, "closed"))
        # one menu: the redelivered "hi" got no second reply
        assert len(fake.messages_of("interactive")) == 2
        assert fake.problems == []


async def _is(the_core: Core, state: str) -> bool:
    return await conversation_state(the_core) == state


async def test_line_quick_replies_postbacks_and_a_hand_off(the_core: Core, tmp_path: Path) -> None:
    offers = the_core.agent.events()
    async with (
        fake_line() as line,
        gateway(
            the_core, Line(), tmp_path, channel_id="line", channel=test_line.channel(line)
        ) as gw,
        httpx.AsyncClient() as http,
    ):
        client = await bots(the_core)
        await serve(client, branches_bot("line"))
        await client.close()
        url = gw.url(f"/{TENANT}/line/webhook")

        assert (await test_line.post(http, url, [line.text(LINE_USER, "hi")])).status_code == 200
        sent = await eventually(
            lambda: next((s for s in line.sent if "quickReply" in s.messages[-1]), None)
        )
        items = sent.messages[-1]["quickReply"]["items"]
        assert [i["action"]["type"] for i in items] == ["postback"] * 3
        assert [i["action"]["data"] for i in items] == [
            "usher_choice=visit",
            "usher_choice=person",
            "usher_choice=nothing",
        ]
        tapped = line.event("postback", LINE_USER, postback={"data": "usher_choice=person"})
        assert (await test_line.post(http, url, [tapped])).status_code == 200
        conversation = await the_core.accept_next(offers)
        said = [
            (m.sender, m.text, m.selected_option_id)
            for m in await the_core.transcript(conversation)
        ]
        assert said[0] == (conversation_pb2.SENDER_CUSTOMER, "hi", "")
        assert said[1][:2] == (conversation_pb2.SENDER_BOT, "How can we help?")
        assert said[2][0] == conversation_pb2.SENDER_CUSTOMER and said[2][2] == "person"
    assert line.problems == []
    await offers.aclose()


async def test_whatsapp_every_step_kind(
    pool: asyncpg.Pool, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The menu bot on WhatsApp: its four options as a list, a question answered with an
    e-mail, a condition on the customer's tags, a signed webhook whose answer is said, the end
    that closes; then a question answered from the knowledge base."""
    monkeypatch.setenv(INSECURE_ENV, "1")
    async with (
        core(pool, redis_url) as the_core,
        hook_service() as hook,
        meta.fake_meta() as fake,
        gateway(
            the_core, WhatsApp(), tmp_path, channel_id="wa", channel=test_whatsapp.channel(fake)
        ) as gw,
        httpx.AsyncClient() as http,
    ):
        client = await bots(the_core)
        hook.secret = await serve(client, menu_bot(channels=("wa",), webhook_url=hook.url))
        await client.close()
        knowledge = KnowledgeClient(the_core.target, await the_core.running.token(TENANT, "admin"))
        await knowledge.create_article(
            knowledge_service_pb2.CreateArticleRequest(
                article_id="hours",
                article=knowledge_service_pb2.Article(
                    title="Opening hours of the shop",
                    body="We are open 10:00 to 20:00 every day.",
                    keywords=["opening hours", "open", "hours"],
                    language="en",
                    published=True,
                ),
            )
        )
        await knowledge.close()
        hook.script = Script(body={"text": "Your order ships today."})

        async def say(wamid: str, content: dict[str, Any]) -> None:
            kind = "interactive" if "type" in content else "text"
            message = meta.message(wamid, kind, content)
            await test_whatsapp.post(
                http, gw, meta.notification(meta.messages(WA_ID, "Mei", message))
            )

        await say("wamid.S1", {"body": "hi"})
        menu = await eventually(lambda: fake.messages_of("interactive"))
        assert menu[0]["interactive"]["type"] == "list"  # four options: past WhatsApp's 3 buttons
        await say("wamid.S2", {"type": "list_reply", "list_reply": {"id": "order", "title": "x"}})
        await eventually(lambda: "Your e-mail, please?" in fake.texts())
        await say("wamid.S3", {"body": "mei@example.com"})
        await eventually(lambda: "Your order ships today." in fake.texts())
        [(body, signed)] = hook.calls
        assert signed and body["fields"] == {"email": "mei@example.com"}
        await eventually(lambda: _is(the_core, "closed"))

        await say("wamid.S4", {"body": "hello again"})
        await eventually(lambda: len(fake.messages_of("interactive")) == 2)
        await say("wamid.S5", {"type": "list_reply", "list_reply": {"id": "faq", "title": "x"}})
        await eventually(lambda: "What is your question?" in fake.texts())
        await say("wamid.S6", {"body": "what are your opening hours?"})
        await eventually(lambda: "We are open 10:00 to 20:00 every day." in fake.texts())
        assert fake.problems == []
