"""The web chat widget in a real browser (Debian's headless Chromium driven by Playwright): a
shop's page on its own origin embeds the one-tag snippet; the customer fills the pre-chat form,
chats with Ann (who answers through the SDK), sees her typing, her reply and her read receipt,
picks one of the choices she offers by clicking its button, and rates the chat; with nobody
online, the customer leaves a message that is stored; a bot's buttons are clicked too."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route
from usher.client import BotClient
from usher.v1 import (
    agent_pb2,
    agent_service_pb2,
    channel_pb2,
    conversation_pb2,
    conversation_service_pb2,
)

from gateways.webchat.provider import WebChat
from tests.bot_kit import branches_bot
from tests.integration.bot_hooks import serve
from tests.integration.gateways.kit import (
    TENANT,
    Core,
    RunningGateway,
    core,
    eventually,
    free_port,
    gateway,
)

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"
)
UI_WAIT_MS = 30_000  # a safety net against hangs, never an assertion about speed

if CHROMIUM.exists():
    from playwright.async_api import Browser, Page, async_playwright, expect


@contextlib.asynccontextmanager
async def shop_site(port: int, snippet: list[str]) -> AsyncIterator[str]:
    """A business's page on its own origin, embedding the snippet it was given."""

    async def page(_: Request) -> HTMLResponse:
        return HTMLResponse(
            "<!doctype html><html><head><title>Shop</title></head><body>"
            f"<h1>Red bicycles</h1>{snippet[0]}</body></html>"
        )

    server = uvicorn.Server(
        uvicorn.Config(
            Starlette(routes=[Route("/bikes", page)]),
            host="127.0.0.1",
            port=port,
            log_config=None,
            access_log=False,
            lifespan="off",
        )
    )
    task = asyncio.create_task(server.serve())
    await eventually(lambda: server.started)
    try:
        yield f"http://127.0.0.1:{port}/bikes"
    finally:
        server.should_exit = True
        await task


@contextlib.asynccontextmanager
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        try:
            yield launched
        finally:
            await launched.close()


@contextlib.asynccontextmanager
async def chat_page(
    the_core: Core, tmp_path: Path, provider: WebChat
) -> AsyncIterator[tuple[Page, RunningGateway]]:
    """The shop's page open in Chromium, with the widget of a web chat channel that allows
    only the shop's origin."""
    shop_port = free_port()
    snippet: list[str] = []
    channel = channel_pb2.Channel(
        type=channel_pb2.CHANNEL_TYPE_WEB_CHAT,
        settings={
            "title": "Bike shop",
            "greeting": "Hi! Questions about a bike?",
            "prechat_fields": "name,email",
            "prechat_required": "name",
            "allowed_origins": f"http://127.0.0.1:{shop_port}",
        },
    )
    async with (
        gateway(the_core, provider, tmp_path, channel_id="webchat", channel=channel) as gw,
        browser() as chromium,
    ):
        async with httpx.AsyncClient() as http:
            snippet.append((await http.get(gw.url(f"/{TENANT}/webchat/snippet"))).text)
        async with shop_site(shop_port, snippet) as url:
            page = await chromium.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            await page.goto(url)
            await page.locator(".usher-launcher").click(timeout=UI_WAIT_MS)
            yield page, gw
            assert errors == [], "the widget raised in the page"


async def _picks(the_core: Core, conversation: str) -> list[tuple[str, str]] | None:
    """The customer's (text, selected option) pairs once a pick is among them."""
    said = [
        (m.text, m.selected_option_id)
        for m in await the_core.transcript(conversation)
        if m.sender == conversation_pb2.SENDER_CUSTOMER
    ]
    return said if any(option for _, option in said) else None


@pytest.fixture
async def the_core(pool: asyncpg.Pool, redis_url: str) -> AsyncIterator[Core]:
    async with core(pool, redis_url) as c:
        yield c


async def test_a_customer_chats_with_an_agent(the_core: Core, tmp_path: Path) -> None:
    events = the_core.agent.events()
    provider = WebChat()
    async with chat_page(the_core, tmp_path, provider) as (page, gw):
        await expect(page.locator(".usher-title")).to_have_text("Bike shop", timeout=UI_WAIT_MS)
        await expect(page.locator(".usher-greeting")).to_have_text("Hi! Questions about a bike?")
        prechat = page.locator(".usher-prechat")
        await prechat.locator("input[name=name]").fill("Wong Siu Ming", timeout=UI_WAIT_MS)
        await prechat.locator("input[name=email]").fill("sm@example.com")
        await prechat.locator(".usher-start").click()

        await page.locator(".usher-input").fill("Is the red one in stock?")
        await page.locator(".usher-input").press("Enter")
        own = page.locator(".usher-msg.customer")
        await expect(own.locator(".usher-meta")).to_have_text("Sent", timeout=UI_WAIT_MS)

        conversation = await the_core.accept_next(events)
        stored = (
            await the_core.agent.get_conversation(
                agent_service_pb2.GetConversationRequest(name=conversation)
            )
        ).conversation
        assert (stored.customer.name, stored.customer.email) == ("Wong Siu Ming", "sm@example.com")

        await the_core.agent.notify_typing(
            agent_service_pb2.AgentServiceNotifyTypingRequest(
                conversation=conversation, active=True
            )
        )
        await expect(page.locator(".usher-typing")).to_be_visible(timeout=UI_WAIT_MS)
        await the_core.reply(conversation, "Yes! Three left in medium.")
        await expect(page.locator(".usher-msg.agent")).to_have_text(
            "Yes! Three left in medium.", timeout=UI_WAIT_MS
        )
        await expect(page.locator(".usher-typing")).to_be_hidden()

        (message,) = [
            m
            for m in await the_core.transcript(conversation)
            if m.sender == conversation_pb2.SENDER_CUSTOMER
        ]
        assert message.text == "Is the red one in stock?"
        await the_core.agent.mark_read(
            agent_service_pb2.AgentServiceMarkReadRequest(message=message.name)
        )
        await expect(own.locator(".usher-meta")).to_have_text("Read", timeout=UI_WAIT_MS)

        # Ann offers choices: buttons under her message; a click sends the option's id
        sizes = conversation_pb2.MessageChoices(
            footer="Tap a size",
            options=[
                conversation_pb2.MessageOption(id=f"size-{s}", title=title)
                for s, title in (("s", "Small"), ("m", "Medium"), ("l", "Large"))
            ],
        )
        await the_core.reply(conversation, "Which size?", choices=sizes)
        buttons = page.locator(".usher-choice")
        await expect(buttons).to_have_count(3, timeout=UI_WAIT_MS)
        await expect(page.locator(".usher-choices-footer")).to_have_text("Tap a size")
        await buttons.filter(has_text="Medium").click()
        await expect(buttons.filter(has_text="Medium")).to_have_class("usher-choice chosen")
        for i in range(3):
            await expect(buttons.nth(i)).to_be_disabled()
        await expect(own.nth(1)).to_contain_text("Medium", timeout=UI_WAIT_MS)
        picked = await eventually(
            lambda: _picks(the_core, conversation),
        )
        assert picked == [("Is the red one in stock?", ""), ("Medium", "size-m")]

        ended = await the_core.agent.end_conversation(
            agent_service_pb2.EndConversationRequest(conversation=conversation)
        )
        if ended.conversation.state == conversation_pb2.CONVERSATION_STATE_WRAP_UP:
            await the_core.agent.finish_wrap_up(
                agent_service_pb2.FinishWrapUpRequest(conversation=conversation)
            )
        rating = page.locator(".usher-rating")
        await rating.locator(".usher-star[data-score='5']").click(timeout=UI_WAIT_MS)
        await rating.locator(".usher-comment").fill("Great help")
        await rating.locator(".usher-rate").click()
        await expect(page.locator(".usher-rated")).to_contain_text("5/5", timeout=UI_WAIT_MS)

        served = gw.gateway.directory.lookup(TENANT, "webchat")
        assert served is not None  # the rating is the core's now
        listed = await served.client.list_ratings(
            conversation_service_pb2.ListRatingsRequest(channel="webchat")
        )
        (kept,) = listed.ratings
        assert (kept.conversation, kept.score, kept.comment) == (conversation, 5, "Great help")
    await events.aclose()


async def test_with_nobody_online_the_customer_leaves_a_message(
    the_core: Core, tmp_path: Path
) -> None:
    await the_core.agent.set_status(
        agent_service_pb2.SetStatusRequest(status=agent_pb2.AGENT_STATUS_OFFLINE)
    )
    async with chat_page(the_core, tmp_path, WebChat()) as (page, _):
        prechat = page.locator(".usher-prechat")
        await prechat.locator("input[name=name]").fill("Lee", timeout=UI_WAIT_MS)
        await prechat.locator(".usher-start").click()
        await page.locator(".usher-input").fill("Hello?")
        await page.locator(".usher-input").press("Enter")

        await page.locator(".usher-leave-link").click(timeout=UI_WAIT_MS)
        form = page.locator(".usher-offline")
        await expect(form.locator("input[name=name]")).to_have_value("Lee")
        await form.locator("input[name=email]").fill("lee@example.com")
        await form.locator("textarea[name=text]").fill("Please e-mail me the price list.")
        await form.locator(".usher-offline-send").click()
        await expect(page.locator(".usher-offline-done")).to_be_visible(timeout=UI_WAIT_MS)
        await expect(page.locator(".usher-offline")).to_have_count(0)

    rows = await the_core.running.pool.fetch(
        "SELECT conversation_id, state, tags FROM conversations WHERE tenant_id = $1", TENANT
    )
    left = [r for r in rows if "offline" in (r["tags"] or [])]
    assert len(left) == 1 and len(rows) == 2  # the waiting chat was left for the message
    transcript = await the_core.transcript(f"conversations/{left[0]['conversation_id']}")
    assert [m.text for m in transcript if m.sender == conversation_pb2.SENDER_CUSTOMER] == [
        "Name: Lee\nE-mail: lee@example.com\n\nPlease e-mail me the price list."
    ]


async def test_a_bot_answers_with_buttons_the_customer_clicks(
    the_core: Core, tmp_path: Path
) -> None:
    """A bot on the channel greets with buttons; clicking one moves its flow, whose next
    message shows, and the pick is stored with the option's id."""
    provider = WebChat()
    async with chat_page(the_core, tmp_path, provider) as (page, _):
        client = BotClient(the_core.target, await the_core.running.token(TENANT, "supervisor"))
        await serve(client, branches_bot("webchat"))
        await client.close()
        prechat = page.locator(".usher-prechat")
        await prechat.locator("input[name=name]").fill("Chan", timeout=UI_WAIT_MS)
        await prechat.locator(".usher-start").click()
        await page.locator(".usher-input").fill("hello")
        await page.locator(".usher-input").press("Enter")

        buttons = page.locator(".usher-choice")
        await expect(buttons).to_have_count(3, timeout=UI_WAIT_MS)
        await expect(page.locator(".usher-msg.bot").first).to_contain_text("How can we help?")
        await buttons.filter(has_text="Nothing").click()
        await expect(buttons.filter(has_text="Nothing")).to_have_class("usher-choice chosen")
        rows = await eventually(
            lambda: the_core.running.pool.fetch(
                "SELECT sender, content, selected_option_id FROM messages"
                " WHERE tenant_id = $1 AND sender = 'customer' AND selected_option_id IS NOT NULL",
                TENANT,
            )
        )
        assert [(r["content"], r["selected_option_id"]) for r in rows] == [("Nothing", "nothing")]
        state = await eventually(
            lambda: the_core.running.pool.fetchval(
                "SELECT state FROM conversations WHERE tenant_id = $1 AND state = 'closed'",
                TENANT,
            )
        )
        assert state == "closed"  # the bot ended the flow and closed it as resolved
