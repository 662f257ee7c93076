"""Cluster mode: ``usher serve --ray-address`` joining a Ray cluster (``ray start --head``),
as the README's cluster section describes. Two front doors share one set of detached shard
actors; a front door killed with SIGKILL and restarted finds them (and everything acknowledged)
again. The cluster here is a head node of its own, apart from the session's Ray."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from usher.client import AgentClient, GatewayClient
from usher.v1 import agent_service_pb2 as agent_svc
from usher.v1 import conversation_service_pb2 as conv_svc

from tests.integration.serve_kit import UsherServe, free_port
from tests.integration.test_service_crash import (
    QUICK,
    WAIT,
    Feed,
    Tenant,
    crash_and_restart,
    offer_for,
    seed,
    sign_in,
    start,
)
from tests.integration.test_service_crash import tenant as tenant  # a fixture

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="ray start --block on Linux")


@pytest.fixture
async def ray_head(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    """``ray start --head --block`` in a process group of its own: its address; stopped (all
    its processes) at teardown without touching any other Ray on the machine. Token
    authentication is on, as Ray's default is where a token exists; the front doors started
    by the test inherit the token through the environment."""
    port = free_port()
    ray = Path(sys.executable).with_name("ray")
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.setenv("RAY_AUTH_TOKEN", secrets.token_hex(16))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
    sessions = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # unix socket paths must stay short
    with (tmp_path / "ray.log").open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            *(str(ray), "start", "--head", "--block", "--port", str(port)),
            *("--num-cpus", "2", "--include-dashboard", "false"),
            *("--temp-dir", sessions),
            stdout=log,
            stderr=log,
            env=env,
            start_new_session=True,
        )
    address = f"127.0.0.1:{port}"
    try:
        await _until_listening(port, process, tmp_path / "ray.log")
        yield address
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), WAIT)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
        shutil.rmtree(sessions, ignore_errors=True)


async def _until_listening(port: int, process: asyncio.subprocess.Process, log: Path) -> None:
    async def probe() -> None:
        while True:
            assert process.returncode is None, f"ray start failed; see {log}"
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                return
            await asyncio.sleep(0.2)

    await asyncio.wait_for(probe(), WAIT * 2)


def door(
    address: str, database_url: str, redis_url: str, log: Path, *, workers: int = 1
) -> UsherServe:
    """A front door on the cluster. One worker by default: the crash scenario's offers time
    out every 2 s while it is down, so a restart must be quick (workers have their own test)."""
    return UsherServe(
        [
            *("--ray-address", address, "--shards", "2", "--workers", str(workers)),
            *("--http-port", "-1", "--grace", "5"),
            *("--database-url", database_url, "--redis-url", redis_url),
        ],
        log=log,
    )


async def test_two_front_doors_share_the_shards(
    ray_head: str, database_url: str, redis_url: str, tenant: Tenant, tmp_path: Path
) -> None:
    first = door(ray_head, database_url, redis_url, tmp_path / "a.log")
    second = door(ray_head, database_url, redis_url, tmp_path / "b.log")
    try:
        await first.start()
        await second.start()
        await seed(first, tenant)
        async with (
            GatewayClient(first.target, tenant.gateway, retry=QUICK) as gateway,
            AgentClient(second.target, tenant.agents["ann"], retry=QUICK) as ann,
        ):
            feed = Feed(ann)
            feed.start()
            try:
                await sign_in(ann)
                conversation = await start(gateway, f"two-{uuid.uuid4().hex[:6]}", "slow")
                offer = await feed.until(offer_for(conversation))  # made on door 1, seen on 2
                await ann.accept_offer(agent_svc.AcceptOfferRequest(offer=offer.name))
                await ann.send_message(
                    agent_svc.SendMessageRequest(conversation=conversation, text="from door 2")
                )
                # door 1's feed from the offer on: the same tenant-wide event ids as door 2's
                made = next(e for e in feed.seen if e.offer.name == offer.name)
                outbound = gateway.events(resume_after_event_id=made.event_id)

                async def delivered() -> conv_svc.OutboundItem:
                    async for item in outbound:
                        if item.WhichOneof("item") == "message":
                            return item
                    raise AssertionError("the outbound stream ended")

                try:
                    item = await asyncio.wait_for(delivered(), WAIT)
                finally:
                    await outbound.aclose()
                assert (item.conversation, item.message.text) == (conversation, "from door 2")
            finally:
                await feed.stop()
    finally:
        await first.kill()
        await second.kill()


async def test_a_front_door_killed_in_cluster_mode_restarts_with_everything(
    ray_head: str, database_url: str, redis_url: str, tenant: Tenant, tmp_path: Path
) -> None:
    serve = door(ray_head, database_url, redis_url, tmp_path / "serve.log")
    try:
        await crash_and_restart(serve, tenant)
    finally:
        await serve.kill()


async def test_two_front_doors_show_the_right_text_under_concurrent_load(
    ray_head: str, database_url: str, redis_url: str, tenant: Tenant, tmp_path: Path
) -> None:
    """Customers write through door 1 while ann works through door 2, several conversations at
    once: every offer previews its own customer's first message and every message ann sees is
    the one its conversation's customer wrote (events carry the text; nothing is guessed)."""
    first = door(ray_head, database_url, redis_url, tmp_path / "a.log", workers=2)
    second = door(ray_head, database_url, redis_url, tmp_path / "b.log")
    run = uuid.uuid4().hex[:6]
    try:
        await first.start()
        await second.start()
        await seed(first, tenant)
        async with (
            GatewayClient(first.target, tenant.gateway, retry=QUICK) as gateway,
            AgentClient(second.target, tenant.agents["ann"], retry=QUICK) as ann,
        ):
            feed = Feed(ann)
            feed.start()
            try:
                await sign_in(ann)

                async def customer(n: int) -> None:
                    name = f"load-{run}-{n}"
                    conversation = await start(gateway, name, "slow")
                    offer = await feed.until(offer_for(conversation))
                    assert offer.preview == f"hello from {name}"
                    await ann.accept_offer(agent_svc.AcceptOfferRequest(offer=offer.name))
                    await gateway.post_customer_message(
                        conv_svc.PostCustomerMessageRequest(
                            conversation=conversation,
                            text=f"question from {name}",
                            provider_message_id=f"wamid-{name}-1",
                        )
                    )
                    shown = await feed.until(
                        lambda e: (
                            e
                            if e.conversation == conversation and e.WhichOneof("event") == "message"
                            else None
                        )
                    )
                    assert shown.message.text == f"question from {name}"
                    await ann.end_conversation(
                        agent_svc.EndConversationRequest(conversation=conversation)
                    )

                await asyncio.wait_for(asyncio.gather(*(customer(n) for n in range(8))), WAIT * 3)
            finally:
                await feed.stop()
    finally:
        await first.kill()
        await second.kill()
