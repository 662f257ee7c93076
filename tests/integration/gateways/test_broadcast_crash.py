"""A broadcast survives its sender being killed: the SMS gateway runs as a child process
(``usher gateway sms``) against a real core and the fake Twilio, is SIGKILLed twice mid-send
and started again on the same data directory; every recipient gets the message exactly once.

The fake answers each send late, so the kills land while sends are with the provider and their
answers are lost: those are found again through Twilio's message list (the reconciliation), the
rest through the gateway's journal and the core's durable per-recipient state."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from usher.v1 import admin_service_pb2, channel_pb2
from usher.v1 import broadcast_service_pb2 as bpb

from tests.integration.gateways import broadcast_kit as kit
from tests.integration.gateways.fake_twilio import ACCOUNT, AUTH_TOKEN, FakeTwilio, fake_twilio
from tests.integration.gateways.kit import TENANT, Core, core, eventually, free_port

RECIPIENTS = 120


class GatewayProcess:
    """``python -m core.cli gateway sms`` on a fixed port and data directory."""

    def __init__(self, core_target: str, token: str, data_dir: Path, log: Path) -> None:
        self.port = free_port()
        self.args = [
            sys.executable,
            *("-m", "core.cli", "gateway", "sms"),
            *("--core", core_target, "--api-key", token),
            *("--host", "127.0.0.1", "--port", str(self.port), "--data-dir", str(data_dir)),
        ]
        self.log = log
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                *self.args,
                stdout=log,
                stderr=log,
                env={**os.environ, "USHER_GATEWAY_BROADCAST_LEASE": "30"},
            )

        async def healthy() -> bool:
            assert self.process is not None and self.process.returncode is None, self.log
            with contextlib.suppress(httpx.HTTPError):
                async with httpx.AsyncClient() as http:
                    answer = await http.get(f"http://127.0.0.1:{self.port}/healthz")
                    return answer.status_code == 200 and "acme/sms" in answer.text
            return False

        await eventually(healthy, timeout=60.0)

    async def kill(self) -> None:
        """SIGKILL: no clean-up of any kind runs."""
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            await self.process.wait()


@pytest.fixture
async def the_core(pool: asyncpg.Pool, redis_url: str) -> AsyncIterator[Core]:
    async with core(pool, redis_url) as c:
        yield c


@pytest.fixture
async def twilio() -> AsyncIterator[FakeTwilio]:
    async with fake_twilio() as fake:
        fake.answer_delay = 0.1
        yield fake


async def test_a_killed_sender_resumes_and_sends_each_once(
    the_core: Core, twilio: FakeTwilio, tmp_path: Path
) -> None:
    people = await kit.audience(the_core, RECIPIENTS)
    client = people.broadcasts
    await the_core.admin.create_channel(
        admin_service_pb2.CreateChannelRequest(
            channel_id="sms",
            channel=channel_pb2.Channel(
                type=channel_pb2.CHANNEL_TYPE_SMS,
                settings=twilio.settings(broadcast_rate="20"),
                secrets={"account_sid": ACCOUNT, "auth_token": AUTH_TOKEN},
            ),
        )
    )
    sender = GatewayProcess(
        the_core.target,
        await the_core.running.token(TENANT, "gateway"),
        tmp_path / "gateway",
        tmp_path / "gateway.log",
    )
    try:
        await sender.start()
        await kit.create(client, "flash", "sms", text="Flash sale, {customer.name}!")
        await client.send_broadcast(bpb.SendBroadcastRequest(name="broadcasts/flash"))
        for at_least in (30, 70):
            await eventually(lambda n=at_least: len(twilio.created) >= n)  # type: ignore[misc]
            await sender.kill()
            midway = await kit.get(client, "flash")
            assert midway.state == bpb.BROADCAST_STATE_SENDING
            assert midway.stats.sent < RECIPIENTS
            await sender.start()
        done = await kit.finished(client, "flash")
    finally:
        await sender.kill()
    assert done.state == bpb.BROADCAST_STATE_COMPLETED
    assert done.stats.sent == RECIPIENTS
    assert twilio.problems == []
    assert Counter(c.form["To"][0] for c in twilio.created) == Counter(
        p.phone for p in people.people
    )  # every recipient, each exactly once
    for c in twilio.created:
        p = next(p for p in people.people if p.phone == c.form["To"][0])
        assert c.form["Body"] == [f"Flash sale, {p.name}!"]
    stored = {r.address: r.provider_message_id for r in await kit.recipients(client, "flash")}
    assert stored == {c.form["To"][0]: c.sid for c in twilio.created}
    assert twilio.lists > 0  # sends whose answer the kill lost were looked up, not resent
