"""The WhatsApp gateway against a real core and a local fake of Meta's Cloud API: the
verification handshake, signed notifications in (text, media, picks, locations, batches,
redeliveries, statuses), agents' messages out in the Cloud API's shapes (text, media, buttons,
lists, templates outside the 24-hour window), read marks and typing, and the refusals."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from usher.v1 import agent_service_pb2, channel_pb2, conversation_pb2

from gateways.common.signatures import hmac_sha256_hex
from gateways.whatsapp import WhatsApp
from tests.integration.gateways import fake_meta as meta
from tests.integration.gateways.fake_meta import FakeMeta, StoredMedia, fake_meta
from tests.integration.gateways.kit import Core, RunningGateway, core, eventually, gateway

WA_ID = "85291234567"
PHONE = "+85291234567"
HOOK = "/acme/wa/webhook"


class Clock:
    """The gateway's clock, to step over the 24-hour window without waiting."""

    def __init__(self) -> None:
        self.skew = dt.timedelta()

    def __call__(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + self.skew


def channel(fake: FakeMeta, **settings: str) -> channel_pb2.Channel:
    return channel_pb2.Channel(
        type=channel_pb2.CHANNEL_TYPE_WHATSAPP,
        display_name="WhatsApp",
        settings={
            "phone_number_id": meta.PHONE_NUMBER_ID,
            "api_base_url": fake.url,
            **settings,
        },
        secrets={
            "access_token": meta.TOKEN,
            "app_secret": meta.APP_SECRET,
            "verify_token": meta.VERIFY_TOKEN,
        },
    )


@pytest.fixture
async def the_core(pool: asyncpg.Pool, redis_url: str) -> AsyncIterator[Core]:
    async with core(pool, redis_url) as c:
        yield c


@pytest.fixture
async def fake() -> AsyncIterator[FakeMeta]:
    async with fake_meta() as f:
        yield f


async def post(http: httpx.AsyncClient, gw: RunningGateway, payload: dict[str, Any]) -> Any:
    body, headers = meta.signed(payload)
    response = await http.post(gw.url(HOOK), content=body, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def text(wamid: str, body: str, **kw: Any) -> dict[str, Any]:
    return meta.message(wamid, "text", {"body": body}, **kw)


async def customer_texts(core: Core, conversation: str) -> list[str]:
    return [
        m.text
        for m in await core.transcript(conversation)
        if m.sender == conversation_pb2.SENDER_CUSTOMER
    ]


async def test_verification_handshake(the_core: Core, fake: FakeMeta, tmp_path: Path) -> None:
    async with (
        gateway(the_core, WhatsApp(), tmp_path, channel_id="wa", channel=channel(fake)) as gw,
        httpx.AsyncClient() as http,
    ):
        good = {"hub.mode": "subscribe", "hub.verify_token": meta.VERIFY_TOKEN}
        answer = await http.get(gw.url(HOOK), params={**good, "hub.challenge": "1158201444"})
        assert answer.status_code == 200
        assert answer.text == "1158201444"
        assert answer.headers["content-type"].startswith("text/plain")
        wrong = {**good, "hub.verify_token": "guess", "hub.challenge": "1"}
        assert (await http.get(gw.url(HOOK), params=wrong)).status_code == 403
        mode = {**good, "hub.mode": "unsubscribe", "hub.challenge": "1"}
        assert (await http.get(gw.url(HOOK), params=mode)).status_code == 403
        assert (await http.get(gw.url(HOOK), params={"hub.challenge": "1"})).status_code == 403
        elsewhere = await http.get(gw.url("/acme/nope/webhook"), params=good)
        assert elsewhere.status_code == 404


async def test_in_routed_answered_out_with_receipts(
    the_core: Core, fake: FakeMeta, tmp_path: Path
) -> None:
    events = the_core.agent.events()
    async with (
        gateway(the_core, WhatsApp(), tmp_path, channel_id="wa", channel=channel(fake)) as gw,
        httpx.AsyncClient() as http,
    ):
        hello = meta.notification(meta.messages(WA_ID, "Chan Tai Man", text("wamid.IN1", "hello")))
        assert (await post(http, gw, hello))["stored"] == 1
        again = await post(http, gw, hello)  # Meta redelivers
        assert again["stored"] == 0 and again["duplicates"] == 1
        assert await the_core.message_count() == 1

        conversation = await the_core.accept_next(events)
        found = await the_core.agent.get_conversation(
            agent_service_pb2.GetConversationRequest(name=conversation)
        )
        customer = found.conversation.customer
        assert (customer.external_id, customer.phone, customer.name) == (
            PHONE,
            PHONE,
            "Chan Tai Man",
        )
        reply = await the_core.reply(conversation, "Hi, Ann here. See https://example.com/help")
        await eventually(lambda: reply.text in fake.texts())
        assert fake.problems == []
        sent = next(m for m in fake.sent if m.get("text", {}).get("body") == reply.text)
        assert sent == {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": WA_ID,
            "type": "text",
            "text": {"body": reply.text, "preview_url": True},
        }

        wamid = f"wamid.OUT{fake.sent.index(sent) + 1:06d}"
        receipts = meta.notification(
            meta.statuses(
                meta.status(wamid, "sent", WA_ID),
                meta.status(wamid, "delivered", WA_ID),
                meta.status(wamid, "read", WA_ID),
            )
        )
        assert (await post(http, gw, receipts))["receipts"] == 2
        assert (await post(http, gw, receipts))["receipts"] == 0  # repeated statuses

        thanks = meta.notification(meta.messages(WA_ID, "Chan Tai Man", text("wamid.IN2", "ok")))
        assert (await post(http, gw, thanks))["stored"] == 1
        assert await customer_texts(the_core, conversation) == ["hello", "ok"]
        assert await the_core.conversation_count() == 1
    await events.aclose()


async def test_refusals_store_nothing(the_core: Core, fake: FakeMeta, tmp_path: Path) -> None:
    async with (
        gateway(
            the_core,
            WhatsApp(),
            tmp_path,
            channel_id="wa",
            channel=channel(fake),
            max_body_bytes=2048,
        ) as gw,
        httpx.AsyncClient() as http,
    ):
        payload = meta.notification(meta.messages(WA_ID, "Chan", text("wamid.X1", "hi")))
        body, headers = meta.signed(payload)

        async def status(path: str, content: bytes, sent: dict[str, str]) -> int:
            return (await http.post(gw.url(path), content=content, headers=sent)).status_code

        forged = meta.signed(payload, secret="not-the-app-secret")[1]
        assert await status(HOOK, body, forged) == 401
        unsigned = {"content-type": "application/json"}
        assert await status(HOOK, body, unsigned) == 401
        bare = dict(headers, **{"x-hub-signature-256": headers["x-hub-signature-256"][7:]})
        assert await status(HOOK, body, bare) == 401  # the hex without "sha256="
        assert await status(HOOK, body + b" ", headers) == 401  # not the signed bytes
        assert await status("/nobody/wa/webhook", body, headers) == 404
        assert await status("/acme/other/webhook", body, headers) == 404

        big = meta.notification(meta.messages(WA_ID, "Chan", text("wamid.X2", "x" * 3000)))
        assert await status(HOOK, *meta.signed(big)) == 413

        def malformed(raw: bytes) -> tuple[bytes, dict[str, str]]:
            return raw, {
                "content-type": "application/json",
                "x-hub-signature-256": "sha256=" + hmac_sha256_hex(meta.APP_SECRET, raw),
            }

        assert await status(HOOK, *malformed(b"{not json")) == 400
        assert await status(HOOK, *meta.signed({"object": "page", "entry": []})) == 400
        no_sender = meta.notification(meta.messages(WA_ID, "Chan", text("wamid.X3", "hi")))
        del no_sender["entry"][0]["changes"][0]["value"]["messages"][0]["from"]
        assert await status(HOOK, *meta.signed(no_sender)) == 400
        # one bad message refuses the whole notification: the good one is not stored either
        mixed = meta.notification(
            meta.messages(WA_ID, "Chan", text("wamid.X4", "fine")),
            meta.messages("12", "Bad", text("wamid.X5", "not a number")),
        )
        assert await status(HOOK, *meta.signed(mixed)) == 400
        # another business number, not one of the tenant's channels: acknowledged, not stored
        stranger = meta.notification(
            meta.messages(WA_ID, "Chan", text("wamid.X6", "hi"), number="999000999")
        )
        assert await post(http, gw, stranger) == {
            "stored": 0,
            "duplicates": 0,
            "skipped": 0,
            "receipts": 0,
        }
    assert await the_core.conversation_count() == 0
    assert await the_core.message_count() == 0
    assert fake.sent == []


async def test_a_batch_of_kinds_is_stored_whole(
    the_core: Core, fake: FakeMeta, tmp_path: Path
) -> None:
    fake.media["media-img"] = StoredMedia(b"\x89PNG picture", "image/png")
    fake.media["media-doc"] = StoredMedia(b"%PDF-1.7 invoice", "application/pdf", fail_times=1)
    fake.media["media-big"] = StoredMedia(b"v" * 5000, "video/mp4")
    other = "447700900123"
    batch = meta.notification(
        meta.messages(
            WA_ID,
            "Chan Tai Man",
            text("wamid.B1", "my order"),
            meta.message(
                "wamid.B2",
                "image",
                {"caption": "the box", "mime_type": "image/png", "sha256": "x", "id": "media-img"},
            ),
            meta.message(
                "wamid.B3",
                "document",
                {"filename": "invoice.pdf", "mime_type": "application/pdf", "id": "media-doc"},
            ),
            meta.message("wamid.B4", "video", {"mime_type": "video/mp4", "id": "media-big"}),
            meta.message("wamid.B5", "reaction", {"message_id": "wamid.B1", "emoji": "👍"}),
        ),
        meta.messages(
            WA_ID,
            "Chan Tai Man",
            meta.message(
                "wamid.B6",
                "interactive",
                {"type": "button_reply", "button_reply": {"id": "billing", "title": "Billing"}},
            ),
            meta.message(
                "wamid.B7",
                "interactive",
                {
                    "type": "list_reply",
                    "list_reply": {"id": "Refund", "title": "Refund", "description": "Money"},
                },
            ),
            meta.message(
                "wamid.B8",
                "location",
                {
                    "latitude": 22.2783,
                    "longitude": 114.1747,
                    "name": "Shop 3",
                    "address": "1 Queen's Road, Central",
                },
            ),
        ),
        meta.messages(other, "Alice", text("wamid.C1", "hello from London")),
        meta.statuses(meta.status("wamid.UNKNOWN", "delivered", WA_ID)),
        entries=2,
    )
    events = the_core.agent.events()
    async with (
        gateway(
            the_core,
            WhatsApp(),
            tmp_path,
            channel_id="wa",
            channel=channel(fake),
            max_attachment_bytes=4096,
        ) as gw,
        httpx.AsyncClient() as http,
    ):
        body, headers = meta.signed(batch)
        first = await http.post(gw.url(HOOK), content=body, headers=headers)
        assert first.status_code == 503  # the document's download failed: Meta will redeliver
        done = await post(http, gw, batch)
        assert done == {"stored": 6, "duplicates": 2, "skipped": 1, "receipts": 0}
        assert await post(http, gw, batch) == {
            "stored": 0,
            "duplicates": 8,
            "skipped": 1,
            "receipts": 0,
        }
        assert await the_core.conversation_count() == 2
        assert await the_core.message_count() == 8

        chan = await the_core.transcript(await the_core.accept_next(events))  # the first to write
        said = [m for m in chan if m.sender == conversation_pb2.SENDER_CUSTOMER]
        assert [m.text for m in said] == [
            "my order",
            "the box",
            "",
            "[video video-wamid.B4 not kept: media media-big is 5000 bytes, over 4096]",
            "Billing",
            "Refund",
            "📍 Shop 3, 1 Queen's Road, Central (22.2783, 114.1747)\n"
            "https://www.google.com/maps/search/?api=1&query=22.2783,114.1747",
        ]
        assert [m.provider_message_id for m in said][:3] == ["wamid.B1", "wamid.B2", "wamid.B3"]
        assert [m.selected_option_id for m in said][4:6] == ["billing", "Refund"]
        image, document = said[1].attachments[0], said[2].attachments[0]
        assert (image.content_type, image.size) == ("image/png", len(b"\x89PNG picture"))
        assert gw.gateway.blobs.read(image.sha256) == b"\x89PNG picture"
        assert (document.name, document.content_type) == ("invoice.pdf", "application/pdf")
        fetched = await http.get(gw.gateway.blobs.url(document.sha256))
        assert fetched.content == b"%PDF-1.7 invoice"
        alice = await the_core.running.pool.fetchval(
            "SELECT content FROM messages WHERE provider_message_id = 'wamid.C1'"
        )
        assert alice == "hello from London"
        assert fake.problems == []
    await events.aclose()


async def test_buttons_lists_media_and_the_template_window(
    the_core: Core, fake: FakeMeta, tmp_path: Path
) -> None:
    clock = Clock()
    settings = {"template_name": "follow_up", "template_language": "en_GB", "list_button": "Pick"}
    provider = WhatsApp(clock=clock)
    events = the_core.agent.events()
    async with (
        gateway(
            the_core,
            provider,
            tmp_path,
            channel_id="wa",
            channel=channel(fake, **settings),
        ) as gw,
        httpx.AsyncClient() as http,
    ):
        await post(
            http, gw, meta.notification(meta.messages(WA_ID, "Chan", text("wamid.W1", "hi")))
        )
        conversation = await the_core.accept_next(events)

        two = conversation_pb2.MessageChoices(
            header="Support",
            footer="Tap one",
            options=[
                conversation_pb2.MessageOption(id="billing", title="Billing"),
                conversation_pb2.MessageOption(id="other", title="Something else entirely"),
            ],
        )
        await the_core.reply(conversation, "How can we help?", choices=two)
        buttons = await eventually(lambda: fake.messages_of("interactive"))
        assert buttons[0] == {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": WA_ID,
            "type": "interactive",
            "interactive": {
                "type": "button",
                "header": {"type": "text", "text": "Support"},
                "body": {"text": "How can we help?"},
                "footer": {"text": "Tap one"},
                "action": {
                    "buttons": [
                        {"type": "reply", "reply": {"id": "billing", "title": "Billing"}},
                        {
                            "type": "reply",
                            "reply": {"id": "other", "title": "Something else enti…"},
                        },
                    ]
                },
            },
        }
        tapped = meta.message(
            "wamid.W3",
            "interactive",
            {
                "type": "button_reply",
                "button_reply": {"id": "other", "title": "Something else enti…"},
            },
        )
        await post(http, gw, meta.notification(meta.messages(WA_ID, "Chan", tapped)))

        branches = conversation_pb2.MessageChoices(
            button_text="Branches",
            options=[
                conversation_pb2.MessageOption(
                    id=f"b{i}", title=f"Branch {i}", description=f"Open 9-{i}"
                )
                for i in range(1, 6)
            ],
        )
        await the_core.reply(conversation, "Which branch?", choices=branches)
        lists = await eventually(lambda: fake.messages_of("interactive")[1:])
        assert lists[0]["interactive"] == {
            "type": "list",
            "body": {"text": "Which branch?"},
            "action": {
                "button": "Branches",
                "sections": [
                    {
                        "rows": [
                            {"id": f"b{i}", "title": f"Branch {i}", "description": f"Open 9-{i}"}
                            for i in range(1, 6)
                        ]
                    }
                ],
            },
        }
        chosen = meta.message(
            "wamid.W4",
            "interactive",
            {"type": "list_reply", "list_reply": {"id": "b3", "title": "Branch 3"}},
        )
        await post(http, gw, meta.notification(meta.messages(WA_ID, "Chan", chosen)))

        # a list that asks for it (style LIST) even with two short options; the channel's
        # ``list_button`` labels it when the choices name no button
        listed = conversation_pb2.MessageChoices(
            style=conversation_pb2.CHOICE_STYLE_LIST,
            options=[
                conversation_pb2.MessageOption(id="yes", title="Yes"),
                conversation_pb2.MessageOption(id="no", title="No"),
            ],
        )
        await the_core.reply(conversation, "Solved?", choices=listed)
        third = await eventually(lambda: fake.messages_of("interactive")[2:])
        assert third[0]["interactive"]["type"] == "list"
        assert third[0]["interactive"]["action"]["button"] == "Pick"

        # past WhatsApp's limits (a body over 4096 characters): numbered text, answered by number
        long = "x" * 4100
        await the_core.reply(conversation, long, choices=listed)
        await eventually(lambda: any("1. Yes\n2. No" in t for t in fake.texts()))
        typed = text("wamid.W5", "2")
        await post(http, gw, meta.notification(meta.messages(WA_ID, "Chan", typed)))
        picks = [
            (m.text, m.selected_option_id)
            for m in await the_core.transcript(conversation)
            if m.sender == conversation_pb2.SENDER_CUSTOMER
        ]
        assert picks[1:] == [
            ("Something else enti…", "other"),
            ("Branch 3", "b3"),
            ("2", "no"),
        ]

        picture = gw.gateway.blobs.put(b"\xff\xd8 jpeg", content_type="image/jpeg", name="map.jpg")
        await the_core.reply(
            conversation, "Our map", attachments=[gw.gateway.blobs.attachment(picture)]
        )
        images = await eventually(lambda: fake.messages_of("image"))
        assert images[0]["image"] == {
            "link": gw.gateway.blobs.url(picture.sha256),
            "caption": "Our map",
        }
        assert (await http.get(images[0]["image"]["link"])).content == b"\xff\xd8 jpeg"

        clock.skew = dt.timedelta(hours=25)  # the customer's last message is over a day old
        await the_core.reply(conversation, "Are you still there?")
        templates = await eventually(lambda: fake.messages_of("template"))
        assert templates[0] == {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": WA_ID,
            "type": "template",
            "template": {"name": "follow_up", "language": {"code": "en_GB"}},
        }
        await the_core.reply(conversation, "Hello?")  # the template awaits an answer: not sent
        await eventually(lambda: provider.unsent_outside_window == 1)

        back = text("wamid.W2", "yes, here", at=clock().timestamp())
        await post(http, gw, meta.notification(meta.messages(WA_ID, "Chan", back)))
        await the_core.reply(conversation, "Great")
        await eventually(lambda: "Great" in fake.texts())
        assert "Hello?" not in fake.texts()
        assert len(fake.messages_of("template")) == 1
        assert fake.problems == []
    await events.aclose()


async def test_template_carries_the_text_when_configured(
    the_core: Core, fake: FakeMeta, tmp_path: Path
) -> None:
    clock = Clock()
    settings = {"template_name": "agent_reply", "template_parameter": "text"}
    events = the_core.agent.events()
    async with (
        gateway(
            the_core,
            WhatsApp(clock=clock),
            tmp_path,
            channel_id="wa",
            channel=channel(fake, **settings),
        ) as gw,
        httpx.AsyncClient() as http,
    ):
        await post(
            http, gw, meta.notification(meta.messages(WA_ID, "Chan", text("wamid.T1", "hi")))
        )
        conversation = await the_core.accept_next(events)
        clock.skew = dt.timedelta(days=2)
        await the_core.reply(conversation, "Your parcel\nhas shipped")
        await the_core.reply(conversation, "Tracking: 123")
        await eventually(lambda: len(fake.messages_of("template")) == 2)
        assert [m["template"] for m in fake.messages_of("template")] == [
            {
                "name": "agent_reply",
                "language": {"code": "en_US"},
                "components": [{"type": "body", "parameters": [{"type": "text", "text": text}]}],
            }
            for text in ("Your parcel has shipped", "Tracking: 123")
        ]
        assert fake.problems == []
    await events.aclose()


async def test_agent_reads_and_types(the_core: Core, fake: FakeMeta, tmp_path: Path) -> None:
    events = the_core.agent.events()
    async with (
        gateway(the_core, WhatsApp(), tmp_path, channel_id="wa", channel=channel(fake)) as gw,
        httpx.AsyncClient() as http,
    ):
        first = meta.notification(
            meta.messages(WA_ID, "Chan", text("wamid.R1", "one"), text("wamid.R2", "two"))
        )
        await post(http, gw, first)
        conversation = await the_core.accept_next(events)
        said = [
            m
            for m in await the_core.transcript(conversation)
            if m.sender == conversation_pb2.SENDER_CUSTOMER
        ]
        await the_core.agent.mark_read(
            agent_service_pb2.AgentServiceMarkReadRequest(message=said[-1].name)
        )
        reads = await eventually(lambda: fake.reads)
        assert reads[0] == {
            "messaging_product": "whatsapp",
            "status": "read",
            "message_id": "wamid.R2",
        }
        await the_core.agent.notify_typing(
            agent_service_pb2.AgentServiceNotifyTypingRequest(
                conversation=conversation, active=True
            )
        )
        typing = await eventually(lambda: fake.reads[1:])
        assert typing[0] == {
            "messaging_product": "whatsapp",
            "status": "read",
            "message_id": "wamid.R2",
            "typing_indicator": {"type": "text"},
        }
        assert fake.problems == []
    await events.aclose()
