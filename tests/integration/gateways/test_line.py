"""The LINE gateway against a real core and a fake LINE Platform: events in (text, media,
sticker, location, postback, follow), replies out by reply token or push in LINE's shapes,
redeliveries, and the refusals."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from usher.v1 import agent_service_pb2, channel_pb2, conversation_pb2

from gateways.common.directory import ChannelConfig
from gateways.common.signatures import hmac_sha256_base64
from gateways.line import Line
from gateways.line.api import LineApi
from tests.integration.gateways.fake_line import SECRET, TOKEN, FakeLine, fake_line
from tests.integration.gateways.kit import Core, core, eventually, gateway

USER = "U4af4980629a1b2c3d4e5f6a7b8c9d0e1"


@pytest.fixture
async def the_core(pool: asyncpg.Pool, redis_url: str) -> AsyncIterator[Core]:
    async with core(pool, redis_url) as c:
        yield c


@pytest.fixture
async def line() -> AsyncIterator[FakeLine]:
    async with fake_line() as fake:
        yield fake


def channel(fake: FakeLine, **settings: str) -> channel_pb2.Channel:
    return channel_pb2.Channel(
        type=channel_pb2.CHANNEL_TYPE_LINE,
        display_name="Acme on LINE",
        settings=fake.settings(**settings),
        secrets={"channel_secret": SECRET, "channel_access_token": TOKEN},
    )


async def post(http: httpx.AsyncClient, url: str, events: list[dict[str, Any]]) -> httpx.Response:
    body, headers = FakeLine.signed(events)
    return await http.post(url, content=body, headers=headers)


def customer_texts(transcript: list[conversation_pb2.Message]) -> list[str]:
    return [m.text for m in transcript if m.sender == conversation_pb2.SENDER_CUSTOMER]


async def test_text_in_reply_out_and_redelivery(
    the_core: Core, line: FakeLine, tmp_path: Path
) -> None:
    line.profiles[USER] = "Mei"
    events = the_core.agent.events()
    async with (
        gateway(the_core, Line(), tmp_path, channel_id="line", channel=channel(line)) as gw,
        httpx.AsyncClient() as http,
    ):
        hello = line.text(USER, "hello")
        assert (await post(http, gw.url("/acme/line/webhook"), [hello])).status_code == 200
        conversation = await the_core.accept_next(events)
        got = await the_core.agent.get_conversation(
            agent_service_pb2.GetConversationRequest(name=conversation)
        )
        assert got.conversation.customer.external_id == USER
        assert got.conversation.customer.name == "Mei"

        # the first answer (the welcome) rides on the message's reply token, once
        await eventually(lambda: line.sent)
        first = line.sent[0]
        assert first.api == "reply" and first.to == USER
        assert first.messages[0]["type"] == "text"

        sent = await the_core.reply(conversation, "hi, Ann here")
        await eventually(
            lambda: any(s.messages == [{"type": "text", "text": "hi, Ann here"}] for s in line.sent)
        )
        push = next(s for s in line.sent if s.messages[0].get("text") == "hi, Ann here")
        assert push.api == "push" and push.to == USER
        assert uuid.UUID(push.retry_key)
        # remembered once LINE's answer is back, just after the fake recorded the push
        await eventually(
            lambda: gw.gateway.sent.message_for("acme", "line", push.ids[0]) == sent.name
        )

        # LINE redelivers the same event: stored once
        again = dict(hello, deliveryContext={"isRedelivery": True})
        assert (await post(http, gw.url("/acme/line/webhook"), [again])).status_code == 200
        assert customer_texts(await the_core.transcript(conversation)) == ["hello"]
        assert await the_core.message_count() == 1
        assert await the_core.conversation_count() == 1

        await the_core.agent.notify_typing(
            agent_service_pb2.AgentServiceNotifyTypingRequest(
                conversation=conversation, active=True
            )
        )
        await eventually(lambda: line.loading)
        assert line.loading == [{"chatId": USER, "loadingSeconds": 10}]
    assert line.problems == []
    await events.aclose()


async def test_refusals_store_nothing(the_core: Core, line: FakeLine, tmp_path: Path) -> None:
    async with (
        gateway(
            the_core,
            Line(),
            tmp_path,
            channel_id="line",
            channel=channel(line),
            max_body_bytes=2048,
        ) as gw,
        httpx.AsyncClient() as http,
    ):
        url = gw.url("/acme/line/webhook")
        body, headers = FakeLine.signed([line.text(USER, "hi")])
        forged = dict(headers, **{"x-line-signature": hmac_sha256_base64("wrong", body)})
        assert (await http.post(url, content=body, headers=forged)).status_code == 401
        unsigned = {"content-type": "application/json"}
        assert (await http.post(url, content=body, headers=unsigned)).status_code == 401
        tampered = body.replace(b"hi", b"ho")
        assert (await http.post(url, content=tampered, headers=headers)).status_code == 401
        assert (
            await http.post(gw.url("/nobody/line/webhook"), content=body, headers=headers)
        ).status_code == 404
        assert (
            await http.post(gw.url("/acme/other/webhook"), content=body, headers=headers)
        ).status_code == 404
        assert (await post(http, url, [line.text(USER, "x" * 3000)])).status_code == 413

        not_json = b"{events"
        sig = {"x-line-signature": hmac_sha256_base64(SECRET, not_json)}
        assert (await http.post(url, content=not_json, headers=sig)).status_code == 400
        nameless = line.text(USER, "who am I")
        del nameless["source"]["userId"]
        # one bad event refuses the whole body: the good one before it is not stored either
        assert (await post(http, url, [line.text(USER, "ok"), nameless])).status_code == 400
        assert (
            await post(http, url, [line.event("postback", USER, postback={})])
        ).status_code == 400
        no_id = line.text(USER, "no id")
        del no_id["webhookEventId"]
        assert (await post(http, url, [no_id])).status_code == 400

        # LINE's "verify webhook URL" call, and events the gateway does not handle
        assert (await post(http, url, [])).status_code == 200
        group = line.text(USER, "in a group")
        group["source"] = {"type": "group", "groupId": "Cgroup", "userId": USER}
        assert (await post(http, url, [group, line.event("join", USER)])).status_code == 200
    assert await the_core.conversation_count() == 0
    assert await the_core.message_count() == 0
    assert line.problems == []


async def test_media_sticker_location_postback(
    the_core: Core, line: FakeLine, tmp_path: Path
) -> None:
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 100
    pdf = b"%PDF-1.7 " + b"x" * 2000
    events = the_core.agent.events()
    async with (
        gateway(
            the_core,
            Line(),
            tmp_path,
            channel_id="line",
            channel=channel(line),
            max_attachment_bytes=1000,
        ) as gw,
        httpx.AsyncClient() as http,
    ):
        url = gw.url("/acme/line/webhook")
        batch = [
            line.media(USER, "image", png, "image/png"),
            line.media(USER, "file", pdf, "application/pdf", fileName="big.pdf", fileSize=2009),
            line.event(
                "message",
                USER,
                message={
                    "id": "1",
                    "type": "sticker",
                    "packageId": "446",
                    "stickerId": "1988",
                    "stickerResourceType": "STATIC",
                    "keywords": ["happy", "smile"],
                },
            ),
            line.event(
                "message",
                USER,
                message={
                    "id": "2",
                    "type": "location",
                    "title": "Office",
                    "address": "1 Queen's Road, Hong Kong",
                    "latitude": 22.28,
                    "longitude": 114.16,
                },
            ),
            line.event("postback", USER, postback={"data": "action=track&order=42"}),
            line.event(
                "message",
                USER,
                message={
                    "id": "3",
                    "type": "image",
                    "contentProvider": {
                        "type": "external",
                        "originalContentUrl": "https://example.com/a.jpg",
                    },
                },
            ),
        ]
        assert (await post(http, url, batch)).status_code == 200
        conversation = await the_core.accept_next(events)
        transcript = [
            m
            for m in await the_core.transcript(conversation)
            if m.sender == conversation_pb2.SENDER_CUSTOMER
        ]
        assert [m.text for m in transcript] == [
            "",
            "[file over the 1000-byte limit, not kept]",
            "[Sticker: happy, smile]",
            "[Location] Office\n1 Queen's Road, Hong Kong\nhttps://www.google.com/maps?q=22.28,114.16",
            "action=track&order=42",
            "[image] https://example.com/a.jpg",
        ]
        [image] = transcript[0].attachments
        assert image.content_type == "image/png" and image.size == len(png)
        assert transcript[0].provider_message_id == batch[0]["webhookEventId"]
        assert (await http.get(gw.gateway.blobs.url(image.sha256))).content == png
        assert len(line.content_requests) == 2  # external content is linked, not fetched
    assert line.problems == []
    await events.aclose()


async def test_follow_welcomes_without_a_conversation(
    the_core: Core, line: FakeLine, tmp_path: Path
) -> None:
    settings = {"welcome_text": "Welcome to Acme! Write to us any time."}
    async with (
        gateway(
            the_core, Line(), tmp_path, channel_id="line", channel=channel(line, **settings)
        ) as gw,
        httpx.AsyncClient() as http,
    ):
        url = gw.url("/acme/line/webhook")
        follow = line.event("follow", USER, follow={"isUnblocked": False})
        assert (await post(http, url, [follow])).status_code == 200
        assert [(s.api, s.to, s.messages) for s in line.sent] == [
            ("reply", USER, [{"type": "text", "text": settings["welcome_text"]}])
        ]
        again = dict(follow, deliveryContext={"isRedelivery": True})
        assert (await post(http, url, [again])).status_code == 200
        assert (await post(http, url, [line.event("unfollow", USER)])).status_code == 200
        assert len(line.sent) == 1
    assert await the_core.conversation_count() == 0
    assert line.problems == []


async def test_a_spent_reply_token_falls_back_to_push(
    the_core: Core, line: FakeLine, tmp_path: Path
) -> None:
    events = the_core.agent.events()
    async with (
        gateway(
            the_core,
            Line(),
            tmp_path,
            channel_id="line",
            channel=channel(line),
            public_url="https://usher.example.test",
        ) as gw,
        httpx.AsyncClient() as http,
    ):
        hello = line.text(USER, "hello")
        line.expire(hello["replyToken"])  # LINE will refuse it: the gateway must push
        local = f"http://127.0.0.1:{gw.gateway.settings.port}/acme/line/webhook"
        assert (await post(http, local, [hello])).status_code == 200
        conversation = await the_core.accept_next(events)
        photo = gw.gateway.blobs.attachment(
            gw.gateway.blobs.put(b"\xff\xd8\xff jpeg", content_type="image/jpeg", name="a.jpg")
        )
        manual = gw.gateway.blobs.attachment(
            gw.gateway.blobs.put(b"%PDF", content_type="application/pdf", name="manual.pdf")
        )
        await the_core.reply(conversation, "here you go", attachments=[photo, manual])
        await eventually(lambda: any(s.messages[0].get("text") == "here you go" for s in line.sent))
        assert all(s.api == "push" for s in line.sent)
        reply = next(s for s in line.sent if s.messages[0].get("text") == "here you go")
        assert reply.messages == [
            {"type": "text", "text": "here you go"},
            {"type": "image", "originalContentUrl": photo.uri, "previewImageUrl": photo.uri},
            # not an image LINE shows: a link
            {"type": "text", "text": f"manual.pdf: {manual.uri}"},
        ]
        assert photo.uri.startswith("https://usher.example.test/files/")
    assert line.problems == []
    await events.aclose()


async def test_a_retried_push_is_accepted_once(line: FakeLine) -> None:
    config = ChannelConfig(
        "line", settings=line.settings(), secrets={"channel_access_token": TOKEN}
    )
    async with httpx.AsyncClient() as http:
        api = LineApi(http, config)
        key = str(uuid.uuid4())
        first = await api.push(USER, [{"type": "text", "text": "once"}], retry_key=key)
        again = await api.push(USER, [{"type": "text", "text": "once"}], retry_key=key)
    assert first == again and len(first) == 1
    assert len(line.sent) == 1
    assert line.problems == []


async def test_choices_go_out_as_quick_replies_and_a_postback_comes_back_as_the_option(
    the_core: Core, line: FakeLine, tmp_path: Path
) -> None:
    events = the_core.agent.events()
    async with (
        gateway(the_core, Line(), tmp_path, channel_id="line", channel=channel(line)) as gw,
        httpx.AsyncClient() as http,
    ):
        url = gw.url("/acme/line/webhook")
        assert (await post(http, url, [line.text(USER, "hi")])).status_code == 200
        conversation = await the_core.accept_next(events)
        short = conversation_pb2.MessageChoices(
            header="Orders",
            options=[
                conversation_pb2.MessageOption(id="refund", title="Refund"),
                conversation_pb2.MessageOption(id="delivery", title="Delivery"),
            ],
        )
        await the_core.reply(conversation, "What is it about?", choices=short)
        sent = await eventually(
            lambda: next((s for s in line.sent if "quickReply" in s.messages[-1]), None)
        )
        assert sent.messages == [
            {
                "type": "text",
                "text": "Orders\n\nWhat is it about?",
                "quickReply": {
                    "items": [
                        {
                            "type": "action",
                            "action": {
                                "type": "postback",
                                "label": title,
                                "data": f"usher_choice={option}",
                                "displayText": title,
                            },
                        }
                        for option, title in (("refund", "Refund"), ("delivery", "Delivery"))
                    ]
                },
            }
        ]
        tapped = line.event("postback", USER, postback={"data": "usher_choice=delivery"})
        assert (await post(http, url, [tapped])).status_code == 200

        # labels past LINE's 20 characters are cut, and the text lists the options in full
        long = conversation_pb2.MessageChoices(
            options=[
                conversation_pb2.MessageOption(
                    id="late", title="My parcel is later than promised", description="Track it"
                ),
                conversation_pb2.MessageOption(id="other", title="Other"),
            ],
        )
        await the_core.reply(conversation, "Anything else?", choices=long)
        second = await eventually(
            lambda: [s for s in line.sent if "quickReply" in s.messages[-1]][1:]
        )
        [message] = second[0].messages
        assert message["text"] == (
            "Anything else?\n\n1. My parcel is later than promised – Track it\n2. Other"
        )
        labels = [i["action"]["label"] for i in message["quickReply"]["items"]]
        assert labels == ["My parcel is later…", "Other"]
        typed = line.text(USER, "1")  # the options were listed numbered: a number answers
        assert (await post(http, url, [typed])).status_code == 200

        said = [
            (m.text, m.selected_option_id)
            for m in await the_core.transcript(conversation)
            if m.sender == conversation_pb2.SENDER_CUSTOMER
        ]
        assert said == [("hi", ""), ("Delivery", "delivery"), ("1", "late")]
    assert line.problems == []
    await events.aclose()
