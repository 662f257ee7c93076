"""The audit after the load: the store and the API held to the ``Ledger``.

From the store (read directly, never through a proxy):

- lost: an acknowledged conversation without its row, an acknowledged message whose row is
  missing or holds another conversation or text;
- duplicated: a customer of the run with more than one conversation (each started exactly
  one), a text of the run stored more than once (every text the load sends is unique);
- over capacity: each tenant's event log replayed one event at a time into a fresh engine; after
  every event, an agent whose load (less its supervisor overrides) exceeds its capacity counts
  once; the engine's invariants are checked on the final state;
- double owned: the ledger's definite double grants, and any conversation that two agents list
  as theirs (``ListMyConversations``) at the end.

From the API: each acknowledged start and message sent again with its idempotency key must be
answered as a duplicate naming the original (a refusal or another name is acknowledged-then-
refused), up to ``replay_limit`` of each kind.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import asyncpg
from usher.client import AgentClient, GatewayClient, UsherError
from usher.v1 import agent_service_pb2 as agent_svc
from usher.v1 import conversation_pb2
from usher.v1 import conversation_service_pb2 as conv_svc

from benchmarks.chaos.ledger import AckedMessage, AckedStart, Ledger
from benchmarks.chaos.load import CHANNEL, PATIENT, Tenant
from core.routing import Engine
from core.routing.invariants import InvariantViolation, check_invariants
from core.runtime.live import TenantLive, tenant_live
from core.store import codec

LiveRead = Callable[[str], Awaitable[TenantLive]]

EXAMPLES = 10
"""Findings of each kind kept in the report (all are counted)."""


@dataclass
class Audit:
    acknowledged_conversations: int = 0
    acknowledged_messages: int = 0
    lost_conversations: list[str] = field(default_factory=list)
    lost_messages: list[str] = field(default_factory=list)
    duplicated_conversations: list[str] = field(default_factory=list)
    duplicated_messages: list[str] = field(default_factory=list)
    double_owned: list[str] = field(default_factory=list)
    over_capacity: list[str] = field(default_factory=list)
    invariant_violations: list[str] = field(default_factory=list)
    refused_after_ack: list[str] = field(default_factory=list)
    replays: Counter[str] = field(default_factory=Counter)
    """Replayed calls by outcome: ``duplicate`` (as it must be), or what else came back."""
    events_checked: int = 0
    peak_load_ratio: float = 0.0
    """The highest load / capacity of any agent after any event (shows the check had load to
    look at)."""
    rebuild_mismatches: list[str] = field(default_factory=list)
    """Tenants whose live shard state differs from a replay of their event log."""
    rebuilds_compared: int = 0


def _message_id(name: str) -> int | None:
    tail = name.rsplit("/messages/", 1)
    try:
        return int(tail[1]) if len(tail) == 2 else None
    except ValueError:
        return None


def _conversation_id(name: str) -> str:
    return name.removeprefix("conversations/")


async def audit_store(
    database_url: str, tenants: Sequence[str], ledger: Ledger, audit: Audit
) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        conversations = await conn.fetch(
            "SELECT tenant_id, conversation_id, customer_id FROM conversations"
            " WHERE tenant_id = ANY($1)",
            list(tenants),
        )
        messages = await conn.fetch(
            "SELECT tenant_id, message_id, conversation_id, content FROM messages"
            " WHERE tenant_id = ANY($1) AND sender <> 'system'",
            list(tenants),
        )
        stored = {(r["tenant_id"], r["conversation_id"]) for r in conversations}
        for start in ledger.starts:
            if (start.tenant, _conversation_id(start.conversation)) not in stored:
                audit.lost_conversations.append(f"{start.tenant} {start.conversation}")
        per_customer = Counter((r["tenant_id"], r["customer_id"]) for r in conversations)
        audit.duplicated_conversations += [
            f"{tenant} customer {customer}: {n} conversations"
            for (tenant, customer), n in per_customer.items()
            if n > 1
        ]
        rows = {(r["tenant_id"], r["message_id"]): r for r in messages}
        for message in ledger.messages:
            row = rows.get((message.tenant, _message_id(message.name) or -1))
            if (
                row is None
                or row["conversation_id"] != _conversation_id(message.conversation)
                or row["content"] != message.text
            ):
                audit.lost_messages.append(f"{message.tenant} {message.name} {message.text!r}")
        texts = Counter((r["tenant_id"], r["content"]) for r in messages)
        audit.duplicated_messages += [
            f"{tenant} {text!r} stored {n} times" for (tenant, text), n in texts.items() if n > 1
        ]
        for tenant in tenants:
            await _replay_events(conn, tenant, audit)
    finally:
        await conn.close()


async def _replay_events(conn: asyncpg.Connection, tenant: str, audit: Audit) -> None:
    engine = Engine()
    records = await conn.fetch(
        "SELECT seq, type, payload FROM events WHERE tenant_id = $1 ORDER BY seq", tenant
    )
    for record in records:
        engine.replay([codec.decode(record["type"], record["payload"])])
        audit.events_checked += 1
        router = engine.get(tenant)
        if router is None:
            continue
        for agent in router.agents.values():
            if agent.capacity > 0:
                audit.peak_load_ratio = max(audit.peak_load_ratio, agent.load / agent.capacity)
            if agent.load - agent.override > agent.capacity + 1e-9:
                audit.over_capacity.append(
                    f"{tenant} {agent.agent_id} after event {record['seq']}"
                    f" ({record['type']}): load {agent.load:g} of {agent.capacity:g}"
                )
    router = engine.get(tenant)
    if router is not None:
        try:
            check_invariants(router)
        except InvariantViolation as exc:
            audit.invariant_violations.append(f"{tenant}: {exc}")


async def audit_live(
    database_url: str, tenants: Sequence[str], live: LiveRead, audit: Audit, tries: int = 5
) -> None:
    """Each tenant's live state on its shard (``live(tenant)``, ``core.runtime.live``) equals
    the same figures of a fresh engine fed the tenant's whole event log: agents (status, load,
    capacity, conversations, offers) and queues (waiting, offered). Read between two live reads
    of the same version, so nothing moved meanwhile (tried again otherwise)."""
    conn = await asyncpg.connect(database_url)
    try:
        for tenant in tenants:
            for _ in range(tries):
                before = await live(tenant)
                engine = Engine()
                records = await conn.fetch(
                    "SELECT type, payload FROM events WHERE tenant_id = $1 ORDER BY seq", tenant
                )
                engine.replay(codec.decode(r["type"], r["payload"]) for r in records)
                after = await live(tenant)
                if before.version != after.version:
                    await asyncio.sleep(0.5)
                    continue
                router = engine.get(tenant)
                rebuilt = tenant_live(router, after.at) if router is not None else None
                audit.rebuilds_compared += 1
                if rebuilt is None or _figures(rebuilt) != _figures(after):
                    audit.rebuild_mismatches.append(
                        f"{tenant}: live {_figures(after)} != rebuilt "
                        f"{_figures(rebuilt) if rebuilt is not None else None}"
                    )
                break
            else:
                audit.rebuild_mismatches.append(f"{tenant}: never still for {tries} reads")
    finally:
        await conn.close()


def _figures(live: TenantLive) -> tuple[object, ...]:
    agents = tuple(
        (
            a.agent_id,
            a.status,
            a.custom_status,
            a.load_milli,
            a.capacity_milli,
            a.conversations,
            a.offers,
        )
        for a in live.agents
    )
    queues = tuple((q.queue_id, q.waiting, q.offered) for q in live.queues)
    return agents, queues


async def audit_api(
    target: str,
    tenants: Sequence[Tenant],
    ledger: Ledger,
    audit: Audit,
    replay_limit: int,
) -> None:
    by_name = {t.name: t for t in tenants}
    for tenant in tenants:
        await _listed_twice(target, tenant, audit)
    starts = ledger.starts[:replay_limit]
    customers = [m for m in ledger.messages if m.sender == "customer"][:replay_limit]
    agents = [m for m in ledger.messages if m.sender.startswith("agent:")][:replay_limit]
    gateways = {
        t.name: GatewayClient(target, t.gateway, timeout=30.0, retry=PATIENT) for t in tenants
    }
    clients: dict[tuple[str, str], AgentClient] = {}
    try:
        for start in starts:
            await _replay_start(gateways[start.tenant], start, audit)
        for message in customers:
            await _replay_customer(gateways[message.tenant], message, audit)
        for message in agents:
            agent = message.sender.removeprefix("agent:")
            key = (message.tenant, agent)
            if key not in clients:
                token = by_name[message.tenant].agents[agent]
                clients[key] = AgentClient(target, token, timeout=30.0, retry=PATIENT)
            await _replay_agent(clients[key], message, audit)
    finally:
        await asyncio.gather(
            *(c.close() for c in [*gateways.values(), *clients.values()]), return_exceptions=True
        )


async def _listed_twice(target: str, tenant: Tenant, audit: Audit) -> None:
    held: Counter[str] = Counter()
    for token in tenant.agents.values():
        async with AgentClient(target, token, timeout=30.0, retry=PATIENT) as client:
            mine = await client.list_my_conversations(agent_svc.ListMyConversationsRequest())
            held.update({c.name for c in mine.conversations})
    audit.double_owned += [
        f"{tenant.name} {name}: listed by {n} agents" for name, n in held.items() if n > 1
    ]


def _refused(audit: Audit, what: str, outcome: str) -> None:
    audit.replays[outcome] += 1
    if outcome != "duplicate":
        audit.refused_after_ack.append(f"{what}: replay answered {outcome}")


async def _replay_start(gateway: GatewayClient, start: AckedStart, audit: Audit) -> None:
    try:
        again = await gateway.start_conversation(
            conv_svc.StartConversationRequest(
                request_id=start.request_id,
                channel=CHANNEL,
                customer=conversation_pb2.CustomerIdentity(external_id=start.customer),
                queue=f"queues/{start.queue}",
                first_message=conv_svc.CustomerMessage(
                    text=start.first_text, provider_message_id=start.provider_message_id
                ),
            )
        )
    except UsherError as exc:
        outcome = f"StartConversation:{type(exc).__name__}"
    else:
        same = again.duplicate and again.conversation.name == start.conversation
        outcome = "duplicate" if same else "StartConversation:another conversation"
    _refused(audit, f"{start.tenant} start {start.conversation}", outcome)


async def _replay_customer(gateway: GatewayClient, message: AckedMessage, audit: Audit) -> None:
    try:
        again = await gateway.post_customer_message(
            conv_svc.PostCustomerMessageRequest(
                conversation=message.conversation,
                text=message.text,
                provider_message_id=message.key,
            )
        )
    except UsherError as exc:
        outcome = f"PostCustomerMessage:{type(exc).__name__}"
    else:
        same = again.duplicate and again.message.name == message.name
        outcome = "duplicate" if same else "PostCustomerMessage:another message"
    _refused(audit, f"{message.tenant} {message.name}", outcome)


async def _replay_agent(client: AgentClient, message: AckedMessage, audit: Audit) -> None:
    try:
        again = await client.send_message(
            agent_svc.SendMessageRequest(
                request_id=message.key, conversation=message.conversation, text=message.text
            )
        )
    except UsherError as exc:
        outcome = f"SendMessage:{type(exc).__name__}"
    else:
        same = again.duplicate and again.message.name == message.name
        outcome = "duplicate" if same else "SendMessage:another message"
    _refused(audit, f"{message.tenant} {message.name}", outcome)
