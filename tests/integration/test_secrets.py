"""Secrets stay secret and credentials die fast: API tokens and channel secrets never reach a
log line (real calls, good and refused, with every log captured), and a revoked credential is
refused on every front door within a revocation check, not a cache lifetime."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import structlog
from usher.client import AdminClient, AgentClient, GatewayClient, Unauthenticated
from usher.v1 import admin_service_pb2 as admin_pb
from usher.v1 import (
    agent_pb2,
    agent_service_pb2,
    channel_pb2,
    conversation_service_pb2,
    credential_pb2,
)

from gateways.whatsapp import WhatsApp
from tests.integration.api_kit import running
from tests.integration.gateways import fake_meta as meta
from tests.integration.gateways.fake_meta import fake_meta
from tests.integration.gateways.kit import core, gateway

T = "acme"
WAIT = 30.0  # a safety net against hangs, never an assertion about speed
TOKEN_SHAPE = re.compile(r"ush_[0-9a-f]{16}_[A-Za-z0-9_-]{20,}")


class Captured:
    """Every structlog event (rendered as the service renders it, with the call's bound
    context) and every standard-library record, as text."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def structlog_sink(
        self, _logger: Any, _method: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        self.lines.append(json.dumps(event, default=repr))
        raise structlog.DropEvent

    def text(self) -> str:
        return "\n".join(self.lines)


class _Handler(logging.Handler):
    def __init__(self, captured: Captured) -> None:
        super().__init__(logging.DEBUG)
        self.captured = captured
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith("httpx") and "/webhook" in record.getMessage():
            return  # this test's own requests to the gateway (it sends the verify token)
        self.captured.lines.append(self.format(record))


@pytest.fixture
def captured() -> Iterator[Captured]:
    sink = Captured()
    old = structlog.get_config()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.format_exc_info,
            sink.structlog_sink,
        ],
        cache_logger_on_first_use=False,
    )
    handler = _Handler(sink)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield sink
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        structlog.configure(**old)


def assert_absent(captured: Captured, secrets: list[str]) -> None:
    text = captured.text()
    assert '"serving"' in text, "the front door's log was not captured"
    for secret in secrets:
        assert secret not in text, f"a secret was logged: {secret[:8]}..."
    assert TOKEN_SHAPE.search(text) is None, "something shaped like a token was logged"


async def test_tokens_and_channel_secrets_are_never_logged(
    pool: asyncpg.Pool, redis_url: str, captured: Captured
) -> None:
    channel_secret = "wa-app-secret-never-log-me"
    async with running(pool, redis_url, with_core=True) as api:
        admin_token = await api.token(T, "admin")
        async with AdminClient(api.target, admin_token) as admin:
            await admin.create_agent(
                admin_pb.CreateAgentRequest(agent_id="ann", agent=agent_pb2.Agent(capacity=2))
            )
            made = await admin.create_credential(
                admin_pb.CreateCredentialRequest(
                    credential=credential_pb2.Credential(
                        role=credential_pb2.ROLE_AGENT, agent="agents/ann"
                    )
                )
            )
            agent_token = made.token
            await admin.create_channel(
                admin_pb.CreateChannelRequest(
                    channel_id="wa",
                    channel=channel_pb2.Channel(
                        type=channel_pb2.CHANNEL_TYPE_WHATSAPP,
                        settings={"phone_number_id": "1"},
                        secrets={"app_secret": channel_secret},
                    ),
                )
            )
            gateway_token = await api.token(T, "gateway")
            async with GatewayClient(api.target, gateway_token) as gw:
                fetched = await gw.fetch_gateway_channels(
                    conversation_service_pb2.FetchGatewayChannelsRequest(
                        type=channel_pb2.CHANNEL_TYPE_WHATSAPP
                    )
                )
                assert fetched.channels[0].secrets["app_secret"] == channel_secret
            async with AgentClient(api.target, agent_token) as ann:
                await ann.set_status(
                    agent_service_pb2.SetStatusRequest(status=agent_pb2.AGENT_STATUS_ONLINE)
                )
            # refused tokens: a wrong secret for a real credential, one malformed, one revoked
            wrong = agent_token[: agent_token.rindex("_") + 1] + "x" * 43
            malformed = "not-a-token-but-secret-looking-" + "y" * 20
            for bad in (wrong, malformed):
                async with AgentClient(api.target, bad) as stranger:
                    with pytest.raises(Unauthenticated) as refused:
                        await stranger.list_my_conversations(
                            agent_service_pb2.ListMyConversationsRequest()
                        )
                    assert bad not in str(refused.value)
            await admin.revoke_credential(
                admin_pb.RevokeCredentialRequest(name=made.credential.name)
            )
            async with AgentClient(api.target, agent_token) as revoked:
                await _refused_soon(revoked)
    assert_absent(
        captured, [admin_token, agent_token, gateway_token, wrong, malformed, channel_secret]
    )


async def test_webhook_secrets_are_never_logged(
    pool: asyncpg.Pool, redis_url: str, tmp_path: Path, captured: Captured
) -> None:
    async with core(pool, redis_url) as the_core, fake_meta() as fake:
        wa = channel_pb2.Channel(
            type=channel_pb2.CHANNEL_TYPE_WHATSAPP,
            settings={"phone_number_id": meta.PHONE_NUMBER_ID, "api_base_url": fake.url},
            secrets={
                "access_token": meta.TOKEN,
                "app_secret": meta.APP_SECRET,
                "verify_token": meta.VERIFY_TOKEN,
            },
        )
        async with (
            gateway(the_core, WhatsApp(), tmp_path, channel_id="wa", channel=wa) as gw,
            httpx.AsyncClient() as http,
        ):
            hook = gw.url("/acme/wa/webhook")
            good = {"hub.mode": "subscribe", "hub.verify_token": meta.VERIFY_TOKEN}
            assert (await http.get(hook, params={**good, "hub.challenge": "7"})).text == "7"
            wrong = {**good, "hub.verify_token": meta.VERIFY_TOKEN + "-guess"}
            assert (await http.get(hook, params=wrong)).status_code == 403
            payload = meta.notification(
                meta.messages(
                    "85291234567", "Chan", meta.message("wamid.S1", "text", {"body": "hi"})
                )
            )
            body, headers = meta.signed(payload)
            assert (await http.post(hook, content=body, headers=headers)).status_code == 200
            forged = meta.signed(payload, secret=meta.APP_SECRET + "-forged")[1]
            assert (await http.post(hook, content=body, headers=forged)).status_code == 401
            # the agent answers: the gateway sends it with the channel's access token
            offer = await the_core.accept_next(the_core.agent.events())
            await the_core.reply(offer, "hello")
            await asyncio.wait_for(_sent(fake), WAIT)
    assert_absent(captured, [meta.APP_SECRET, meta.VERIFY_TOKEN, meta.TOKEN])


async def _sent(fake: Any) -> None:
    while not fake.sent:
        await asyncio.sleep(0.05)


async def _refused_soon(agent: AgentClient) -> None:
    """Call until the credential is refused (the safety net is far above the check's interval
    and the caches' lifetime is made longer still, so only the revocation check can end it)."""

    async def keep_calling() -> None:
        while True:
            try:
                await agent.list_my_conversations(agent_service_pb2.ListMyConversationsRequest())
            except Unauthenticated:
                return
            await asyncio.sleep(0.05)

    await asyncio.wait_for(keep_calling(), WAIT)


async def test_a_revoked_credential_is_refused_on_every_front_door(
    pool: asyncpg.Pool, redis_url: str
) -> None:
    async with (
        running(pool, redis_url, with_core=True) as one,
        running(pool, redis_url, with_core=True) as two,
    ):
        for door in (one, two):  # only a revocation can end a cached token's life here
            door.server.auth.cache.ttl = 3600.0
        async with AdminClient(one.target, await one.token(T, "admin")) as admin:
            for agent_id in ("ann", "bob"):
                await admin.create_agent(
                    admin_pb.CreateAgentRequest(
                        agent_id=agent_id, agent=agent_pb2.Agent(capacity=1)
                    )
                )
            ann_token = await one.token(T, "agent", "ann")
            bob_token = await one.token(T, "agent", "bob")
            ann_id = ann_token.split("_")[1]
            async with (
                AgentClient(one.target, ann_token) as ann_one,
                AgentClient(two.target, ann_token) as ann_two,
                AgentClient(two.target, bob_token) as bob_two,
            ):
                listing = agent_service_pb2.ListMyConversationsRequest()
                for client in (ann_one, ann_two, bob_two):  # verified and cached on both doors
                    await client.list_my_conversations(listing)
                await admin.revoke_credential(
                    admin_pb.RevokeCredentialRequest(name=f"credentials/{ann_id}")
                )
                await _refused_soon(ann_one)
                await _refused_soon(ann_two)
                await bob_two.list_my_conversations(listing)  # others keep working
