"""Broadcasts through real gateways and their providers' fakes, over a real core: a group's
broadcast over SMS and over a WhatsApp template reaches each recipient once with their own
variables; a STOP reply opts out and a block skips; statuses and replies come back to the
recipients; a quota refusal changes nothing; pause, resume and cancel mid-send."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from google.rpc import error_details_pb2
from usher.client import BlocklistClient, ResourceExhausted
from usher.v1 import blocklist_service_pb2, channel_pb2
from usher.v1 import broadcast_service_pb2 as bpb

from core.store import quotas
from gateways.sms import TwilioSms
from gateways.whatsapp import WhatsApp
from tests.integration.gateways import broadcast_kit as kit
from tests.integration.gateways import fake_meta as meta
from tests.integration.gateways.fake_meta import FakeMeta, fake_meta
from tests.integration.gateways.fake_twilio import (
    ACCOUNT,
    AUTH_TOKEN,
    Created,
    FakeTwilio,
    fake_twilio,
    signed,
)
from tests.integration.gateways.kit import TENANT, Core, RunningGateway, core, eventually, gateway

LINK = "https://wa.me/15550001234?text=JOIN"
TEXT = "Hi {customer.name}, the {customer.fields.city} store opens Saturday."


@pytest.fixture
async def the_core(pool: asyncpg.Pool, redis_url: str) -> AsyncIterator[Core]:
    async with core(pool, redis_url) as c:
        yield c


@pytest.fixture
async def twilio() -> AsyncIterator[FakeTwilio]:
    async with fake_twilio() as fake:
        yield fake


@pytest.fixture
async def fake() -> AsyncIterator[FakeMeta]:
    async with fake_meta() as f:
        yield f


def sms_channel(fake: FakeTwilio, rate: str = "200") -> channel_pb2.Channel:
    return channel_pb2.Channel(
        type=channel_pb2.CHANNEL_TYPE_SMS,
        settings=fake.settings(broadcast_rate=rate),
        secrets={"account_sid": ACCOUNT, "auth_token": AUTH_TOKEN},
    )


def wa_channel(fake: FakeMeta) -> channel_pb2.Channel:
    return channel_pb2.Channel(
        type=channel_pb2.CHANNEL_TYPE_WHATSAPP,
        settings={"phone_number_id": meta.PHONE_NUMBER_ID, "api_base_url": fake.url},
        secrets={
            "access_token": meta.TOKEN,
            "app_secret": meta.APP_SECRET,
            "verify_token": meta.VERIFY_TOKEN,
        },
    )


async def twilio_posts(
    http: httpx.AsyncClient, gw: RunningGateway, path: str, params: list[tuple[str, str]]
) -> httpx.Response:
    body, headers = signed(gw.url(path), params)
    return await http.post(gw.url(path), content=body, headers=headers)


def broadcast_sms(twilio: FakeTwilio) -> list[Created]:
    """What the fake took of broadcasts' texts (conversations' messages left out)."""
    return [c for c in twilio.created if "store opens Saturday" in c.form.get("Body", [""])[0]]


def sent_to(twilio: FakeTwilio) -> Counter[str]:
    return Counter(c.form["To"][0] for c in broadcast_sms(twilio))


async def test_a_group_broadcast_over_sms(
    the_core: Core, twilio: FakeTwilio, tmp_path: Path
) -> None:
    people = await kit.audience(the_core, 8)
    client = people.broadcasts
    blocked, stopper = people.people[2], people.people[5]
    async with BlocklistClient(the_core.target, await the_core.running.token(TENANT, "admin")) as b:
        await b.create_block(
            blocklist_service_pb2.CreateBlockRequest(
                block=blocklist_service_pb2.Block(customer=f"customers/{blocked.customer_id}")
            )
        )
    async with (
        gateway(
            the_core, TwilioSms(), tmp_path, channel_id="sms", channel=sms_channel(twilio)
        ) as gw,
        httpx.AsyncClient() as http,
    ):
        # a customer who answers STOP on the channel is opted out of its broadcasts
        stop = twilio.inbound(stopper.phone, "Stop!")
        assert (await twilio_posts(http, gw, "/acme/sms/sms", stop)).status_code == 200

        await kit.create(client, "promo", "sms", text=TEXT, link=LINK)
        preview = await client.preview_broadcast(
            bpb.PreviewBroadcastRequest(name="broadcasts/promo", sample_size=2)
        )
        assert (preview.recipients, preview.opted_out, preview.blocked) == (6, 1, 1)
        assert [(q.metric, q.amount) for q in preview.quota_usage] == [
            ("broadcast_recipients", 6),
            ("sms_per_month", 6),
        ]
        first = people.people[0]
        assert preview.samples[0].address == first.phone
        assert preview.samples[0].text == (
            f"Hi {first.name}, the {first.city} store opens Saturday.\n{LINK}"
        )

        sent = await client.send_broadcast(bpb.SendBroadcastRequest(name="broadcasts/promo"))
        assert sent.broadcast.state == bpb.BROADCAST_STATE_SENDING
        done = await kit.finished(client, "promo")
        assert done.state == bpb.BROADCAST_STATE_COMPLETED
        assert (done.stats.sent, done.stats.skipped_opted_out, done.stats.skipped_blocked) == (
            6,
            1,
            1,
        )
        assert twilio.problems == []
        reached = {p.phone: p for p in people.people if p not in (blocked, stopper)}
        assert sent_to(twilio) == Counter(list(reached))  # each once, nobody else
        ours = broadcast_sms(twilio)
        for created in ours:
            p = reached[created.form["To"][0]]
            assert created.form["Body"] == [
                f"Hi {p.name}, the {p.city} store opens Saturday.\n{LINK}"
            ]
            assert created.form["StatusCallback"] == [gw.url("/acme/sms/status")]

        # the provider's statuses reach the recipients; a reply ties its conversation
        target = ours[0]
        delivered = twilio.status(target.sid, "delivered")
        assert (await twilio_posts(http, gw, "/acme/sms/status", delivered)).status_code == 200
        failed = twilio.status(ours[1].sid, "undelivered", error_code="30003")
        assert (await twilio_posts(http, gw, "/acme/sms/status", failed)).status_code == 200
        reply = twilio.inbound(target.form["To"][0], "Is it open on Sunday too?")
        assert (await twilio_posts(http, gw, "/acme/sms/sms", reply)).status_code == 200

        async def settled() -> list[bpb.BroadcastRecipient] | None:
            found = await kit.recipients(client, "promo")
            by = {r.address: r for r in found}
            first, second = by[target.form["To"][0]], by[ours[1].form["To"][0]]
            ready = (
                first.state == bpb.BROADCAST_RECIPIENT_STATE_DELIVERED
                and first.reply_conversation
                and second.state == bpb.BROADCAST_RECIPIENT_STATE_FAILED
            )
            return found if ready else None

        found = await eventually(settled)
        by = {r.address: r for r in found}
        assert by[ours[1].form["To"][0]].error == "Twilio undelivered (error 30003)"
        assert by[stopper.phone].state == bpb.BROADCAST_RECIPIENT_STATE_SKIPPED_OPTED_OUT
        assert by[blocked.phone].state == bpb.BROADCAST_RECIPIENT_STATE_SKIPPED_BLOCKED
        assert {r.provider_message_id for r in found if r.provider_message_id} == {
            c.sid for c in ours
        }
        replied = [r for r in found if r.reply_conversation]
        assert [r.address for r in replied] == [target.form["To"][0]]

        # a START opts back in: the next preview counts the customer again
        start = twilio.inbound(stopper.phone, "START")
        assert (await twilio_posts(http, gw, "/acme/sms/sms", start)).status_code == 200
        await kit.create(client, "again", "sms", text="Thanks {customer.name}")
        preview = await client.preview_broadcast(
            bpb.PreviewBroadcastRequest(name="broadcasts/again")
        )
        assert (preview.recipients, preview.opted_out, preview.blocked) == (7, 0, 1)


async def test_a_group_broadcast_over_a_whatsapp_template(
    the_core: Core, fake: FakeMeta, tmp_path: Path
) -> None:
    people = await kit.audience(the_core, 5)
    client = people.broadcasts
    template = bpb.WhatsAppTemplateContent(
        name="store_opening",
        language="zh_HK",
        parameters=["{customer.name}", "{customer.fields.city}", "{broadcast.link}"],
    )
    async with (
        gateway(the_core, WhatsApp(), tmp_path, channel_id="wa", channel=wa_channel(fake)) as gw,
        httpx.AsyncClient() as http,
    ):
        await kit.create(client, "opening", "wa", template=template, link=LINK)
        await client.send_broadcast(bpb.SendBroadcastRequest(name="broadcasts/opening"))
        done = await kit.finished(client, "opening")
        assert (done.state, done.stats.sent) == (bpb.BROADCAST_STATE_COMPLETED, 5)
        assert fake.problems == []
        by_to = {m["to"]: m for m in fake.messages_of("template")}
        assert sorted(by_to) == sorted(p.phone.removeprefix("+") for p in people.people)
        assert len(fake.sent) == 5  # each once
        found = {r.address: r for r in await kit.recipients(client, "opening")}
        for p in people.people:
            sent = by_to[p.phone.removeprefix("+")]
            assert sent["template"] == {
                "name": "store_opening",
                "language": {"code": "zh_HK"},
                "components": [
                    {
                        "type": "body",
                        "parameters": [
                            {"type": "text", "text": p.name},
                            {"type": "text", "text": p.city},
                            {"type": "text", "text": LINK},
                        ],
                    }
                ],
            }
            # the send's key rides along, and comes back with Meta's statuses
            assert sent["biz_opaque_callback_data"] == found[p.phone].name
        first = people.people[0]
        wamid = found[first.phone].provider_message_id
        read = meta.notification(
            meta.statuses(
                meta.status(wamid, "delivered", first.phone[1:], found[first.phone].name),
                meta.status(wamid, "read", first.phone[1:], found[first.phone].name),
            )
        )
        body, headers = meta.signed(read)
        answer = await http.post(gw.url("/acme/wa/webhook"), content=body, headers=headers)
        assert answer.status_code == 200

        async def is_read() -> bool:
            found = {r.address: r for r in await kit.recipients(client, "opening")}
            return found[first.phone].state == bpb.BROADCAST_RECIPIENT_STATE_READ

        await eventually(is_read)


async def test_a_quota_refusal_changes_nothing(
    the_core: Core, twilio: FakeTwilio, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    people = await kit.audience(the_core, 4)
    client = people.broadcasts
    await quotas.set_limit(pool, TENANT, "sms_per_month", 3)
    async with gateway(
        the_core, TwilioSms(), tmp_path, channel_id="sms", channel=sms_channel(twilio)
    ):
        await kit.create(client, "big", "sms", text=TEXT)
        with pytest.raises(ResourceExhausted) as refused:
            await client.send_broadcast(bpb.SendBroadcastRequest(name="broadcasts/big"))
        quota = refused.value.detail(error_details_pb2.QuotaFailure)
        assert quota is not None
        assert [(v.quota_metric, v.quota_value) for v in quota.violations] == [("sms_per_month", 3)]
        found = await kit.get(client, "big")
        assert found.state == bpb.BROADCAST_STATE_DRAFT
        assert await pool.fetchval("SELECT count(*) FROM broadcast_recipients") == 0
        used = {u.metric: u.used for u in await quotas.usage(pool, TENANT)}
        assert used["broadcast_recipients"] == 0 and used["sms_per_month"] == 0

        await quotas.set_limit(pool, TENANT, "sms_per_month", 4)  # room now: sent whole
        await client.send_broadcast(bpb.SendBroadcastRequest(name="broadcasts/big"))
        done = await kit.finished(client, "big")
        assert done.stats.sent == 4
        assert [(q.metric, q.amount) for q in done.quota_usage] == [
            ("broadcast_recipients", 4),
            ("sms_per_month", 4),
        ]
        assert sent_to(twilio) == Counter(p.phone for p in people.people)


async def test_pause_resume_and_cancel_mid_send(
    the_core: Core, twilio: FakeTwilio, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    people = await kit.audience(the_core, 40)
    client = people.broadcasts
    async with gateway(
        the_core, TwilioSms(), tmp_path, channel_id="sms", channel=sms_channel(twilio, rate="8")
    ):
        await kit.create(client, "slow", "sms", text=TEXT)
        await client.send_broadcast(bpb.SendBroadcastRequest(name="broadcasts/slow"))
        await eventually(lambda: len(broadcast_sms(twilio)) >= 3)
        paused = await client.pause_broadcast(bpb.PauseBroadcastRequest(name="broadcasts/slow"))
        assert paused.broadcast.state == bpb.BROADCAST_STATE_PAUSED

        async def quiet() -> bpb.Broadcast | None:  # what the gateway held is sent or released
            found = await kit.get(client, "slow")
            return found if found.stats.sending == 0 else None

        stopped = await eventually(quiet)
        assert 3 <= stopped.stats.sent < 40
        assert stopped.stats.queued == 40 - stopped.stats.sent
        assert len(broadcast_sms(twilio)) == stopped.stats.sent  # nothing unrecorded went out
        held = await client.pause_broadcast(bpb.PauseBroadcastRequest(name="broadcasts/slow"))
        assert held.broadcast.state == bpb.BROADCAST_STATE_PAUSED  # again: no change

        resumed = await client.resume_broadcast(bpb.ResumeBroadcastRequest(name="broadcasts/slow"))
        assert resumed.broadcast.state == bpb.BROADCAST_STATE_SENDING
        before = stopped.stats.sent
        await eventually(lambda: len(broadcast_sms(twilio)) >= before + 3)
        cancelled = await client.cancel_broadcast(
            bpb.CancelBroadcastRequest(name="broadcasts/slow")
        )
        assert cancelled.broadcast.state == bpb.BROADCAST_STATE_CANCELLED
        final = await eventually(quiet)  # what the gateway held is sent or released (cancelled)
        assert final.stats.cancelled > 0
        assert final.stats.sent + final.stats.cancelled == 40
        assert final.stats.queued == 0
        assert sum(sent_to(twilio).values()) == final.stats.sent == len(set(sent_to(twilio)))
        used = {u.metric: u.used for u in await quotas.usage(pool, TENANT)}
        assert used["broadcast_recipients"] == used["sms_per_month"] == final.stats.sent
