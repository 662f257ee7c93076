"""``usher serve`` as a real process, killed and stopped: after SIGKILL and a restart on the
same data everything acknowledged is back and timers resume; SIGTERM drains cleanly.

Driven only through the SDK (and raw stubs where the SDK would hide what the server said).
Waits have generous timeouts and are never assertions about speed."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest
from google.protobuf import duration_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from usher.client import (
    AdminClient,
    AgentClient,
    FailedPrecondition,
    GatewayClient,
    OutOfRange,
    RetryPolicy,
    Unavailable,
)
from usher.v1 import admin_service_pb2 as admin_pb
from usher.v1 import agent_pb2, conversation_pb2, queue_pb2
from usher.v1 import agent_service_pb2 as agent_svc
from usher.v1 import agent_service_pb2_grpc as agent_grpc
from usher.v1 import conversation_service_pb2 as conv_svc

from core.store import credentials
from tests.integration.serve_kit import UsherServe

WAIT = 30.0  # a safety net against hangs, never an assertion about speed
QUICK = RetryPolicy(max_attempts=20, initial_backoff=0.05, max_backoff=0.5)
"""Calls retry, and feeds reconnect, soon after a restart (the default backs off up to 5 s)."""
RECONNECT = (("grpc.initial_reconnect_backoff_ms", 100), ("grpc.max_reconnect_backoff_ms", 500))
"""Channels retry the connection soon too (gRPC's default backs off for seconds)."""
ACTIVE = conversation_pb2.CONVERSATION_STATE_ACTIVE
OFFERED = conversation_pb2.CONVERSATION_STATE_OFFERED


@dataclass
class Tenant:
    name: str
    admin: str
    gateway: str
    agents: dict[str, str]


@pytest.fixture
async def tenant(pool: asyncpg.Pool) -> Tenant:
    """A tenant of its own with admin, gateway and agent (ann, bob) tokens, made in the
    database directly, as ``usher admin create-tenant / create-credential`` would."""
    name = f"crash{uuid.uuid4().hex[:8]}"
    await pool.execute("INSERT INTO tenants (tenant_id) VALUES ($1)", name)
    _, admin = await credentials.create(pool, name, "admin", None)
    _, gateway = await credentials.create(pool, name, "gateway", None)
    agents = {a: (await credentials.create(pool, name, "agent", a))[1] for a in ("ann", "bob")}
    return Tenant(name, admin, gateway, agents)


@pytest.fixture
async def local_serve(
    database_url: str, redis_url: str, tmp_path: Path
) -> AsyncIterator[UsherServe]:
    """``usher serve --local`` on the session's database; killed at teardown whatever happens."""
    serve = UsherServe(
        [
            "--local",
            *("--http-port", "-1", "--grace", "5"),
            *("--database-url", database_url, "--redis-url", redis_url),
        ],
        log=tmp_path / "serve.log",
    )
    try:
        yield serve
    finally:
        await serve.kill()


async def seed(serve: UsherServe, tenant: Tenant) -> None:
    """Queues ``slow`` (offers last 10 minutes) and ``fast`` (2 s); agents ann and bob."""
    async with AdminClient(serve.target, tenant.admin) as admin:
        for queue, seconds in (("slow", 600), ("fast", 2)):
            await admin.create_queue(
                admin_pb.CreateQueueRequest(
                    queue_id=queue,
                    queue=queue_pb2.Queue(
                        display_name=queue, offer_timeout=duration_pb2.Duration(seconds=seconds)
                    ),
                )
            )
        for agent in ("ann", "bob"):
            await admin.create_agent(
                admin_pb.CreateAgentRequest(
                    agent_id=agent, agent=agent_pb2.Agent(display_name=agent, capacity=3)
                )
            )


@dataclass
class Feed:
    """An agent's ``events()`` read in the background into ``seen`` (it reconnects by itself,
    across a restart of the server too)."""

    client: AgentClient
    seen: list[agent_svc.AgentEvent] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._read())

    resets: list[str] = field(default_factory=list)
    """OUT_OF_RANGE answers to a resume (then the feed reopens afresh, with open offers)."""

    async def _read(self) -> None:
        after = 0
        while True:
            stream = self.client.events(resume_after_event_id=after)
            try:
                async for event in stream:
                    self.seen.append(event)
            except OutOfRange as exc:
                self.resets.append(str(exc))
                after = 0

    async def until(self, pick: Callable[[agent_svc.AgentEvent], Any]) -> Any:
        """The first event seen (so far or later) that ``pick`` maps to something truthy."""

        async def scan() -> Any:
            while True:
                for event in self.seen:
                    if found := pick(event):
                        return found
                assert self.task is not None and not self.task.done(), "the feed ended"
                assert not self.resets, f"a resuming feed was refused: {self.resets[0]}"
                await asyncio.sleep(0.05)

        return await asyncio.wait_for(scan(), WAIT)

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Unavailable):
                await self.task


def offer_for(conversation: str) -> Callable[[agent_svc.AgentEvent], Any]:
    def pick(event: agent_svc.AgentEvent) -> Any:
        if event.WhichOneof("event") == "offer" and event.offer.conversation == conversation:
            return event.offer
        return None

    return pick


def rescinded(offer: str) -> Callable[[agent_svc.AgentEvent], Any]:
    def pick(event: agent_svc.AgentEvent) -> Any:
        if event.WhichOneof("event") == "offer_rescinded" and event.offer_rescinded.offer == offer:
            return event.offer_rescinded
        return None

    return pick


async def start(gateway: GatewayClient, customer: str, queue: str) -> str:
    started = await gateway.start_conversation(
        conv_svc.StartConversationRequest(
            request_id=f"start-{customer}",
            channel="whatsapp",
            customer=conversation_pb2.CustomerIdentity(external_id=customer, name=customer),
            queue=f"queues/{queue}",
            first_message=conv_svc.CustomerMessage(
                text=f"hello from {customer}", provider_message_id=f"wamid-{customer}-0"
            ),
        )
    )
    return started.conversation.name


async def sign_in(client: AgentClient) -> None:
    await client.set_status(agent_svc.SetStatusRequest(status=agent_pb2.AGENT_STATUS_ONLINE))


async def mine(client: AgentClient) -> list[str]:
    held = await client.list_my_conversations(agent_svc.ListMyConversationsRequest())
    return [c.name for c in held.conversations]


async def test_sigkill_then_restart_keeps_everything_acknowledged(
    local_serve: UsherServe, tenant: Tenant
) -> None:
    await crash_and_restart(local_serve, tenant)


async def crash_and_restart(serve: UsherServe, tenant: Tenant) -> None:
    """The scenario of the SIGKILL tests, for any ``serve`` not yet started."""
    await serve.start()
    await seed(serve, tenant)
    run = uuid.uuid4().hex[:6]
    async with contextlib.AsyncExitStack() as stack:
        gateway = await stack.enter_async_context(
            GatewayClient(serve.target, tenant.gateway, retry=QUICK, options=RECONNECT)
        )
        ann, bob = [
            await stack.enter_async_context(
                AgentClient(serve.target, tenant.agents[a], retry=QUICK, options=RECONNECT)
            )
            for a in ("ann", "bob")
        ]
        feeds = {"ann": Feed(ann), "bob": Feed(bob)}
        clients = {"ann": ann, "bob": bob}
        for feed in feeds.values():
            feed.start()
            stack.push_async_callback(feed.stop)

        # Acknowledged before the crash: conversation 1 accepted by ann, with messages both
        # ways; conversation 3 offered to ann (not yet accepted, deadline far off); conversation
        # 2 offered on the fast queue, its deadline coming due while the server is down.
        await sign_in(ann)
        first = await start(gateway, f"c1-{run}", "slow")
        offer1 = await feeds["ann"].until(offer_for(first))
        accepted = await ann.accept_offer(agent_svc.AcceptOfferRequest(offer=offer1.name))
        assert accepted.conversation.state == ACTIVE
        assert accepted.conversation.owner == "agents/ann"
        posted = await gateway.post_customer_message(
            conv_svc.PostCustomerMessageRequest(
                conversation=first, text="order 42", provider_message_id=f"wamid-c1-{run}-1"
            )
        )
        sent = await ann.send_message(
            agent_svc.SendMessageRequest(request_id=f"r-{run}", conversation=first, text="on it")
        )
        acknowledged = [posted.message.name, sent.message.name]

        third = await start(gateway, f"c3-{run}", "slow")
        offer3 = await feeds["ann"].until(offer_for(third))

        await sign_in(bob)
        second = await start(gateway, f"c2-{run}", "fast")
        offer2, offered_to = await asyncio.wait_for(first_offer(feeds, second), WAIT)
        other = "bob" if offered_to == "ann" else "ann"

        await serve.kill()
        deadline = offer2.deadline.ToSeconds() + offer2.deadline.nanos / 1e9
        await asyncio.sleep(max(0.0, deadline - time.time()) + 0.5)  # let it come due while down
        await serve.start()

        # Everything acknowledged is back.
        got = await ann.get_conversation(agent_svc.GetConversationRequest(name=first))
        assert (got.conversation.state, got.conversation.owner) == (ACTIVE, "agents/ann")
        transcript = await ann.list_messages(agent_svc.ListMessagesRequest(parent=first))
        names = [m.name for m in transcript.messages]
        assert len(names) == len(set(names)), "a message is stored twice"
        assert set(acknowledged) <= set(names)
        texts = [m.text for m in transcript.messages]
        assert texts.index("order 42") < texts.index("on it")
        again = await gateway.post_customer_message(
            conv_svc.PostCustomerMessageRequest(
                conversation=first, text="order 42", provider_message_id=f"wamid-c1-{run}-1"
            )
        )
        assert again.duplicate and again.message.name == posted.message.name
        resent = await ann.send_message(
            agent_svc.SendMessageRequest(request_id=f"r-{run}", conversation=first, text="on it")
        )
        assert resent.duplicate and resent.message.name == sent.message.name
        got3 = await ann.get_conversation(agent_svc.GetConversationRequest(name=third))
        assert got3.conversation.state == OFFERED and not got3.conversation.owner

        # The offers made before the crash that are still live can be accepted, once.
        taken3 = await ann.accept_offer(agent_svc.AcceptOfferRequest(offer=offer3.name))
        assert taken3.conversation.owner == "agents/ann"

        # The offer whose deadline passed while the server was down expired (after the
        # restart, or, where the shards outlive the front door, while it was down) and went to
        # the other agent. Offers on the fast queue last 2 s, so take the first one still live.
        gone = await feeds[offered_to].until(rescinded(offer2.name))
        assert gone.reason == "expired"
        reoffer = await feeds[other].until(offer_for(second))
        assert reoffer.name != offer2.name
        taken2, taker = await accept_a_live_offer(feeds, clients, second, {offer2.name})
        assert taken2.conversation.owner == f"agents/{taker}"
        assert taken2.conversation.state == ACTIVE
        other = taker

        # Nothing is owned twice.
        held = {name: await mine(client) for name, client in clients.items()}
        for name, conversations in held.items():
            assert len(conversations) == len(set(conversations)), name
        assert not set(held["ann"]) & set(held["bob"])
        assert {first, third} <= set(held["ann"])
        assert second in held[other]
        assert not [r for feed in feeds.values() for r in feed.resets]


async def test_overdue_offer_expires_after_restart_without_new_commands(
    local_serve: UsherServe, tenant: Tenant
) -> None:
    await local_serve.start()
    await seed(local_serve, tenant)
    client = AgentClient(local_serve.target, tenant.agents["ann"], retry=QUICK, options=RECONNECT)
    feed = Feed(client)
    try:
        feed.start()
        await sign_in(client)
        async with GatewayClient(local_serve.target, tenant.gateway) as gateway:
            conversation = await start(gateway, f"idle-{uuid.uuid4().hex[:6]}", "fast")
        offer = await feed.until(offer_for(conversation))
        await local_serve.kill()
        deadline = offer.deadline.ToSeconds() + offer.deadline.nanos / 1e9
        await asyncio.sleep(max(0.0, deadline - time.time()) + 0.5)
        await local_serve.start()
        # Only reads and the feed from here on: no command reaches the shard.
        got = await client.get_conversation(agent_svc.GetConversationRequest(name=conversation))
        assert got.conversation.name == conversation
        gone = await asyncio.wait_for(feed.until(rescinded(offer.name)), 10.0)
        assert gone.reason == "expired"
    finally:
        await feed.stop()
        await client.close()


async def accept_a_live_offer(
    feeds: dict[str, Feed], clients: dict[str, AgentClient], conversation: str, tried: set[str]
) -> tuple[agent_svc.AcceptOfferResponse, str]:
    """Accept the offers of ``conversation`` as they come, until one is still live; when none
    comes (each agent missed one, so the engine offers it to neither again until its next
    relaxation step), an agent takes it from the queue by hand."""

    def untried(event: agent_svc.AgentEvent) -> Any:
        offer = offer_for(conversation)(event)
        return offer if offer is not None and offer.name not in tried else None

    while True:
        found = {asyncio.create_task(feed.until(untried)): name for name, feed in feeds.items()}
        done, pending = await asyncio.wait(found, timeout=5.0, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        if not done:
            name = next(iter(clients))
            taken = await clients[name].take_conversation(
                agent_svc.TakeConversationRequest(conversation=conversation)
            )
            return agent_svc.AcceptOfferResponse(conversation=taken.conversation), name
        first = next(iter(done))
        offer, name = first.result(), found[first]
        try:
            taken = await clients[name].accept_offer(agent_svc.AcceptOfferRequest(offer=offer.name))
        except FailedPrecondition:
            tried.add(offer.name)
            continue
        return taken, name


async def first_offer(feeds: dict[str, Feed], conversation: str) -> tuple[Any, str]:
    """The first offer of ``conversation`` on any of ``feeds``, and whose feed it was on."""
    while True:
        for name, feed in feeds.items():
            for event in feed.seen:
                if found := offer_for(conversation)(event):
                    return found, name
        await asyncio.sleep(0.05)


async def test_sigterm_drains_then_exits_zero(local_serve: UsherServe, tenant: Tenant) -> None:
    await local_serve.start()
    await seed(local_serve, tenant)
    once = RetryPolicy(max_attempts=1)
    async with (
        GatewayClient(local_serve.target, tenant.gateway) as gateway,
        AgentClient(local_serve.target, tenant.agents["ann"], retry=once) as ann,
        grpc.aio.insecure_channel(local_serve.target) as channel,
    ):
        await sign_in(ann)
        conversation = await start(gateway, f"drain-{uuid.uuid4().hex[:6]}", "slow")
        taken = await ann.take_conversation(
            agent_svc.TakeConversationRequest(conversation=conversation)
        )
        assert taken.conversation.owner == "agents/ann"

        health = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())
        first = await health.read()
        assert first.status == health_pb2.HealthCheckResponse.SERVING
        stream = agent_grpc.AgentServiceStub(channel).StreamEvents(
            agent_svc.StreamEventsRequest(),
            metadata=(("authorization", f"Bearer {tenant.agents['ann']}"),),
        )
        await gateway.post_customer_message(
            conv_svc.PostCustomerMessageRequest(conversation=conversation, text="still there?")
        )
        opened = await asyncio.wait_for(stream.read(), WAIT)  # the stream is open
        assert opened is not grpc.aio.EOF

        async def send(n: int) -> agent_svc.SendMessageResponse:
            return await ann.send_message(
                agent_svc.SendMessageRequest(conversation=conversation, text=f"m{n}")
            )

        calls = [asyncio.create_task(send(n)) for n in range(20)]
        await asyncio.sleep(0)  # the calls are on their way
        await local_serve.signal(signal.SIGTERM)
        results = await asyncio.gather(*calls, return_exceptions=True)

        statuses = []
        with contextlib.suppress(grpc.aio.AioRpcError):
            while (change := await asyncio.wait_for(health.read(), WAIT)) is not grpc.aio.EOF:
                statuses.append(change.status)
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            while await asyncio.wait_for(stream.read(), WAIT) is not grpc.aio.EOF:
                pass
        assert ended.value.code() == grpc.StatusCode.UNAVAILABLE
        assert ended.value.details() == "server shutting down"
        assert await local_serve.wait() == 0
    assert statuses in ([], [health_pb2.HealthCheckResponse.NOT_SERVING])
    # Each call either completed or was refused as UNAVAILABLE; nothing failed half-way.
    done = [r.message.name for r in results if isinstance(r, agent_svc.SendMessageResponse)]
    refused = [r for r in results if isinstance(r, Unavailable)]
    assert len(done) + len(refused) == len(results), results

    # Every call that completed is durable.
    await local_serve.start()
    async with AgentClient(local_serve.target, tenant.agents["ann"]) as ann:
        transcript = await ann.list_messages(agent_svc.ListMessagesRequest(parent=conversation))
    assert set(done) <= {m.name for m in transcript.messages}
