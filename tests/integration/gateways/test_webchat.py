"""The web chat gateway against a real core, spoken to as the widget does (WebSocket frames,
HTTP posts): a chat both ways with typing, receipts and a rating; replay after a reconnect;
leave-a-message out of hours; uploads; the refusals, which store nothing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from google.protobuf import field_mask_pb2
from usher.client import BotClient, QrCodeClient
from usher.v1 import (
    admin_service_pb2,
    agent_service_pb2,
    channel_pb2,
    conversation_pb2,
    queue_pb2,
)
from usher.v1 import qr_code_service_pb2 as qr_pb
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from core.bots.flow import Content, MessageStep, ReferenceTrigger
from gateways.webchat.provider import WebChat
from gateways.webchat.store import WebChatStore
from tests.bot_kit import bot
from tests.integration.bot_hooks import serve
from tests.integration.gateways.kit import (
    TENANT,
    WAIT,
    Core,
    RunningGateway,
    core,
    eventually,
    gateway,
)

ORIGIN = "https://shop.example"
CONSOLE = "console-s3cret"
CHANNEL = channel_pb2.Channel(
    type=channel_pb2.CHANNEL_TYPE_WEB_CHAT,
    display_name="Shop chat",
    settings={
        "title": "Shop help",
        "greeting": "Hi! Ask us anything.",
        "prechat_fields": "name,phone,email",
        "prechat_required": "name",
        "allowed_origins": f"{ORIGIN}, http://127.0.0.1",
    },
    secrets={"console_token": CONSOLE},
)


@pytest.fixture
async def the_core(pool: asyncpg.Pool, redis_url: str) -> AsyncIterator[Core]:
    async with core(pool, redis_url) as c:
        yield c


class Widget:
    """A widget's socket: every frame read is kept in ``seen``; ``next`` takes frames in order
    of arrival from those not taken yet."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.seen: list[dict[str, Any]] = []
        self._untaken: list[dict[str, Any]] = []

    async def send(self, **frame: Any) -> None:
        await self.ws.send(json.dumps(frame))

    async def next(self, kind: str, /, **fields: Any) -> dict[str, Any]:
        def wanted(frame: dict[str, Any]) -> bool:
            return frame["type"] == kind and all(frame.get(k) == v for k, v in fields.items())

        async def scan() -> dict[str, Any]:
            for frame in self._untaken:
                if wanted(frame):
                    self._untaken.remove(frame)
                    return frame
            while True:
                received: dict[str, Any] = json.loads(await self.ws.recv())
                self.seen.append(received)
                if wanted(received):
                    return received
                self._untaken.append(received)

        return await asyncio.wait_for(scan(), WAIT)


def ws_url(gw: RunningGateway, path: str) -> str:
    return gw.url(path).replace("http://", "ws://")


@pytest.fixture
async def chat_gateway(the_core: Core, tmp_path: Path) -> AsyncIterator[RunningGateway]:
    async with gateway(
        the_core,
        WebChat(),
        tmp_path,
        channel_id="webchat",
        channel=CHANNEL,
        max_body_bytes=4096,
        max_attachment_bytes=64 * 1024,
    ) as gw:
        yield gw


async def open_widget(
    gw: RunningGateway, *, visitor: str = "", after: int = 0, **hello: Any
) -> tuple[Widget, dict[str, Any]]:
    ws = await connect(
        ws_url(gw, "/acme/webchat/ws"),
        origin=ORIGIN,  # type: ignore[arg-type]
        additional_headers={"Accept-Language": "en-HK,en;q=0.8"},
    )
    widget = Widget(ws)
    await widget.send(type="hello", visitor=visitor, after=after, **hello)
    welcome = await widget.next("welcome")
    await widget.next("ready")
    return widget, welcome


async def next_agent_event(events: Any, kind: str) -> Any:
    async def scan() -> Any:
        async for event in events:
            if event.WhichOneof("event") == kind:
                return getattr(event, kind)
        raise AssertionError("the agent stream ended")

    return await asyncio.wait_for(scan(), WAIT)


async def test_chat_both_ways_with_typing_receipts_and_rating(
    the_core: Core, chat_gateway: RunningGateway
) -> None:
    gw = chat_gateway
    events = the_core.agent.events()
    widget, welcome = await open_widget(
        gw,
        page="https://shop.example/pricing",
        referrer="https://search.example/?q=shop",
        title="Pricing",
        name="Chan Tai Man",
        phone="+852 9123 4567",
        email="tm@example.com",
    )
    visitor = welcome["visitor"]
    assert not welcome["returning"] and welcome["conversation"] == ""

    await widget.send(type="message", id="m1", text="Hello, is the red one in stock?")
    ack = await widget.next("ack", id="m1")
    await widget.send(type="message", id="m1", text="Hello, is the red one in stock?")
    again = await widget.next("ack", id="m1")  # a resend after a reconnect: nothing new
    assert again["duplicate"] and again["message"] == ack["message"]

    conversation = await the_core.accept_next(events)
    assert conversation == ack["conversation"]
    stored = (
        await the_core.agent.get_conversation(
            agent_service_pb2.GetConversationRequest(name=conversation)
        )
    ).conversation
    assert stored.customer.external_id == visitor
    assert (stored.customer.name, stored.customer.phone) == ("Chan Tai Man", "+85291234567")
    # the region (HK, from Accept-Language) went with StartConversation; the store's
    # conversation read does not return it, the visitor list below shows it

    await the_core.agent.notify_typing(
        agent_service_pb2.AgentServiceNotifyTypingRequest(conversation=conversation, active=True)
    )
    await widget.next("typing", active=True)
    reply = await the_core.reply(conversation, "Yes, we have three left.")
    shown = await widget.next("message", sender="agent")
    assert shown["text"] == "Yes, we have three left." and shown["message"] == reply.name

    await widget.send(type="typing", active=True)
    typing = await next_agent_event(events, "typing")
    assert typing.active
    await widget.send(type="read", message=reply.name)
    read = await next_agent_event(events, "receipt")
    assert read.message == reply.name and read.status == conversation_pb2.RECEIPT_STATUS_READ

    await the_core.agent.mark_read(
        agent_service_pb2.AgentServiceMarkReadRequest(message=ack["message"])
    )
    receipt = await widget.next("receipt", message=ack["message"])
    assert receipt["status"] == "read"

    async with httpx.AsyncClient() as http:
        listed = await http.get(
            gw.url("/acme/webchat/visitors"), headers={"Authorization": f"Bearer {CONSOLE}"}
        )
        assert listed.status_code == 200
        (seen,) = listed.json()["visitors"]
        assert seen["visitor"] == visitor and seen["region"] == "HK"
        assert seen["page_url"] == "https://shop.example/pricing"
        assert seen["referrer"] == "https://search.example/?q=shop"
        refused = await http.get(
            gw.url("/acme/webchat/visitors"), headers={"Authorization": "Bearer wrong"}
        )
        assert refused.status_code == 401

    ended = await the_core.agent.end_conversation(
        agent_service_pb2.EndConversationRequest(conversation=conversation)
    )
    if ended.conversation.state == conversation_pb2.CONVERSATION_STATE_WRAP_UP:
        await the_core.agent.finish_wrap_up(
            agent_service_pb2.FinishWrapUpRequest(conversation=conversation)
        )
    await widget.next("state", state="closed", conversation=conversation)
    await widget.send(type="rate", conversation=conversation, score=4, comment="quick, thanks")
    await widget.next("rated", conversation=conversation, score=4)
    await widget.ws.close()

    async with httpx.AsyncClient() as http:
        ratings = await http.get(
            gw.url("/acme/webchat/ratings"), headers={"Authorization": f"Bearer {CONSOLE}"}
        )
    assert ratings.json()["ratings"][0] == {
        **ratings.json()["ratings"][0],
        "conversation": conversation,
        "visitor": visitor,
        "score": 4,
        "comment": "quick, thanks",
    }
    customer = [
        m.text
        for m in await the_core.transcript(conversation)
        if m.sender == conversation_pb2.SENDER_CUSTOMER
    ]
    assert customer == ["Hello, is the red one in stock?"]
    assert await the_core.conversation_count() == 1
    await events.aclose()


async def test_a_returning_visitor_replays_what_they_missed(
    the_core: Core, chat_gateway: RunningGateway
) -> None:
    gw = chat_gateway
    events = the_core.agent.events()
    widget, welcome = await open_widget(gw)
    visitor = welcome["visitor"]
    await widget.send(type="message", id="a1", text="anyone there?")
    ack = await widget.next("ack", id="a1")
    conversation = await the_core.accept_next(events)
    await the_core.reply(conversation, "one moment")
    last_seq = (await widget.next("message", sender="agent"))["seq"]
    await widget.ws.close()

    await the_core.reply(conversation, "found it: yes")  # while the visitor is away
    await eventually(lambda: _history_has(gw, visitor, "found it: yes"))
    back, welcome = await open_widget(gw, visitor=visitor, after=last_seq)
    assert welcome["returning"] and welcome["conversation"] == conversation
    missed = [f for f in back.seen if f["type"] == "message"]
    assert [f["text"] for f in missed] == ["found it: yes"]
    await back.ws.close()

    fresh, _ = await open_widget(gw, visitor=visitor)  # a new page: the whole kept history
    texts = [f["text"] for f in fresh.seen if f["type"] == "message"]
    assert texts == ["anyone there?", "one moment", "found it: yes"]
    assert next(f for f in fresh.seen if f.get("text") == "anyone there?")["id"] == "a1"
    assert ack["conversation"] == conversation
    await fresh.ws.close()

    stranger, _ = await open_widget(gw)  # another visitor cannot rate or read this chat
    await stranger.send(type="rate", conversation=conversation, score=1)
    assert (await stranger.next("error"))["error"] == "not your conversation"
    await stranger.ws.close()
    await events.aclose()


def _history_has(gw: RunningGateway, visitor: str, text: str) -> bool:
    store = WebChatStore(gw.gateway.settings.data_dir / "webchat.sqlite3")
    try:
        return any(e.get("text") == text for e in store.history("acme", "webchat", visitor))
    finally:
        store.close()


async def close_queue(the_core: Core) -> None:
    """The support queue is closed at all hours (no opening ranges)."""
    await the_core.admin.update_queue(
        admin_service_pb2.UpdateQueueRequest(
            queue=queue_pb2.Queue(
                name="queues/support", business_hours=queue_pb2.BusinessHours(time_zone="UTC")
            ),
            update_mask=field_mask_pb2.FieldMask(paths=["business_hours"]),
        )
    )


async def test_out_of_hours_the_visitor_leaves_a_message(
    the_core: Core, chat_gateway: RunningGateway
) -> None:
    gw = chat_gateway
    await close_queue(the_core)
    widget, welcome = await open_widget(gw, name="Ada")
    visitor = welcome["visitor"]
    await widget.send(type="message", id="q1", text="are you open?")
    await widget.next("ack", id="q1")
    leave = await widget.next("system", kind="leave_message")
    assert leave["text"]
    closed = await widget.next("state", state="closed")
    assert closed["reason"] == "left_message"

    async with httpx.AsyncClient() as http:
        form = {
            "visitor": visitor,
            "id": "form1",
            "name": "Ada Lovelace",
            "email": "ada@example.com",
            "phone": "",
            "text": "Please call me back about the red one.",
        }
        headers = {"Origin": ORIGIN, "Content-Type": "application/json"}
        sent = await http.post(gw.url("/acme/webchat/offline-message"), json=form, headers=headers)
        assert sent.status_code == 200, sent.text
        again = await http.post(gw.url("/acme/webchat/offline-message"), json=form, headers=headers)
        assert again.json() == {"conversation": sent.json()["conversation"], "duplicate": True}
    left = sent.json()["conversation"]
    await widget.next("offline_sent", conversation=left)

    transcript = await the_core.transcript(left)
    assert [m.text for m in transcript if m.sender == conversation_pb2.SENDER_CUSTOMER] == [
        "Name: Ada Lovelace\nE-mail: ada@example.com\n\nPlease call me back about the red one."
    ]
    stored = (
        await the_core.agent.get_conversation(agent_service_pb2.GetConversationRequest(name=left))
    ).conversation
    assert stored.customer.external_id == visitor
    assert list(stored.tags) == ["offline"]
    # the left message's own closing notices are kept from the visitor (already thanked)
    fresh, _ = await open_widget(gw, visitor=visitor)
    after_left = fresh.seen[[f.get("type") for f in fresh.seen].index("offline_sent") :]
    assert not [f for f in after_left if f.get("kind") == "leave_message"]
    await fresh.ws.close()
    await widget.ws.close()


async def test_uploads_become_attachments(the_core: Core, chat_gateway: RunningGateway) -> None:
    gw = chat_gateway
    events = the_core.agent.events()
    widget, welcome = await open_widget(gw)
    visitor = welcome["visitor"]
    async with httpx.AsyncClient() as http:
        uploaded = await http.post(
            gw.url(f"/acme/webchat/upload?visitor={visitor}"),
            content=b"\x89PNG tiny",
            headers={"Content-Type": "image/png", "X-File-Name": "photo%201.png", "Origin": ORIGIN},
        )
        assert uploaded.status_code == 200, uploaded.text
        assert uploaded.headers["access-control-allow-origin"] == ORIGIN
        page = await http.post(
            gw.url(f"/acme/webchat/upload?visitor={visitor}"),
            content=b"<script>alert(1)</script>",
            headers={"Content-Type": "text/html", "Origin": ORIGIN},
        )
        assert page.json()["content_type"] == "application/octet-stream"
    blob = uploaded.json()
    assert blob["name"] == "photo 1.png"
    await widget.send(
        type="message", id="f1", text="", attachments=[{"sha256": blob["sha256"], "name": "p.png"}]
    )
    await widget.next("ack", id="f1")
    await widget.send(
        type="message", id="f2", text="x", attachments=[{"sha256": "0" * 64, "name": "no.png"}]
    )
    refused = await widget.next("error", id="f2")
    assert "no uploaded file" in refused["error"]
    conversation = await the_core.accept_next(events)
    (message,) = [
        m
        for m in await the_core.transcript(conversation)
        if m.sender == conversation_pb2.SENDER_CUSTOMER
    ]
    (attachment,) = message.attachments
    assert (attachment.sha256, attachment.content_type, attachment.name) == (
        blob["sha256"],
        "image/png",
        "p.png",
    )
    async with httpx.AsyncClient() as http:
        assert (await http.get(attachment.uri)).content == b"\x89PNG tiny"
    await widget.ws.close()
    await events.aclose()


async def test_the_embed_endpoints(chat_gateway: RunningGateway) -> None:
    gw = chat_gateway
    async with httpx.AsyncClient() as http:
        script = await http.get(gw.url("/acme/webchat/widget.js"))
        assert script.status_code == 200 and "javascript" in script.headers["content-type"]
        assert "usher:" in script.text
        assert (await http.get(gw.url("/acme/webchat/widget.css"))).status_code == 200
        config = await http.get(gw.url("/acme/webchat/config"), headers={"Origin": ORIGIN})
        assert config.headers["access-control-allow-origin"] == ORIGIN
        body = config.json()
        assert body["title"] == "Shop help" and body["greeting"] == "Hi! Ask us anything."
        assert body["prechat_fields"] == ["name", "phone", "email"]
        assert body["prechat_required"] == ["name"]
        assert body["availability"] == "unknown"
        snippet = (await http.get(gw.url("/acme/webchat/snippet"))).text.strip()
        assert snippet == f'<script src="{gw.url("/acme/webchat/widget.js")}" async></script>'
        demo = await http.get(gw.url("/acme/webchat/demo"))
        assert snippet in demo.text
        assert (await http.get(gw.url("/acme/nope/widget.js"))).status_code == 404
        assert (await http.get(gw.url("/other/webchat/config"))).status_code == 404


async def closed_with(ws: ClientConnection) -> int:
    async def drain() -> int:
        try:
            while True:
                await ws.recv()
        except ConnectionClosed as closed:
            assert closed.rcvd is not None
            return closed.rcvd.code

    return await asyncio.wait_for(drain(), WAIT)


async def test_refusals_store_nothing(the_core: Core, chat_gateway: RunningGateway) -> None:
    gw = chat_gateway
    for path, origin, status in (
        ("/nobody/webchat/ws", ORIGIN, 404),
        ("/acme/other/ws", ORIGIN, 404),
        ("/acme/webchat/ws", "https://evil.example", 403),
    ):
        with pytest.raises(InvalidStatus) as refused:
            await connect(ws_url(gw, path), origin=origin)  # type: ignore[arg-type]
        assert refused.value.response.status_code == status

    widget, _ = await open_widget(gw)
    await widget.send(type="message", id="big", text="x" * 5000)  # over max_body_bytes
    assert await closed_with(widget.ws) == 1009
    widget, _ = await open_widget(gw)
    await widget.ws.send("{not json")
    assert await closed_with(widget.ws) == 1003
    widget, _ = await open_widget(gw)
    await widget.send(type="message", id="m", text="  ")
    assert await closed_with(widget.ws) == 1003
    widget, welcome = await open_widget(gw)
    await widget.ws.send(b"\x00binary")
    assert await closed_with(widget.ws) == 1003
    ws = await connect(ws_url(gw, "/acme/webchat/ws"), origin=ORIGIN)  # type: ignore[arg-type]
    await ws.send(json.dumps({"type": "message", "id": "early", "text": "no hello"}))
    assert await closed_with(ws) == 1008

    visitor = welcome["visitor"]
    async with httpx.AsyncClient() as http:
        url = gw.url("/acme/webchat/offline-message")
        good = {"visitor": visitor, "id": "o1", "email": "a@example.com", "text": "hi"}
        cases: list[tuple[str, str, str | None, int]] = [
            (url, json.dumps(good), "https://evil.example", 403),
            (url, json.dumps(good), None, 403),  # no Origin while the channel names its sites
            (gw.url("/nobody/webchat/offline-message"), json.dumps(good), ORIGIN, 404),
            (url, json.dumps({**good, "text": "x" * 5000}), ORIGIN, 413),
            (url, "{broken", ORIGIN, 400),
            (url, json.dumps({**good, "email": ""}), ORIGIN, 400),
            (url, json.dumps({**good, "visitor": "short"}), ORIGIN, 400),
            (url, json.dumps({**good, "email": "not-an-address"}), ORIGIN, 400),
        ]
        for target, body, page_origin, status in cases:
            headers = {"Origin": page_origin} if page_origin else {}
            answer = await http.post(target, content=body, headers=headers)
            assert answer.status_code == status, (body[:60], answer.text)
        too_big = await http.post(
            gw.url(f"/acme/webchat/upload?visitor={visitor}"),
            content=b"x" * (gw.gateway.settings.max_attachment_bytes + 1),
            headers={"Origin": ORIGIN},
        )
        assert too_big.status_code == 413
        stranger = await http.post(
            gw.url("/acme/webchat/upload?visitor=" + "z" * 20),
            content=b"data",
            headers={"Origin": ORIGIN},
        )
        assert stranger.status_code == 400
    assert await the_core.conversation_count() == 0
    assert await the_core.message_count() == 0


def test_history_keeps_the_newest_entries_of_each_visitor(tmp_path: Path) -> None:
    store = WebChatStore(tmp_path / "webchat.sqlite3", history_limit=3, history_days=1)
    for i in range(5):
        store.append("acme", "webchat", "visitor-a-0000000000", {"n": i}, now=1000.0 + i)
        store.append("acme", "webchat", "visitor-b-0000000000", {"n": i}, now=1000.0 + i)
    assert [e["n"] for e in store.history("acme", "webchat", "visitor-a-0000000000")] == [2, 3, 4]
    assert store.append("acme", "webchat", "visitor-a-0000000000", {}, event_id=7, now=1005.0)
    assert (
        store.append("acme", "webchat", "visitor-a-0000000000", {}, event_id=7, now=1006.0) is None
    )
    store.append("acme", "webchat", "visitor-b-0000000000", {"n": 9}, now=1000.0 + 86400 + 4.5)
    assert [e["n"] for e in store.history("acme", "webchat", "visitor-b-0000000000")] == [9]
    store.close()


async def test_choices_reach_the_widget_and_a_click_comes_back_as_the_option(
    the_core: Core, chat_gateway: RunningGateway
) -> None:
    gw = chat_gateway
    events = the_core.agent.events()
    widget, welcome = await open_widget(gw, name="Mei")
    await widget.send(type="message", id="c1", text="hello")
    await widget.next("ack", id="c1")
    conversation = await the_core.accept_next(events)
    choices = conversation_pb2.MessageChoices(
        style=conversation_pb2.CHOICE_STYLE_LIST,
        header="Orders",
        options=[
            conversation_pb2.MessageOption(id="refund", title="Refund", description="Money back"),
            conversation_pb2.MessageOption(id="delivery", title="Delivery"),
        ],
    )
    await the_core.reply(conversation, "What is it about?", choices=choices)
    shown = await widget.next("message", sender="agent")
    assert shown["choices"] == {
        "style": "list",
        "header": "Orders",
        "footer": "",
        "button_text": "",
        "options": [
            {"id": "refund", "title": "Refund", "description": "Money back"},
            {"id": "delivery", "title": "Delivery", "description": ""},
        ],
    }
    await widget.send(type="message", id="c2", text="Refund", option="refund")
    await widget.next("ack", id="c2")
    await widget.send(type="message", id="c3", text="delivery")  # typed, not clicked: a title
    await widget.next("ack", id="c3")
    said = [
        (m.text, m.selected_option_id)
        for m in await the_core.transcript(conversation)
        if m.sender == conversation_pb2.SENDER_CUSTOMER
    ]
    assert said == [("hello", ""), ("Refund", "refund"), ("delivery", "delivery")]

    # after a reload the history replays the choices and the visitor's pick with its option
    again, _ = await open_widget(gw, visitor=welcome["visitor"])
    [offered] = [f for f in again.seen if f.get("choices")]
    assert offered["choices"] == shown["choices"]
    [pick] = [f for f in again.seen if f.get("id") == "c2"]
    assert pick["option"] == "refund"
    await again.ws.close()

    # an option id that is not one is refused: the socket closes and nothing is stored
    await widget.send(type="message", id="c4", text="x", option="not an id")
    with pytest.raises(ConnectionClosed) as closed:
        await widget.next("ack", id="c4")
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1003
    assert await the_core.message_count() == len(said)
    await events.aclose()


async def test_a_qr_codes_ref_starts_its_bot_and_counts_for_the_code(
    the_core: Core, chat_gateway: RunningGateway
) -> None:
    gw = chat_gateway
    supervisor = await the_core.running.token(TENANT, "supervisor")
    async with (
        QrCodeClient(the_core.target, supervisor) as codes,
        BotClient(the_core.target, supervisor) as bots,
    ):
        target = qr_pb.WebChatTarget(page_url=f"{ORIGIN}/help", reference="poster-7")
        created = await codes.create_qr_code(
            qr_pb.CreateQrCodeRequest(
                qr_code=qr_pb.QrCode(
                    display_name="Poster", target=qr_pb.QrCodeTarget(web_chat=target)
                )
            )
        )
        code = created.qr_code
        assert code.target_url == f"{ORIGIN}/help?ref=poster-7"
        await serve(
            bots,
            bot(
                "poster",
                (MessageStep(id="say", content=Content(body="Thanks for scanning our poster!")),),
                triggers=(ReferenceTrigger(reference="poster-7"),),
                default_reply="Sorry?",
            ),
        )

        # the widget on the code's page sends the page's ref; the bot answers, not the queue
        scanned, _ = await open_widget(gw, page=code.target_url, ref="poster-7")
        await scanned.send(type="message", id="s1", text="hello")
        ack = await scanned.next("ack", id="s1")
        said = await scanned.next("message", sender="bot")
        assert said["text"] == "Thanks for scanning our poster!"
        # without the widget's ref the page URL's is read; a malformed one is dropped
        from_page, _ = await open_widget(gw, page=code.target_url)
        await from_page.send(type="message", id="p1", text="hi")
        await from_page.next("ack", id="p1")
        await from_page.next("message", sender="bot")
        plain, _ = await open_widget(gw, page=f"{ORIGIN}/help?ref=not%20one", ref="")
        await plain.send(type="message", id="n1", text="hi there")
        await plain.next("ack", id="n1")

        stored = await the_core.running.pool.fetch(
            "SELECT conversation_id, reference, state FROM conversations WHERE tenant_id = $1",
            TENANT,
        )
        by_id = {f"conversations/{r['conversation_id']}": r for r in stored}
        assert by_id[ack["conversation"]]["reference"] == "poster-7"
        assert sorted(r["reference"] for r in stored) == ["", "poster-7", "poster-7"]
        assert sorted(r["state"] for r in stored)[:2] == ["bot", "bot"]  # the third: to Ann
        counted = await codes.get_qr_code(qr_pb.GetQrCodeRequest(name=code.name))
        assert counted.qr_code.counts.conversations == 2
        for widget in (scanned, from_page, plain):
            await widget.ws.close()
