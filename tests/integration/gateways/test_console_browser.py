"""The web console in a real browser (Debian's headless Chromium driven by Playwright), served
by the core at /console on its web port, beside the web chat widget on a shop's page: a customer
and an agent talk both ways; an offer nobody answers moves on to a second agent's console; a
transfer is accepted in the other console; the supervisor's view shows the load move.

Screenshots of the agent's console and the supervisor's view go to docs/images/ with
``USHER_SCREENSHOTS=1`` (the README shows them), else to the test's temporary directory."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import pytest
import uvicorn
from google.protobuf import duration_pb2, field_mask_pb2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route
from usher.client import AdminClient, AgentClient, CannedReplyClient
from usher.v1 import (
    admin_service_pb2,
    agent_pb2,
    canned_reply_service_pb2,
    channel_pb2,
    conversation_pb2,
    credential_pb2,
    queue_pb2,
    tenant_pb2,
)

from benchmarks.chaos.proxy import StoreProxy
from core.api.web import WebOptions
from gateways.webchat.provider import WebChat
from tests.integration.api_kit import running as running_core
from tests.integration.gateways.kit import TENANT, Core, eventually, free_port, gateway

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"
)
UI_WAIT_MS = 30_000  # a safety net against hangs, never an assertion about speed
IMAGES = Path(__file__).resolve().parents[3] / "docs" / "images"
PASSWORD = "correct horse battery"

if CHROMIUM.exists():
    from playwright.async_api import Browser, Page, async_playwright, expect


@dataclass
class Stack:
    """The core (with its web port), the web chat gateway, a shop page embedding the widget,
    and Chromium; the consoles reach the web port through ``link``, a proxy the test cuts and
    restores; ``errors`` collects what the pages raised."""

    core: Core
    console_url: str
    shop_url: str
    browser: Browser
    shots: Path
    link: StoreProxy
    errors: list[str] = field(default_factory=list)

    async def console(self, login: str, *, language: str = "en-US") -> Page:
        """A console signed in by ``login`` (an agent number or display name) and the demo
        password, in a browser context of its own (its own session storage)."""
        context = await self.browser.new_context(
            locale=language, viewport={"width": 1360, "height": 820}
        )
        page = await context.new_page()
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        await page.goto(f"{self.console_url}?tenant={TENANT}")
        await page.locator("input[name=login]").fill(login, timeout=UI_WAIT_MS)
        await page.locator("input[name=password]").fill(PASSWORD)
        await page.locator(".signin-submit").click()
        await expect(page.locator(".topbar")).to_be_visible(timeout=UI_WAIT_MS)
        return page

    async def customer(self, name: str) -> Page:
        """The shop's page with the widget open and the pre-chat form filled."""
        page = await self.browser.new_page()
        await page.goto(self.shop_url)
        await page.locator(".usher-launcher").click(timeout=UI_WAIT_MS)
        prechat = page.locator(".usher-prechat")
        await prechat.locator("input[name=name]").fill(name, timeout=UI_WAIT_MS)
        await prechat.locator(".usher-start").click()
        return page

    def shot(self, name: str) -> str:
        return str(self.shots / name)


@contextlib.asynccontextmanager
async def shop_site(port: int, snippet: str) -> AsyncIterator[str]:
    """A business's page on its own origin, embedding the widget's snippet."""

    async def page(_: Request) -> HTMLResponse:
        return HTMLResponse(
            "<!doctype html><html><head><title>Shop</title></head><body>"
            f"<h1>Red bicycles</h1>{snippet}</body></html>"
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


async def configure(admin: AdminClient, canned: CannedReplyClient, offer_timeout: int) -> None:
    """A queue whose offers last ``offer_timeout`` seconds, a custom status, a shared canned
    reply (``/stock``), and Ann and Bob
    (agents) and Sue (a supervisor) in Sales, each with a console password."""
    await admin.create_skill(admin_service_pb2.CreateSkillRequest(skill_id="general"))
    await admin.create_department(
        admin_service_pb2.CreateDepartmentRequest(
            department_id="sales", department=tenant_pb2.Department(display_name="Sales")
        )
    )
    await admin.create_queue(
        admin_service_pb2.CreateQueueRequest(
            queue_id="support",
            queue=queue_pb2.Queue(
                display_name="Support",
                offer_timeout=duration_pb2.Duration(seconds=offer_timeout),
            ),
        )
    )
    await admin.update_tenant_settings(
        admin_service_pb2.UpdateTenantSettingsRequest(
            settings=tenant_pb2.TenantSettings(
                default_queue="queues/support",
                custom_statuses=[
                    tenant_pb2.CustomStatus(
                        name="In a meeting",
                        base=agent_pb2.AGENT_STATUS_AWAY,
                        auto_reply="I am in a meeting and will answer soon.",
                    )
                ],
            ),
            update_mask=field_mask_pb2.FieldMask(paths=["default_queue", "custom_statuses"]),
        )
    )
    people = (
        ("ann", "Ann", credential_pb2.ROLE_AGENT),
        ("bob", "Bob", credential_pb2.ROLE_AGENT),
        ("sue", "Sue", credential_pb2.ROLE_SUPERVISOR),
    )
    await canned.create_canned_reply(
        canned_reply_service_pb2.CreateCannedReplyRequest(
            canned_reply=canned_reply_service_pb2.CannedReply(
                scope=canned_reply_service_pb2.CANNED_REPLY_SCOPE_SHARED,
                shortcut="/stock",
                title="In stock",
                text="Hi {customer.name}, it is in stock.",
            )
        )
    )
    for agent_id, name, role in people:
        await admin.create_agent(
            admin_service_pb2.CreateAgentRequest(
                agent_id=agent_id,
                agent=agent_pb2.Agent(
                    display_name=name, capacity=2, departments=["departments/sales"]
                ),
            )
        )
        await admin.set_agent_password(
            admin_service_pb2.SetAgentPasswordRequest(
                agent=f"agents/{agent_id}", password=PASSWORD, console_role=role
            )
        )


@contextlib.asynccontextmanager
async def stack(
    pool: asyncpg.Pool, redis_url: str, tmp_path: Path, *, offer_timeout: int
) -> AsyncIterator[Stack]:
    async with running_core(pool, redis_url, with_core=True, web=WebOptions(port=0)) as r:
        assert r.server.web is not None
        admin_token = await r.token(TENANT, "admin")
        admin = AdminClient(r.target, admin_token)
        async with CannedReplyClient(r.target, admin_token) as canned:
            await configure(admin, canned, offer_timeout)
        agent = AgentClient(r.target, await r.token(TENANT, "agent", "ann"))
        shop_port = free_port()
        channel = channel_pb2.Channel(
            type=channel_pb2.CHANNEL_TYPE_WEB_CHAT,
            settings={
                "title": "Bike shop",
                "prechat_fields": "name",
                "allowed_origins": f"http://127.0.0.1:{shop_port}",
            },
        )
        core = Core(r, admin, agent)
        shots = IMAGES if os.environ.get("USHER_SCREENSHOTS") else tmp_path
        try:
            async with (
                gateway(core, WebChat(), tmp_path, channel_id="webchat", channel=channel) as gw,
                async_playwright() as playwright,
            ):
                async with httpx.AsyncClient() as http:
                    snippet = (await http.get(gw.url(f"/{TENANT}/webchat/snippet"))).text
                chromium = await playwright.chromium.launch(
                    executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
                )
                try:
                    web_port = r.server.web.port
                    link = StoreProxy(f"http://127.0.0.1:{web_port}", web_port)
                    await link.start()
                    console_url = f"http://127.0.0.1:{link.port}/console/"
                    try:
                        async with shop_site(shop_port, snippet) as shop_url:
                            s = Stack(core, console_url, shop_url, chromium, shots, link)
                            yield s
                            assert s.errors == [], "a page raised"
                    finally:
                        await link.close()
                finally:
                    await chromium.close()
        finally:
            await agent.close()
            await admin.close()


async def test_a_customer_and_an_agent_talk_both_ways(
    pool: asyncpg.Pool, redis_url: str, tmp_path: Path
) -> None:
    async with stack(pool, redis_url, tmp_path, offer_timeout=60) as s:
        ann = await s.console("Ann")  # by display name
        await expect(ann.locator(".who-name")).to_have_text("Ann")
        status = ann.locator(".status-select")
        await expect(status).to_have_value(str(agent_pb2.AGENT_STATUS_ONLINE), timeout=UI_WAIT_MS)
        await expect(status.locator("option", has_text="In a meeting")).to_have_count(1)

        customer = await s.customer("Wong Siu Ming")
        await customer.locator(".usher-input").fill("Is the red one in stock?")
        await customer.locator(".usher-input").press("Enter")

        offer = ann.locator(".offer")
        await expect(offer).to_contain_text("Wong Siu Ming", timeout=UI_WAIT_MS)
        await expect(offer.locator(".countdown")).to_be_visible()
        await offer.locator(".accept").click()

        view = ann.locator(".conversation")
        await expect(view.locator(".msg.customer")).to_contain_text(
            "Is the red one in stock?", timeout=UI_WAIT_MS
        )
        composer = view.locator(".composer-input")
        await composer.fill("Yes! Three left in medium.")
        await expect(customer.locator(".usher-typing")).to_be_visible(timeout=UI_WAIT_MS)
        await composer.press("Enter")
        await expect(customer.locator(".usher-msg.agent")).to_have_text(
            "Yes! Three left in medium.", timeout=UI_WAIT_MS
        )
        await expect(composer).to_have_value("")

        await customer.locator(".usher-input").fill("Great, I'll take it.")
        await customer.locator(".usher-input").press("Enter")
        await expect(view.locator(".msg.customer").nth(1)).to_contain_text(
            "Great, I'll take it.", timeout=UI_WAIT_MS
        )
        await expect(view.locator(".msg.agent .receipt").first).to_contain_text(
            "Read", timeout=UI_WAIT_MS
        )
        await expect(ann.locator(".list-mine .count")).to_have_text("1", timeout=UI_WAIT_MS)

        # a canned reply found by its shortcut, with the agent's own words after it
        await composer.fill("/sto")
        await expect(view.locator(".canned-item")).to_contain_text("/stock", timeout=UI_WAIT_MS)
        await composer.press("Enter")
        await expect(view.locator(".canned-chip")).to_contain_text("/stock")
        await composer.fill("Shall I reserve one?")
        await composer.press("Enter")
        await expect(customer.locator(".usher-msg.agent").nth(1)).to_contain_text(
            "Hi Wong Siu Ming, it is in stock.", timeout=UI_WAIT_MS
        )
        await expect(customer.locator(".usher-msg.agent").nth(1)).to_contain_text(
            "Shall I reserve one?"
        )

        # a lost connection shows it is reconnecting; the feeds resume where they were
        await s.link.cut()  # the consoles' connections drop and new ones are refused
        await expect(ann.locator(".reconnecting")).to_be_visible(timeout=UI_WAIT_MS)
        await customer.locator(".usher-input").fill("Yes please, a medium.")
        await customer.locator(".usher-input").press("Enter")
        await s.link.restore()
        await expect(ann.locator(".reconnecting")).to_be_hidden(timeout=UI_WAIT_MS)
        await expect(view.locator(".msg.customer").nth(2)).to_contain_text(
            "Yes please, a medium.", timeout=UI_WAIT_MS
        )

        # a note and a tag beside the conversation
        await view.locator(".note-input").fill("Wants it delivered on Saturday")
        await view.locator(".note-input").press("Enter")
        await expect(view.locator(".note")).to_contain_text("Saturday", timeout=UI_WAIT_MS)
        await view.locator(".tag-input").fill("bicycles")
        await view.locator(".tag-input").press("Enter")
        await expect(view.locator(".conversation-tags .chip")).to_contain_text(
            "bicycles", timeout=UI_WAIT_MS
        )
        await ann.screenshot(path=s.shot("console-agent.png"))

        # a refused change shows the server's words, and what was typed stays
        too_long = "x" * 101
        await view.locator(".tag-input").fill(too_long)
        await view.locator(".tag-input").press("Enter")
        await expect(view.locator(".problem")).to_contain_text("add_tags", timeout=UI_WAIT_MS)
        await expect(view.locator(".tag-input")).to_have_value(too_long)

        # the language menu switches every label
        await ann.locator(".language-menu").select_option("zh-Hant")
        await expect(ann.locator(".list-mine")).to_contain_text("我的")
        await expect(view.locator(".end")).to_have_text("結束")
        await ann.locator(".language-menu").select_option("en")

        await view.locator(".outcome").select_option(str(conversation_pb2.OUTCOME_RESOLVED))
        await view.locator(".end").click()
        await expect(view.locator(".conversation-head .state")).not_to_have_text(
            "Active", timeout=UI_WAIT_MS
        )
        await expect(ann.locator(".list-ended .count")).to_have_text("1", timeout=UI_WAIT_MS)


async def owner_of(s: Stack, conversation: str) -> str:
    """The conversation's owner (``agents/{id}``) as the core records it."""
    row = await s.core.running.pool.fetchrow(
        "SELECT owner_agent_id FROM conversations WHERE tenant_id = $1 AND conversation_id = $2",
        TENANT,
        conversation.rsplit("/", 1)[1],
    )
    return f"agents/{row['owner_agent_id']}" if row and row["owner_agent_id"] else ""


async def test_an_offer_moves_on_a_transfer_is_accepted_and_the_supervisor_sees_it(
    pool: asyncpg.Pool, redis_url: str, tmp_path: Path
) -> None:
    async with stack(pool, redis_url, tmp_path, offer_timeout=3) as s:
        consoles = {"ann": await s.console("ann"), "bob": await s.console("BOB")}
        sue = await s.console("Sue")
        await expect(sue.locator(".who-role")).to_have_text("Supervisor")
        agents = sue.locator(".agents-table")
        for who in ("ann", "bob"):
            row = agents.locator(f"tr[data-agent='agents/{who}']")
            await expect(row).to_contain_text("Online", timeout=UI_WAIT_MS)
            await expect(row.locator(".load-figure")).to_have_text("0/2")

        customer = await s.customer("Lee")
        await customer.locator(".usher-input").fill("Hello?")
        await customer.locator(".usher-input").press("Enter")

        # the first agent offered lets it expire: it moves to the other's console
        first = await eventually(lambda: _offered(consoles), timeout=UI_WAIT_MS / 1000)
        second = "bob" if first == "ann" else "ann"
        await expect(consoles[first].locator(".offer")).to_have_count(0, timeout=UI_WAIT_MS)
        await expect(consoles[first].locator(".notice")).to_contain_text("expired")
        offer = consoles[second].locator(".offer")
        await expect(offer).to_contain_text("Lee", timeout=UI_WAIT_MS)
        await offer.locator(".accept").click()
        view = consoles[second].locator(".conversation")
        await expect(view.locator(".msg.customer")).to_contain_text("Hello?", timeout=UI_WAIT_MS)
        conversation = await view.get_attribute("data-conversation")
        assert conversation is not None
        await expect(agents.locator(f"tr[data-agent='agents/{second}'] .load-figure")).to_have_text(
            "1/2", timeout=UI_WAIT_MS
        )

        # a transfer to the first agent, through the department tree, accepted in their console
        await view.locator(".transfer").click()
        dialog = consoles[second].locator(".transfer-dialog")
        colleague = dialog.locator(f".colleague[data-agent='agents/{first}']")
        await expect(colleague).to_contain_text("Online", timeout=UI_WAIT_MS)
        await expect(colleague.locator(".load")).to_contain_text("0/2")
        await dialog.locator(".transfer-note").fill("Asks about delivery")
        await colleague.locator(".transfer-to").click()
        await expect(view.locator(".pending-transfer")).to_be_visible(timeout=UI_WAIT_MS)
        request = consoles[first].locator(".transfer-request")
        await expect(request).to_contain_text("Asks about delivery", timeout=UI_WAIT_MS)
        await request.locator(".accept-transfer").click()
        taken = consoles[first].locator(".conversation")
        await expect(taken.locator(".msg.customer")).to_contain_text("Hello?", timeout=UI_WAIT_MS)
        await expect(consoles[second].locator(".notice")).to_contain_text(
            "accepted", timeout=UI_WAIT_MS
        )
        assert await owner_of(s, conversation) == f"agents/{first}"

        # team chat: a direct message reaches the colleague's console
        await consoles[first].locator(".team-toggle").click()
        chat = consoles[first].locator(".team-chat")
        await chat.locator(f"li[data-agent='agents/{second}'] .colleague-open").click()
        await chat.locator(".team-input").fill("Thanks, I have Lee now.")
        await chat.locator(".team-send").click()
        await expect(chat.locator(".team-text")).to_have_text("Thanks, I have Lee now.")
        await expect(consoles[second].locator(".team-toggle .unread")).to_have_text(
            "1", timeout=UI_WAIT_MS
        )
        await consoles[second].locator(".team-toggle").click()
        await consoles[second].locator(".thread-open").first.click()
        await expect(consoles[second].locator(".team-text")).to_have_text(
            "Thanks, I have Lee now.", timeout=UI_WAIT_MS
        )

        # the supervisor's view shows the load move from one agent to the other
        await expect(agents.locator(f"tr[data-agent='agents/{first}'] .load-figure")).to_have_text(
            "1/2", timeout=UI_WAIT_MS
        )
        await expect(agents.locator(f"tr[data-agent='agents/{second}'] .load-figure")).to_have_text(
            "0/2", timeout=UI_WAIT_MS
        )
        await sue.locator(".list-active").click()
        await sue.locator(f".row[data-conversation='{conversation}'] .row-open").click()
        pane = sue.locator(".pane")
        await pane.locator(".explain").click()
        await expect(pane.locator(".decision")).to_have_count(2, timeout=UI_WAIT_MS)
        await pane.locator(".monitor").click()
        await expect(pane.locator(".monitoring")).to_be_visible(timeout=UI_WAIT_MS)
        await taken.locator(".composer-input").fill("I can help with delivery.")
        await taken.locator(".composer-input").press("Enter")
        await expect(pane.locator(".msg.agent")).to_contain_text(
            "I can help with delivery.", timeout=UI_WAIT_MS
        )
        await sue.screenshot(path=s.shot("console-supervisor.png"))

        # a session ended elsewhere (a new password ends the agent's sessions): back to sign-in
        await s.core.admin.set_agent_password(
            admin_service_pb2.SetAgentPasswordRequest(
                agent=f"agents/{second}", password="another long password"
            )
        )
        await expect(consoles[second].locator(".signin-notice")).to_be_visible(timeout=UI_WAIT_MS)


async def _offered(consoles: dict[str, Page]) -> str | None:
    """Which console shows an offer now, if one does."""
    for who, page in consoles.items():
        if await page.locator(".offer").count():
            return who
    return None
