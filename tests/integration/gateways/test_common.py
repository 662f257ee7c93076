"""The plumbing every gateway shares, through a minimal provider defined here: inbound
idempotency, outbound delivery with retries and resume, receipts, files, and the HTTP refusals."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import asyncpg
import httpx
import pytest
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from usher.client import BlocklistClient
from usher.v1 import admin_service_pb2, channel_pb2, conversation_pb2
from usher.v1 import blocklist_service_pb2 as bl
from usher.v1 import conversation_service_pb2 as pb

from gateways.common.directory import Served
from gateways.common.gateway import Gateway
from gateways.common.inbox import Customer, Inbound
from gateways.common.provider import DeliveryError, Provider
from gateways.common.signatures import hmac_sha256_hex, same
from tests.integration.gateways.kit import Core, core, eventually, gateway

SECRET = "s3cret"


class Recorder(Provider):
    """Webhooks ``POST /{tenant}/{channel}`` with ``{"from", "id", "text"}`` signed in
    ``X-Signature``; outbound items are recorded, the first ``flaky`` attempts failing."""

    name: ClassVar[str] = "recorder"
    channel_type = channel_pb2.CHANNEL_TYPE_SMS

    def __init__(self, flaky: int = 0) -> None:
        self.delivered: list[pb.OutboundItem] = []
        self.flaky = flaky

    def routes(self, gw: Gateway) -> Sequence[BaseRoute]:
        async def webhook(request: Request) -> Response:
            served = gw.served(request)
            body = await gw.body(request)
            expected = hmac_sha256_hex(served.channel.secret("signing_secret"), body)
            if not same(expected, request.headers.get("x-signature")):
                raise HTTPException(401, "bad signature")
            try:
                payload = json.loads(body)
                customer, message_id = payload["from"], payload["id"]
            except (ValueError, KeyError, TypeError):
                raise HTTPException(400, "malformed") from None
            posted = await gw.inbox.post(
                served, Customer(customer), Inbound(message_id, text=payload.get("text", ""))
            )
            return JSONResponse({"conversation": posted.conversation, "dup": posted.duplicate})

        return [Route("/{tenant}/{channel}", webhook, methods=["POST"])]

    async def deliver(self, gw: Gateway, served: Served, item: pb.OutboundItem) -> None:
        if self.flaky:
            self.flaky -= 1
            raise DeliveryError("provider busy", transient=True)
        self.delivered.append(item)
        if item.WhichOneof("item") == "message":
            gw.sent.remember(
                served.tenant, served.channel.channel_id, f"p{item.event_id}", item.message.name
            )

    def texts(self) -> list[str]:
        out = []
        for item in self.delivered:
            kind = item.WhichOneof("item")
            if kind == "message":
                out.append(item.message.text)
            elif kind == "system_message":
                out.append(f"[{conversation_pb2.SystemMessageKind.Name(item.system_message.kind)}]")
        return out


CHANNEL = channel_pb2.Channel(type=channel_pb2.CHANNEL_TYPE_SMS, secrets={"signing_secret": SECRET})


@pytest.fixture
async def the_core(pool: asyncpg.Pool, redis_url: str) -> AsyncIterator[Core]:
    async with core(pool, redis_url) as c:
        yield c


def signed(payload: dict[str, Any], secret: str = SECRET) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    return body, {"x-signature": hmac_sha256_hex(secret, body), "content-type": "application/json"}


async def test_in_routed_answered_out_with_retries(the_core: Core, tmp_path: Path) -> None:
    provider = Recorder(flaky=2)
    events = the_core.agent.events()
    async with (
        gateway(the_core, provider, tmp_path, channel_id="sms", channel=CHANNEL) as gw,
        httpx.AsyncClient() as http,
    ):
        body, headers = signed({"from": "+85291234567", "id": "m1", "text": "hello"})
        first = await http.post(gw.url("/acme/sms"), content=body, headers=headers)
        assert first.status_code == 200, first.text
        again = await http.post(gw.url("/acme/sms"), content=body, headers=headers)
        assert again.json() == {"conversation": first.json()["conversation"], "dup": True}

        conversation = await the_core.accept_next(events)
        assert conversation == first.json()["conversation"]
        await the_core.reply(conversation, "hi, Ann here")
        await eventually(lambda: "hi, Ann here" in provider.texts())
        assert provider.texts()[0] == "[SYSTEM_MESSAGE_KIND_WELCOME]"

        body, headers = signed({"from": "+85291234567", "id": "m2", "text": "thanks"})
        second = await http.post(gw.url("/acme/sms"), content=body, headers=headers)
        assert second.json() == {"conversation": conversation, "dup": False}
        transcript = await the_core.transcript(conversation)
        customer = [m.text for m in transcript if m.sender == conversation_pb2.SENDER_CUSTOMER]
        assert customer == ["hello", "thanks"]
        assert await the_core.conversation_count() == 1

        reply = next(i for i in provider.delivered if i.WhichOneof("item") == "message")
        served = gw.gateway.directory.lookup("acme", "sms")
        assert served is not None
        assert await gw.gateway.receipt(served, f"p{reply.event_id}", "read")
        assert not await gw.gateway.receipt(served, f"p{reply.event_id}", "read")  # repeat
        assert not await gw.gateway.receipt(served, "unknown", "read")
    await events.aclose()


async def test_a_restarted_gateway_resumes_without_repeats(the_core: Core, tmp_path: Path) -> None:
    provider = Recorder()
    events = the_core.agent.events()
    async with gateway(the_core, provider, tmp_path, channel_id="sms", channel=CHANNEL) as gw:
        async with httpx.AsyncClient() as http:
            body, headers = signed({"from": "+85290000000", "id": "x1", "text": "hello"})
            conversation = (
                await http.post(gw.url("/acme/sms"), content=body, headers=headers)
            ).json()["conversation"]
        await the_core.accept_next(events)
        await the_core.reply(conversation, "one")
        await eventually(lambda: "one" in provider.texts())
    await the_core.reply(conversation, "two")  # while the gateway is down
    later = Recorder()
    await the_core.admin.delete_channel(admin_service_pb2.DeleteChannelRequest(name="channels/sms"))
    async with gateway(the_core, later, tmp_path, channel_id="sms", channel=CHANNEL):
        await eventually(lambda: "two" in later.texts())
        assert "one" not in later.texts()
    await events.aclose()


async def test_refusals_store_nothing(the_core: Core, tmp_path: Path) -> None:
    provider = Recorder()
    async with (
        gateway(
            the_core, provider, tmp_path, channel_id="sms", channel=CHANNEL, max_body_bytes=1024
        ) as gw,
        httpx.AsyncClient() as http,
    ):
        body, headers = signed({"from": "+85291234567", "id": "m1", "text": "hi"})
        forged = dict(headers, **{"x-signature": hmac_sha256_hex("wrong", body)})
        assert (
            await http.post(gw.url("/acme/sms"), content=body, headers=forged)
        ).status_code == 401
        unsigned = {"content-type": "application/json"}
        assert (
            await http.post(gw.url("/acme/sms"), content=body, headers=unsigned)
        ).status_code == 401
        assert (
            await http.post(gw.url("/nobody/sms"), content=body, headers=headers)
        ).status_code == 404
        assert (
            await http.post(gw.url("/acme/other"), content=body, headers=headers)
        ).status_code == 404
        big, big_headers = signed({"from": "+1", "id": "m2", "text": "x" * 2000})
        assert (
            await http.post(gw.url("/acme/sms"), content=big, headers=big_headers)
        ).status_code == 413
        bad, bad_headers = signed({"text": "no sender"})
        assert (
            await http.post(gw.url("/acme/sms"), content=bad, headers=bad_headers)
        ).status_code == 400
        assert (await http.get(gw.url("/files/" + "0" * 64))).status_code == 404
        stored = gw.gateway.blobs.put(b"\x89PNG fake", content_type="image/png", name="a.png")
        fetched = await http.get(gw.gateway.blobs.url(stored.sha256))
        assert fetched.content == b"\x89PNG fake"
        assert fetched.headers["content-type"] == "image/png"
    assert await the_core.conversation_count() == 0
    assert await the_core.message_count() == 0


async def test_inbox_writes_to_the_open_conversation_after_a_restart(
    the_core: Core, tmp_path: Path
) -> None:
    async with gateway(the_core, Recorder(), tmp_path, channel_id="sms", channel=CHANNEL) as gw:
        served = gw.gateway.directory.lookup("acme", "sms")
        assert served is not None
        first = await gw.gateway.inbox.post(
            served, Customer("+85291111111"), Inbound("a", text="1")
        )
        fresh = type(gw.gateway.inbox)()  # a restarted gateway remembers nothing
        second = await fresh.post(served, Customer("+85291111111"), Inbound("b", text="2"))
        assert second.conversation == first.conversation and not second.started


async def test_a_redelivery_after_the_conversation_closed_is_a_duplicate(
    the_core: Core, tmp_path: Path
) -> None:
    events = the_core.agent.events()
    async with (
        gateway(the_core, Recorder(), tmp_path, channel_id="sms", channel=CHANNEL) as gw,
        httpx.AsyncClient() as http,
    ):
        body, headers = signed({"from": "+85292222222", "id": "r1", "text": "hello"})
        first = (await http.post(gw.url("/acme/sms"), content=body, headers=headers)).json()
        conversation = await the_core.accept_next(events)
        assert conversation == first["conversation"]
        await the_core.close(conversation)

        again = await http.post(gw.url("/acme/sms"), content=body, headers=headers)
        assert again.status_code == 200, again.text
        assert again.json() == {"conversation": conversation, "dup": True}
        assert await the_core.conversation_count() == 1
        assert await the_core.message_count() == 1

        body, headers = signed({"from": "+85292222222", "id": "r2", "text": "one more thing"})
        later = (await http.post(gw.url("/acme/sms"), content=body, headers=headers)).json()
        assert later["conversation"] != conversation and not later["dup"]
        assert await the_core.conversation_count() == 2
    await events.aclose()


async def test_concurrent_first_messages_land_in_one_conversation(
    the_core: Core, tmp_path: Path
) -> None:
    async with gateway(the_core, Recorder(), tmp_path, channel_id="sms", channel=CHANNEL) as gw:
        served = gw.gateway.directory.lookup("acme", "sms")
        assert served is not None
        inboxes = [type(gw.gateway.inbox)() for _ in range(6)]  # as if six gateway replicas
        posted = await asyncio.gather(
            *(
                inbox.post(served, Customer("+85293333333"), Inbound(f"c{n}", text=str(n)))
                for n, inbox in enumerate(inboxes)
            )
        )
        assert len({p.conversation for p in posted}) == 1
        assert [p.started for p in posted].count(True) == 1
        assert not any(p.duplicate for p in posted)
        assert await the_core.conversation_count() == 1
        assert await the_core.message_count() == 6


async def test_a_blocked_sender_is_acknowledged_and_starts_nothing(
    the_core: Core, tmp_path: Path
) -> None:
    token = await the_core.running.token("acme", "supervisor")
    async with BlocklistClient(the_core.target, token) as blocklist:
        await blocklist.create_block(
            bl.CreateBlockRequest(block=bl.Block(phone="+85293333333", reason="spam"))
        )
    async with (
        gateway(the_core, Recorder(), tmp_path, channel_id="sms", channel=CHANNEL) as gw,
        httpx.AsyncClient() as http,
    ):
        body, headers = signed({"from": "+85293333333", "id": "b1", "text": "buy now"})
        answer = await http.post(gw.url("/acme/sms"), content=body, headers=headers)

        assert answer.status_code == 200, answer.text
        assert answer.json() == {"conversation": "", "dup": False}
        assert await the_core.conversation_count() == 0
        assert await the_core.message_count() == 0
