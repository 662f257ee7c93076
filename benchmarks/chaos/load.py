"""The steady load, all through the Python SDK (``usher.client``), and the probes.

Per tenant: customers arrive at ``rate`` a second through gateways (one per front door), each
starting a conversation with a first message and writing once more; agents (spread over the
doors) read their event streams, accept each offer, answer, keep the conversation
``handle_s``, then end it, or, for a share ``transfer_share``, transfer it to the queue (it is
offered again and someone else takes it).

Clients behave as careful integrators: the SDK retries what carries an idempotency key; calls
it does not retry (accept, transfer, end) are retried here on UNAVAILABLE or a deadline, and a
refusal after such an unknown outcome is settled by reading the conversation back. Everything
acknowledged goes into the ``Ledger``.

Probes: per tenant and door, one customer message every ``probe_interval_s`` into a parked
conversation (a queue no agent serves), one attempt each with a short deadline; a fault's
recovery is read from them (``recovery``).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from google.protobuf import duration_pb2
from usher.client import (
    AdminClient,
    AgentClient,
    DeadlineExceeded,
    GatewayClient,
    OutOfRange,
    RetryPolicy,
    Unavailable,
    UsherError,
)
from usher.v1 import admin_service_pb2 as admin_pb
from usher.v1 import agent_pb2, conversation_pb2, queue_pb2, routing_pb2, tenant_pb2
from usher.v1 import agent_service_pb2 as agent_svc
from usher.v1 import conversation_service_pb2 as conv_svc

from benchmarks.chaos.ledger import AckedMessage, AckedStart, Ledger, ProbeCall
from core.runtime.dispatcher import shard_of
from core.store import credentials

CHANNEL = "whatsapp"
PATIENT = RetryPolicy(max_attempts=1000, initial_backoff=0.05, max_backoff=0.5)
"""The SDK's retries (keyed calls, reads, stream reconnects): soon and for a long time, so a
call outlives the longest fault."""
ONCE = RetryPolicy(max_attempts=1, max_stream_reconnects=0)
RECONNECT = (("grpc.initial_reconnect_backoff_ms", 100), ("grpc.max_reconnect_backoff_ms", 500))
"""Channels reconnect soon after a door comes back (gRPC's default backs off for seconds)."""
CALL_TIMEOUT = 10.0
SETTLE_S = 120.0
"""How long a call the SDK does not retry is retried here before it is given up on."""
TRANSIENT = (Unavailable, DeadlineExceeded)


@dataclass(frozen=True, slots=True)
class LoadConfig:
    tenants: int = 2
    agents: int = 6
    """Per tenant."""
    capacity: int = 3
    rate: float = 4.0
    """Conversations arriving a second, per tenant."""
    handle_s: float = 1.0
    transfer_share: float = 0.3
    offer_timeout_s: int = 5
    probe_interval_s: float = 0.2
    probe_timeout_s: float = 1.0
    seed: int = 1


@dataclass(frozen=True, slots=True)
class Tenant:
    name: str
    admin: str
    gateway: str
    agents: dict[str, str]


def tenant_names(run: str, count: int, shards: int) -> list[str]:
    """``count`` tenant names, spread over the shards as evenly as the placement allows."""
    names: list[str] = []
    wanted = [i % shards for i in range(count)]
    n = 0
    while wanted:
        name = f"chaos{run}t{n}"
        if shard_of(name, shards) in wanted:
            wanted.remove(shard_of(name, shards))
            names.append(name)
        n += 1
    return names


async def configure(database_url: str, target: str, name: str, config: LoadConfig) -> Tenant:
    """The tenant and its tokens straight in the database (as ``usher admin`` does), then its
    skill, queues (``main``; ``parked``, which needs a skill nobody has) and agents through the
    AdminService."""
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        await pool.execute("INSERT INTO tenants (tenant_id) VALUES ($1)", name)
        _, admin = await credentials.create(pool, name, "admin", None)
        _, gateway = await credentials.create(pool, name, "gateway", None)
        agent_ids = [f"a{n}" for n in range(config.agents)]
        agents = {a: (await credentials.create(pool, name, "agent", a))[1] for a in agent_ids}
    finally:
        await pool.close()
    async with AdminClient(target, admin, timeout=60.0, retry=PATIENT) as client:
        for skill in ("chat", "nobody"):
            await client.create_skill(
                admin_pb.CreateSkillRequest(
                    skill_id=skill, skill=tenant_pb2.Skill(display_name=skill)
                )
            )
        for queue, skill in (("main", "chat"), ("parked", "nobody")):
            await client.create_queue(
                admin_pb.CreateQueueRequest(
                    queue_id=queue,
                    queue=queue_pb2.Queue(
                        display_name=queue,
                        requirements=[
                            queue_pb2.SkillRequirement(skill=f"skills/{skill}", min_level=1)
                        ],
                        offer_timeout=duration_pb2.Duration(seconds=config.offer_timeout_s),
                    ),
                )
            )
        for agent_id in agent_ids:
            await client.create_agent(
                admin_pb.CreateAgentRequest(
                    agent_id=agent_id,
                    agent=agent_pb2.Agent(
                        display_name=agent_id,
                        capacity=float(config.capacity),
                        skills=[agent_pb2.SkillLevel(skill="skills/chat", level=5)],
                    ),
                )
            )
    return Tenant(name, admin, gateway, agents)


async def _settle(
    call: Callable[[], Awaitable[Any]], deadline_s: float = SETTLE_S
) -> tuple[str, Any]:
    """Call until acknowledged, refused or ``deadline_s`` passed: ("acked", response),
    ("refused", error) with no unknown outcome before it, ("refused_after_unknown", error),
    or ("gave_up", error)."""
    unknown = False
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            return "acked", await call()
        except TRANSIENT as exc:
            unknown = True
            if time.monotonic() > deadline:
                return "gave_up", exc
            await asyncio.sleep(0.2)
        except UsherError as exc:
            return ("refused_after_unknown" if unknown else "refused"), exc


class TenantLoad:
    """One tenant's gateways, agents and probes (module docstring)."""

    def __init__(
        self,
        tenant: Tenant,
        targets: Sequence[str],
        config: LoadConfig,
        ledger: Ledger,
        run: str,
    ) -> None:
        self.tenant = tenant
        self.targets = list(targets)
        self.config = config
        self.ledger = ledger
        self.run = run
        self.rng = random.Random(f"{config.seed}-{tenant.name}")
        self.gateways = [
            GatewayClient(t, tenant.gateway, timeout=CALL_TIMEOUT, retry=PATIENT, options=RECONNECT)
            for t in targets
        ]
        self.agents = {
            agent_id: AgentClient(
                targets[n % len(targets)],
                token,
                timeout=CALL_TIMEOUT,
                retry=PATIENT,
                options=RECONNECT,
            )
            for n, (agent_id, token) in enumerate(sorted(tenant.agents.items()))
        }
        self.probes = [
            GatewayClient(
                t, tenant.gateway, timeout=config.probe_timeout_s, retry=ONCE, options=RECONNECT
            )
            for t in targets
        ]
        self.tasks: set[asyncio.Task[None]] = set()
        self.handling: set[asyncio.Task[None]] = set()
        self.transferred: set[str] = set()
        self.customers = 0

    def _spawn(self, coroutine: Any, into: set[asyncio.Task[None]] | None = None) -> None:
        bucket = self.tasks if into is None else into
        task = asyncio.create_task(coroutine)
        bucket.add(task)
        task.add_done_callback(bucket.discard)

    async def start(self) -> None:
        """Sign the agents in, open their streams, park the probes' conversations and start
        probing."""
        online = agent_svc.SetStatusRequest(status=agent_pb2.AGENT_STATUS_ONLINE)
        await asyncio.gather(*(client.set_status(online) for client in self.agents.values()))
        for agent_id, client in self.agents.items():
            self._spawn(self._feed(agent_id, client))
        for n, (target, probe) in enumerate(zip(self.targets, self.probes, strict=True)):
            conversation = await self._start(self.gateways[n], f"probe{n}", "parked")
            if conversation is None:
                raise RuntimeError(f"the probe conversation of {self.tenant.name} did not start")
            path = f"{self.tenant.name} via {target}"
            self._spawn(self._probe(path, f"{self.tenant.name}-d{n}", probe, conversation))

    async def arrivals(self, seconds: float) -> None:
        """Customers arriving at ``rate`` a second (Poisson) for ``seconds``."""
        end = time.monotonic() + seconds
        due = time.monotonic()
        while True:
            due += self.rng.expovariate(self.config.rate)
            if due >= end:
                return
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            self.customers += 1
            self._spawn(self._customer(self.customers), self.handling)

    async def drain(self, seconds: float) -> None:
        """Wait up to ``seconds`` for the customers and agents at work to finish."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                while self.handling:
                    await asyncio.gather(*list(self.handling), return_exceptions=True)

    async def close(self) -> None:
        for task in [*self.tasks, *self.handling]:
            task.cancel()
        await asyncio.gather(*self.tasks, *self.handling, return_exceptions=True)
        clients: list[Any] = [*self.gateways, *self.agents.values(), *self.probes]
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)

    # --- customers ----------------------------------------------------------------------------

    async def _start(self, gateway: GatewayClient, customer: str, queue: str) -> str | None:
        external = f"{self.run}-{self.tenant.name}-{customer}"
        text = f"hello from {external}"
        provider_id = f"wamid-{external}-0"
        request_id = f"start-{external}"
        try:
            started = await gateway.start_conversation(
                conv_svc.StartConversationRequest(
                    request_id=request_id,
                    channel=CHANNEL,
                    customer=conversation_pb2.CustomerIdentity(external_id=external),
                    queue=f"queues/{queue}",
                    first_message=conv_svc.CustomerMessage(
                        text=text, provider_message_id=provider_id
                    ),
                )
            )
        except UsherError as exc:
            self._failed("StartConversation", exc)
            return None
        conversation = started.conversation.name
        self.ledger.calls += 1
        self.ledger.starts.append(
            AckedStart(
                self.tenant.name, conversation, request_id, external, queue, text, provider_id
            )
        )
        self._message(conversation, started.first_message.name, text, "customer", provider_id)
        return str(conversation)

    def _message(self, conversation: str, name: str, text: str, sender: str, key: str) -> None:
        self.ledger.messages.append(
            AckedMessage(self.tenant.name, name, conversation, text, sender, key)
        )

    def _failed(self, operation: str, exc: UsherError) -> None:
        if isinstance(exc, TRANSIENT):
            self.ledger.gave_up(operation)
        else:
            self.ledger.error(f"{operation}:{type(exc).__name__}")

    async def _customer(self, n: int) -> None:
        gateway = self.gateways[n % len(self.gateways)]
        conversation = await self._start(gateway, f"c{n}", "main")
        if conversation is None:
            return
        await asyncio.sleep(0.3)
        text = f"{self.run}-{self.tenant.name}-c{n} writes again"
        provider_id = f"wamid-{self.run}-{self.tenant.name}-c{n}-1"
        try:
            posted = await gateway.post_customer_message(
                conv_svc.PostCustomerMessageRequest(
                    conversation=conversation, text=text, provider_message_id=provider_id
                )
            )
        except UsherError as exc:
            self._failed("PostCustomerMessage", exc)
            return
        self.ledger.calls += 1
        self._message(conversation, posted.message.name, text, "customer", provider_id)

    # --- agents -------------------------------------------------------------------------------

    async def _feed(self, agent_id: str, client: AgentClient) -> None:
        while True:  # the SDK reconnects and resumes; an OUT_OF_RANGE resume reopens afresh
            try:
                async for event in client.events():
                    if event.WhichOneof("event") == "offer":
                        self._spawn(self._handle(agent_id, client, event.offer), self.handling)
            except OutOfRange:
                continue
            except UsherError as exc:
                self.ledger.error(f"StreamEvents:{type(exc).__name__}")
                await asyncio.sleep(0.2)

    async def _handle(self, agent_id: str, client: AgentClient, offer: routing_pb2.Offer) -> None:
        conversation = offer.conversation
        me = f"agents/{agent_id}"
        status, answer = await _settle(
            lambda: client.accept_offer(agent_svc.AcceptOfferRequest(offer=offer.name))
        )
        if status == "acked":
            self.ledger.calls += 1
        elif status == "refused_after_unknown":
            if await self._owner(client, conversation) != me:
                return
            self.ledger.resolved += 1
        elif status == "gave_up":
            self.ledger.gave_up("AcceptOffer")
            return
        else:  # the offer is gone (expired, or moved on while this agent's door was away)
            self.ledger.error(f"AcceptOffer:{type(answer).__name__}")
            return
        hold = self.ledger.own(self.tenant.name, conversation, agent_id, time.monotonic())

        text = f"{self.run} {agent_id} answers {conversation} {uuid.uuid4().hex[:8]}"
        request_id = f"{agent_id}-{uuid.uuid4().hex}"
        try:
            sent = await client.send_message(
                agent_svc.SendMessageRequest(
                    request_id=request_id, conversation=conversation, text=text
                )
            )
        except TRANSIENT:
            self.ledger.gave_up("SendMessage")
        except UsherError as exc:
            self.ledger.refused_after_ack.append(
                f"SendMessage {conversation} by {agent_id}: {type(exc).__name__} {exc}"
            )
        else:
            self.ledger.calls += 1
            self._message(conversation, sent.message.name, text, f"agent:{agent_id}", request_id)
        await asyncio.sleep(self.config.handle_s)

        transfer = (
            conversation not in self.transferred and self.rng.random() < self.config.transfer_share
        )
        hold.released = time.monotonic()
        if transfer:
            self.transferred.add(conversation)
            operation = "RequestTransfer"
            status, answer = await _settle(
                lambda: client.request_transfer(
                    agent_svc.RequestTransferRequest(
                        conversation=conversation, queue="queues/main", note="chaos"
                    )
                )
            )
        else:
            operation = "EndConversation"
            status, answer = await _settle(
                lambda: client.end_conversation(
                    agent_svc.EndConversationRequest(conversation=conversation)
                )
            )
        if status == "acked":
            self.ledger.calls += 1
        elif status == "gave_up":
            self.ledger.gave_up(operation)
        elif status == "refused_after_unknown":
            if await self._owner(client, conversation) == me:
                self.ledger.refused_after_ack.append(
                    f"{operation} {conversation} by {agent_id}: still the owner after"
                    f" {type(answer).__name__} {answer}"
                )
            else:
                self.ledger.resolved += 1
        else:
            self.ledger.refused_after_ack.append(
                f"{operation} {conversation} by {agent_id}: {type(answer).__name__} {answer}"
            )

    async def _owner(self, client: AgentClient, conversation: str) -> str | None:
        try:
            got = await client.get_conversation(agent_svc.GetConversationRequest(name=conversation))
        except UsherError as exc:
            self.ledger.error(f"GetConversation:{type(exc).__name__}")
            return None
        return str(got.conversation.owner)

    # --- probes -------------------------------------------------------------------------------

    async def _probe(self, path: str, label: str, client: GatewayClient, conversation: str) -> None:
        n = 0
        while True:
            n += 1
            key = f"probe-{self.run}-{label}-{n}"
            sent = time.monotonic()
            ok = False
            try:
                posted = await client.post_customer_message(
                    conv_svc.PostCustomerMessageRequest(
                        conversation=conversation, text=key, provider_message_id=key
                    )
                )
            except UsherError:
                pass
            else:
                ok = True
                self.ledger.calls += 1
                self._message(conversation, posted.message.name, key, "customer", key)
            answered = time.monotonic()
            self.ledger.probes.append(ProbeCall(path, sent, answered, ok))
            await asyncio.sleep(max(0.0, sent + self.config.probe_interval_s - answered))


def recovery(probes: Sequence[ProbeCall], lifted: float) -> float | None:
    """Seconds from ``lifted`` until every probe path had a call sent since then answered OK
    (None: some path never did)."""
    paths = {p.path for p in probes}
    worst = 0.0
    for path in paths:
        first = next((p for p in probes if p.path == path and p.ok and p.sent >= lifted), None)
        if first is None:
            return None
        worst = max(worst, first.answered - lifted)
    return worst
