"""``usher serve --workers 2``: two front-door processes on one port, one Ray and one store.

Real processes throughout: the parent starts Ray and the shards, then two workers that share the
gRPC port. Which worker served a call is read from the workers' own metrics (each serves its
own port, and names its pid in ``usher_front_door_info``). Where the kernel sends a connection is
its choice, so the test opens connections until both workers have served some; it never asserts
durations (timeouts are safety nets)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import urllib.request
import uuid
from pathlib import Path

import asyncpg
import psutil  # type: ignore[import-untyped]  # a dependency of pgserver
import pytest
from prometheus_client.parser import text_string_to_metric_families
from usher.client import AdminClient, AgentClient, GatewayClient
from usher.v1 import admin_service_pb2 as admin_pb
from usher.v1 import agent_pb2

from core.store import credentials
from tests.integration.serve_kit import UsherServe
from tests.integration.test_service_crash import (
    QUICK,
    WAIT,
    Feed,
    Tenant,
    offer_for,
    seed,
    sign_in,
    start,
)
from tests.integration.test_service_crash import tenant as tenant  # a fixture

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="SO_REUSEPORT spreading")

ATTEMPTS = 12
"""Fresh multi-channel clients to try before concluding the connections never spread."""


def scrape(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """A worker's metrics: each sample name with its (labels, value) pairs."""
    with urllib.request.urlopen(url, timeout=WAIT) as answer:
        text = answer.read().decode()
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


async def commands(url: str) -> float:
    """Commands this worker has submitted so far (all types and outcomes)."""
    found = await asyncio.to_thread(scrape, url)
    return sum(value for _, value in found.get("usher_commands_total", []))


async def open_agent_streams(url: str) -> float:
    found = await asyncio.to_thread(scrape, url)
    return sum(
        value
        for labels, value in found.get("usher_open_streams", [])
        if labels.get("service") == "AgentService"
    )


def workers_of(parent: psutil.Process) -> set[int]:
    """The pids of ``parent``'s live front-door workers."""
    found = set()
    for child in parent.children():
        with contextlib.suppress(psutil.Error):  # gone, or a zombie not reaped yet
            if "--worker-of" in child.cmdline():
                found.add(int(child.pid))
    return found


def listening(pid: int, port: int) -> bool:
    """Whether process ``pid`` listens on TCP ``port``."""
    with contextlib.suppress(psutil.Error):
        for conn in psutil.Process(pid).net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port:
                return True
    return False


async def worker_pid(url: str) -> int:
    found = await asyncio.to_thread(scrape, url)
    (labels, _), *_ = found["usher_front_door_info"]
    return int(labels["pid"])


async def test_two_workers_share_the_port_the_shards_and_the_events(
    database_url: str, redis_url: str, pool: asyncpg.Pool, tenant: Tenant, tmp_path: Path
) -> None:
    serve = UsherServe(
        [
            *("--workers", "2", "--shards", "1", "--http-port", "0", "--grace", "5"),
            *("--database-url", database_url, "--redis-url", redis_url),
            *("--data-dir", str(tmp_path / "data")),
        ],
        log=tmp_path / "serve.log",
    )
    try:
        await serve.start()
        assert serve.process is not None
        banner = {
            key: value
            for key, _, value in (
                line.removeprefix("usher: ").partition(": ") for line in serve.lines
            )
        }
        assert banner["workers"].startswith("2 front-door processes")
        urls = banner["metrics"].split(", ")
        assert len(urls) == 2

        # Two worker processes, children of the one usher serve, each with its metrics.
        parent = psutil.Process(serve.process.pid)
        children = workers_of(parent)
        pids = [await worker_pid(url) for url in urls]
        assert len(set(pids)) == 2 and set(pids) == children
        assert all(str(pid) in banner["workers"] for pid in pids)
        everything = parent.children(recursive=True)  # Ray's processes too

        # Agents created through both workers: fresh connections until each served some.
        await seed(serve, tenant)
        before = [await commands(url) for url in urls]
        created = 0
        for _ in range(ATTEMPTS):
            async with AdminClient(serve.target, tenant.admin, channels=4, retry=QUICK) as admin:
                for _ in range(4):  # one call on each channel
                    await admin.create_agent(
                        admin_pb.CreateAgentRequest(
                            agent_id=f"extra-{created}",
                            agent=agent_pb2.Agent(display_name="extra", capacity=1),
                        )
                    )
                    created += 1
            after = [await commands(url) for url in urls]
            if all(a > b for a, b in zip(after, before, strict=True)):
                break
        assert all(a > b for a, b in zip(after, before, strict=True)), (before, after)

        # An agent's stream is open on one worker; a conversation started through the other
        # reaches it as an offer (the Redis commit fan-out).
        async with AdminClient(serve.target, tenant.admin, retry=QUICK) as admin:
            await admin.create_agent(
                admin_pb.CreateAgentRequest(
                    agent_id="carl", agent=agent_pb2.Agent(display_name="carl", capacity=100)
                )
            )
        _, carl_token = await credentials.create(pool, tenant.name, "agent", "carl")
        async with AgentClient(serve.target, carl_token, retry=QUICK) as carl:
            feed = Feed(carl)
            feed.start()
            try:
                await sign_in(carl)

                async def streaming() -> int:
                    while True:
                        for i, url in enumerate(urls):
                            if await open_agent_streams(url) > 0:
                                return i
                        await asyncio.sleep(0.1)

                streams_on = await asyncio.wait_for(streaming(), WAIT)
                other = urls[1 - streams_on]
                conversation = None
                for attempt in range(ATTEMPTS):
                    async with GatewayClient(
                        serve.target, tenant.gateway, channels=4, retry=QUICK
                    ) as gateway:
                        for call in range(4):
                            served = await commands(other)
                            started = await start(
                                gateway, f"w-{uuid.uuid4().hex[:6]}-{attempt}-{call}", "slow"
                            )
                            if await commands(other) > served:
                                conversation = started
                                break
                    if conversation is not None:
                        break
                assert conversation is not None, "no start was served by the other worker"
                offer = await feed.until(offer_for(conversation))
                assert offer.conversation == conversation
            finally:
                await feed.stop()

        # A worker that dies is started again by the parent, and serves.
        os.kill(pids[0], signal.SIGKILL)

        async def replaced() -> int:
            while True:
                now = workers_of(parent)
                if len(now) == 2 and pids[0] not in now:
                    (fresh,) = now - {pids[1]}
                    if listening(fresh, serve.port):
                        return int(fresh)
                await asyncio.sleep(0.1)

        fresh = await asyncio.wait_for(replaced(), WAIT)
        async with AdminClient(serve.target, tenant.admin, channels=4, retry=QUICK) as admin:
            for _ in range(4):
                await admin.list_agents(admin_pb.ListAgentsRequest())
        everything.append(psutil.Process(fresh))

        # SIGTERM to the parent: every worker drains, Ray and the rest stop, exit code 0.
        await serve.signal(signal.SIGTERM)
        assert await serve.wait() == 0
        _, alive = await asyncio.to_thread(psutil.wait_procs, everything, WAIT)
        assert not alive, [p.pid for p in alive]
    finally:
        await serve.kill()
