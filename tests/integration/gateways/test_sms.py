"""The Twilio SMS gateway against a real core and a fake Twilio: SMS and MMS in, answered with
empty TwiML; replies out through the Messages resource in Twilio's form shape; status callbacks
to receipts; signatures checked over the public URL behind a proxy; redeliveries; refusals."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from usher.v1 import channel_pb2, conversation_pb2

from gateways.sms import TwilioSms
from gateways.sms.signature import candidate_urls, sign, verify
from tests.integration.gateways.fake_twilio import (
    ACCOUNT,
    AUTH_TOKEN,
    NUMBER,
    FakeTwilio,
    fake_twilio,
    signed,
)
from tests.integration.gateways.kit import Core, RunningGateway, core, eventually, gateway

PUBLIC = "https://sms.example.test"
"""Where Twilio reaches the gateway, through a proxy: what it signs."""
CUSTOMER = "+85291234567"


@pytest.fixture
async def the_core(pool: asyncpg.Pool, redis_url: str) -> AsyncIterator[Core]:
    async with core(pool, redis_url) as c:
        yield c


@pytest.fixture
async def twilio() -> AsyncIterator[FakeTwilio]:
    async with fake_twilio() as fake:
        yield fake


def channel(fake: FakeTwilio, **settings: str) -> channel_pb2.Channel:
    return channel_pb2.Channel(
        type=channel_pb2.CHANNEL_TYPE_SMS,
        display_name="Acme SMS",
        settings=fake.settings(**settings),
        secrets={"account_sid": ACCOUNT, "auth_token": AUTH_TOKEN},
    )


def local(gw: RunningGateway, path: str) -> str:
    """The gateway's own address, which the proxy forwards to."""
    return f"http://127.0.0.1:{gw.gateway.settings.port}{path}"


async def twilio_posts(
    http: httpx.AsyncClient,
    gw: RunningGateway,
    path: str,
    params: list[tuple[str, str]],
    *,
    signed_url: str | None = None,
) -> httpx.Response:
    body, headers = signed(signed_url or PUBLIC + path, params)
    return await http.post(local(gw, path), content=body, headers=headers)


def customer_texts(transcript: list[conversation_pb2.Message]) -> list[str]:
    return [m.text for m in transcript if m.sender == conversation_pb2.SENDER_CUSTOMER]


async def test_sms_in_reply_out_receipts_and_redelivery(
    the_core: Core, twilio: FakeTwilio, tmp_path: Path
) -> None:
    events = the_core.agent.events()
    async with (
        gateway(
            the_core,
            TwilioSms(),
            tmp_path,
            channel_id="sms",
            channel=channel(twilio),
            public_url=PUBLIC,
        ) as gw,
        httpx.AsyncClient() as http,
    ):
        hello = twilio.inbound("+852 9123 4567", "hello")
        answer = await twilio_posts(http, gw, "/acme/sms/sms", hello)
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith("text/xml")
        assert answer.text.endswith("<Response/>")

        conversation = await the_core.accept_next(events)
        sent = await the_core.reply(conversation, "hi, Ann here")
        await eventually(
            lambda: any(c.form.get("Body") == ["hi, Ann here"] for c in twilio.created)
        )
        reply = next(c for c in twilio.created if c.form.get("Body") == ["hi, Ann here"])
        assert reply.form == {
            "To": [CUSTOMER],
            "From": [NUMBER],
            "Body": ["hi, Ann here"],
            "StatusCallback": [f"{PUBLIC}/acme/sms/status"],
        }
        # the gateway remembers the sid once Twilio's answer is back, just after the fake saw it
        await eventually(lambda: gw.gateway.sent.message_for("acme", "sms", reply.sid) == sent.name)

        # Twilio reports delivery to the callback URL it was given, signing that URL
        status = twilio.status(reply.sid, "delivered")
        assert (await twilio_posts(http, gw, "/acme/sms/status", status)).status_code == 200
        assert not gw.gateway.sent.first_receipt("acme", "sms", reply.sid, "delivered")
        failed = twilio.status(reply.sid, "undelivered", error_code="30003")
        assert (await twilio_posts(http, gw, "/acme/sms/status", failed)).status_code == 200
        assert gw.gateway.sent.first_receipt("acme", "sms", reply.sid, "undelivered")

        # a repeated webhook is stored once; the explicit default port signs the same
        again = await twilio_posts(
            http, gw, "/acme/sms/sms", hello, signed_url=f"{PUBLIC}:443/acme/sms/sms"
        )
        assert again.status_code == 200
        second = twilio.inbound(CUSTOMER, "thanks")
        assert (await twilio_posts(http, gw, "/acme/sms/sms", second)).status_code == 200
        assert customer_texts(await the_core.transcript(conversation)) == ["hello", "thanks"]
        assert await the_core.conversation_count() == 1
    assert twilio.problems == []
    await events.aclose()


async def test_refusals_store_nothing(the_core: Core, twilio: FakeTwilio, tmp_path: Path) -> None:
    async with (
        gateway(
            the_core,
            TwilioSms(),
            tmp_path,
            channel_id="sms",
            channel=channel(twilio),
            max_body_bytes=1024,
        ) as gw,
        httpx.AsyncClient() as http,
    ):
        url = gw.url("/acme/sms/sms")

        async def answer(
            params: list[tuple[str, str]],
            *,
            path: str = "/acme/sms/sms",
            token: str = AUTH_TOKEN,
            signed_url: str | None = None,
        ) -> int:
            body, headers = signed(signed_url or gw.url(path), params, token)
            return (await http.post(gw.url(path), content=body, headers=headers)).status_code

        def without(params: list[tuple[str, str]], name: str) -> list[tuple[str, str]]:
            return [p for p in params if p[0] != name]

        params = twilio.inbound(CUSTOMER, "hi")
        assert await answer(params, token="wrong") == 401
        assert await answer(params, signed_url="https://attacker.example/acme/sms/sms") == 401
        body, headers = signed(url, params)
        unsigned = {"content-type": "application/x-www-form-urlencoded"}
        assert (await http.post(url, content=body, headers=unsigned)).status_code == 401
        tampered = body.replace(b"Body=hi", b"Body=ho")
        assert (await http.post(url, content=tampered, headers=headers)).status_code == 401
        assert await answer(params, path="/nobody/sms/sms") == 404
        assert await answer(params, path="/acme/other/sms") == 404
        assert await answer(twilio.inbound(CUSTOMER, "x" * 2000)) == 413

        assert await answer(without(params, "From")) == 400
        assert await answer(without(params, "MessageSid")) == 400
        assert await answer([*without(params, "From"), ("From", "not a phone")]) == 400
        assert await answer([*without(params, "NumMedia"), ("NumMedia", "x")]) == 400
        assert await answer([*without(params, "NumMedia"), ("NumMedia", "1")]) == 400  # no URL
        binary = {"x-twilio-signature": "x", "content-type": "application/x-www-form-urlencoded"}
        assert (await http.post(url, content=b"\xff\xfe", headers=binary)).status_code == 400

        status = twilio.status("SM" + "0" * 32, "delivered")
        assert await answer(status, path="/acme/sms/status", token="wrong") == 401
        assert await answer(without(status, "MessageStatus"), path="/acme/sms/status") == 400
    assert await the_core.conversation_count() == 0
    assert await the_core.message_count() == 0
    assert twilio.problems == []


async def test_mms_in_and_out_through_a_messaging_service(
    the_core: Core, twilio: FakeTwilio, tmp_path: Path
) -> None:
    jpeg = b"\xff\xd8\xff\xe0 a photo"
    events = the_core.agent.events()
    service = "MG" + "b2" * 16
    async with (
        gateway(
            the_core,
            TwilioSms(),
            tmp_path,
            channel_id="sms",
            channel=channel(twilio, messaging_service_sid=service),
        ) as gw,
        httpx.AsyncClient() as http,
    ):
        url = gw.url("/acme/sms/sms")
        params = twilio.inbound(CUSTOMER, "the broken part", media=[(jpeg, "image/jpeg")])
        body, headers = signed(url, params)
        assert (await http.post(url, content=body, headers=headers)).status_code == 200
        assert len(twilio.media_requests) == 1

        conversation = await the_core.accept_next(events)
        [message] = [
            m
            for m in await the_core.transcript(conversation)
            if m.sender == conversation_pb2.SENDER_CUSTOMER
        ]
        assert message.text == "the broken part"
        [photo] = message.attachments
        assert photo.content_type == "image/jpeg" and photo.size == len(jpeg)
        assert gw.gateway.blobs.read(photo.sha256) == jpeg

        # media Twilio no longer has: the message is kept, with a note
        lost = twilio.inbound(CUSTOMER, "and this", media=[(b"gone", "image/png")])
        twilio.media.clear()
        body, headers = signed(url, lost)
        assert (await http.post(url, content=body, headers=headers)).status_code == 200
        later = customer_texts(await the_core.transcript(conversation))
        assert later[-1] == "and this\n[image/png could not be fetched]"

        manual = gw.gateway.blobs.attachment(
            gw.gateway.blobs.put(b"%PDF", content_type="application/pdf", name="manual.pdf")
        )
        long_text = "a" * 1600 + "b" * 10
        await the_core.reply(conversation, long_text, attachments=[manual])
        await eventually(lambda: any(c.form.get("Body") == ["b" * 10] for c in twilio.created))
        pieces = ("a" * 1600, "b" * 10)
        mine = [c.form for c in twilio.created if c.form.get("Body", [""])[0] in pieces]
        assert [f.get("Body") for f in mine] == [["a" * 1600], ["b" * 10]]
        assert [f.get("MediaUrl") for f in mine] == [None, [gw.gateway.blobs.url(manual.sha256)]]
        assert all(f["MessagingServiceSid"] == [service] and "From" not in f for f in mine)
    assert twilio.problems == []
    await events.aclose()


def test_the_signature_matches_twilios_documented_example() -> None:
    params = [
        ("CallSid", "CA1234567890ABCDE"),
        ("Caller", "+12349013030"),
        ("Digits", "1234"),
        ("From", "+12349013030"),
        ("To", "+18005551212"),
    ]
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    assert sign("12345", url, params) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    behind_proxy = candidate_urls(
        "https://mycompany.com", "/myapp.php?foo=1&bar=2", "http://10.0.0.5:8080/myapp.php"
    )
    assert behind_proxy == [
        url,
        "https://mycompany.com:443/myapp.php?foo=1&bar=2",
        "http://10.0.0.5:8080/myapp.php",
        "http://10.0.0.5/myapp.php",
    ]
    urls = behind_proxy
    assert verify("12345", "0/KCTR6DLpKmkAf8muzZqo1nDgQ=", urls, params)
    assert not verify("12345", None, urls, params)


async def test_choices_are_numbered_and_a_number_or_title_answers_even_after_a_restart(
    the_core: Core, twilio: FakeTwilio, tmp_path: Path
) -> None:
    events = the_core.agent.events()
    choices = conversation_pb2.MessageChoices(
        footer="Reply with a number",
        options=[
            conversation_pb2.MessageOption(id="refund", title="Refund"),
            conversation_pb2.MessageOption(id="delivery", title="Delivery", description="2 days"),
        ],
    )

    def sms(restarted: bool = False) -> Any:
        return gateway(
            the_core,
            TwilioSms(),
            tmp_path,
            channel_id="sms",
            channel=channel(twilio),
            restarted=restarted,
            public_url=PUBLIC,
        )

    async with sms() as gw, httpx.AsyncClient() as http:
        await twilio_posts(http, gw, "/acme/sms/sms", twilio.inbound(CUSTOMER, "hello"))
        conversation = await the_core.accept_next(events)
        await the_core.reply(conversation, "What is it about?", choices=choices)
        body = "What is it about?\n\n1. Refund\n2. Delivery – 2 days\n\nReply with a number"
        await eventually(lambda: any(c.form.get("Body") == [body] for c in twilio.created))
        await twilio_posts(http, gw, "/acme/sms/sms", twilio.inbound(CUSTOMER, " 2 "))
        await twilio_posts(http, gw, "/acme/sms/sms", twilio.inbound(CUSTOMER, "REFUND"))
        await twilio_posts(http, gw, "/acme/sms/sms", twilio.inbound(CUSTOMER, "3"))
    # the gateway restarts (same data dir): the offer still stands
    async with sms(restarted=True) as gw, httpx.AsyncClient() as http:
        await twilio_posts(http, gw, "/acme/sms/sms", twilio.inbound(CUSTOMER, "１"))
        # a later message without choices ends the offer: "1" is then just "1"
        await the_core.reply(conversation, "How many items?")
        await eventually(
            lambda: any(c.form.get("Body") == ["How many items?"] for c in twilio.created)
        )
        await twilio_posts(http, gw, "/acme/sms/sms", twilio.inbound(CUSTOMER, "1"))
        said = [
            (m.text, m.selected_option_id)
            for m in await the_core.transcript(conversation)
            if m.sender == conversation_pb2.SENDER_CUSTOMER
        ]
        assert said == [
            ("hello", ""),
            ("2", "delivery"),
            ("REFUND", "refund"),
            ("3", ""),
            ("１", "refund"),
            ("1", ""),
        ]
    assert twilio.problems == []
    await events.aclose()
