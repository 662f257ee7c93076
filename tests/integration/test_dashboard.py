"""SupervisorService.StreamDashboard over real gRPC, with real credentials, on an in-process
shard whose clock the test moves: the figures are the shard's live state."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import grpc
import pytest
import redis.asyncio as aioredis
from google.protobuf import duration_pb2
from usher.v1 import agent_pb2, supervisor_service_pb2, supervisor_service_pb2_grpc

from core.api.local import build_local_context
from core.api.server import Server, available_servicers
from core.routing import ManualClock
from core.routing import commands as c
from core.routing import model as m
from core.runtime.live import TenantLive
from core.runtime.shard import Shard
from core.store import credentials
from core.store.connect import Connections
from tests.integration.api_kit import GENEROUS

T = "acme"
WAIT = 10.0  # a safety net against hangs, never an assertion about speed
FAST = duration_pb2.Duration(nanos=200_000_000)

# ManualClock starts on Thursday 2026-01-01 00:00 UTC (weekday 3).
THURSDAY_MORNING = m.BusinessHours(
    weekly={3: (m.TimeRange(dt.time(0, 0), dt.time(12, 0)),)},
    breaks={3: (m.TimeRange(dt.time(1, 0), dt.time(2, 0)),)},
)


@dataclass
class Env:
    shard: Shard
    clock: ManualClock
    server: Server
    stub: supervisor_service_pb2_grpc.SupervisorServiceStub
    tokens: dict[str, str]
    live_calls: list[str]

    def auth(self, role: str) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.tokens[role]}"),)

    async def run(self, *commands: c.Command) -> None:
        for outcome in await self.shard.submit(commands):
            assert outcome.ok, outcome.failure

    @property
    def pollers(self) -> int:
        servicer: Any = next(
            s.servicer for s in self.server.servicers if s.name.endswith("SupervisorService")
        )
        return int(servicer._dashboards.pollers)


@pytest.fixture
async def env(pool: asyncpg.Pool, redis: aioredis.Redis) -> AsyncIterator[Env]:
    clock = ManualClock()
    connections = Connections(pg=pool, redis=redis, database_url="", redis_url="")
    api, shard = build_local_context(connections, clock=clock)
    calls: list[str] = []
    inner = api.live
    assert inner is not None

    async def counted(tenant: str) -> TenantLive:
        calls.append(tenant)
        return await inner(tenant)

    api = dataclasses.replace(api, live=counted)
    await pool.execute("INSERT INTO tenants (tenant_id) VALUES ($1) ON CONFLICT DO NOTHING", T)
    tokens = {}
    for role, agent_id in (
        ("supervisor", None),
        ("admin", None),
        ("agent", "ann"),
        ("gateway", None),
    ):
        _, tokens[role] = await credentials.create(pool, T, role, agent_id)
    server = Server(api, available_servicers(api), host="127.0.0.1", port=0, rate_limit=GENEROUS)
    await server.start()
    shard.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    env = Env(
        shard,
        clock,
        server,
        supervisor_service_pb2_grpc.SupervisorServiceStub(channel),
        tokens,
        calls,
    )
    await env.run(
        c.ConfigureTenant(tenant=T),
        c.ConfigureQueue(tenant=T, settings=m.QueueSettings("q", strategy=m.Strategy.BROADCAST)),
        c.ConfigureQueue(tenant=T, settings=m.QueueSettings("hours", hours=THURSDAY_MORNING)),
        c.ConfigureAgent(tenant=T, profile=m.AgentProfile("ann", capacity=2)),
        c.ConfigureAgent(tenant=T, profile=m.AgentProfile("bob", capacity=1.5)),
    )
    yield env
    await channel.close()
    await server.stop(grace=1.0)
    await shard.stop()


Snapshot = supervisor_service_pb2.DashboardSnapshot


async def next_where(stream: Any, pick: Callable[[Snapshot], bool]) -> Snapshot:
    """The first snapshot of the stream that ``pick`` accepts."""

    async def scan() -> Snapshot:
        while True:
            response = await stream.read()
            assert response is not grpc.aio.EOF, "the stream ended"
            snapshot: Snapshot = response.snapshot
            if pick(snapshot):
                return snapshot

    return await asyncio.wait_for(scan(), WAIT)


def queue(snapshot: Snapshot, name: str) -> Any:
    return next(q for q in snapshot.queues if q.queue == f"queues/{name}")


def agent(snapshot: Snapshot, name: str) -> Any:
    return next(a for a in snapshot.agents if a.agent == f"agents/{name}")


def seconds(d: duration_pb2.Duration) -> float:
    return d.seconds + d.nanos / 1e9


def dashboard(env: Env, role: str, *queues: str) -> Any:
    return env.stub.StreamDashboard(
        supervisor_service_pb2.StreamDashboardRequest(queues=list(queues), min_interval=FAST),
        metadata=env.auth(role),
    )


async def test_the_dashboard_shows_the_shards_live_state(env: Env) -> None:
    stream = dashboard(env, "supervisor")
    first = await next_where(stream, lambda s: True)
    assert [q.queue for q in first.queues] == ["queues/hours", "queues/q"]
    assert queue(first, "q").waiting == 0
    assert queue(first, "q").open and queue(first, "hours").open
    ann = agent(first, "ann")
    assert (ann.status, ann.load, ann.capacity) == (agent_pb2.AGENT_STATUS_OFFLINE, 0.0, 2.0)
    assert agent(first, "bob").capacity == 1.5

    # A conversation waits (nobody is signed in): the count, then the longest wait, grow.
    await env.run(
        c.StartConversation(
            tenant=T, conversation_id="c1", channel="webchat", customer_id="k1", queue_id="q"
        )
    )
    waiting = await next_where(stream, lambda s: queue(s, "q").waiting == 1)
    before = seconds(queue(waiting, "q").longest_wait)
    env.clock.advance(30)
    later = await next_where(stream, lambda s: seconds(queue(s, "q").longest_wait) > before)
    assert queue(later, "q").waiting == 1

    # The break in the queue's business hours closes it; then it opens again.
    env.clock.advance(3600)
    on_break = await next_where(stream, lambda s: not queue(s, "hours").open)
    assert queue(on_break, "q").open
    env.clock.advance(3600)
    await next_where(stream, lambda s: queue(s, "hours").open)

    # Ann signs in: the broadcast offer is pending for her, her load is still 0; she accepts.
    await env.run(c.SetAgentStatus(tenant=T, agent_id="ann", status=m.AgentStatus.ONLINE))
    offered = await next_where(stream, lambda s: queue(s, "q").offered == 1)
    ann = agent(offered, "ann")
    assert (ann.status, ann.load, len(ann.offers)) == (agent_pb2.AGENT_STATUS_ONLINE, 0.0, 1)
    assert queue(offered, "q").waiting == 0
    offer_id = ann.offers[0].removeprefix("offers/")
    await env.run(c.AcceptOffer(tenant=T, offer_id=offer_id, agent_id="ann"))
    accepted = await next_where(stream, lambda s: agent(s, "ann").load == 1.0)
    ann = agent(accepted, "ann")
    assert (list(ann.conversations), list(ann.offers)) == (["conversations/c1"], [])
    q = queue(accepted, "q")
    assert (q.waiting, q.offered, seconds(q.longest_wait)) == (0, 0, 0.0)

    # Past noon the hours queue is closed.
    env.clock.advance(11 * 3600)
    await next_where(stream, lambda s: not queue(s, "hours").open)
    stream.cancel()


def start(conversation_id: str) -> c.StartConversation:
    return c.StartConversation(
        tenant=T,
        conversation_id=conversation_id,
        channel="webchat",
        customer_id=f"k-{conversation_id}",
        queue_id="q",
    )


async def accept_offer(env: Env, stream: Any) -> None:
    offered = await next_where(stream, lambda s: len(agent(s, "ann").offers) == 1)
    offer_id = agent(offered, "ann").offers[0].removeprefix("offers/")
    await env.run(c.AcceptOffer(tenant=T, offer_id=offer_id, agent_id="ann"))


async def test_service_level_today_waiting_and_agents_by_status(env: Env) -> None:
    """Queue q's threshold is 20 s: c1 answered after 5 s (within), c2 abandoned after 30 s,
    c3 answered after 25 s (outside): 1 / 3 today; c4 waits (ann is full). A day later the
    counts start again."""
    await env.run(c.SetAgentStatus(tenant=T, agent_id="ann", status=m.AgentStatus.ONLINE))
    stream = dashboard(env, "supervisor")
    first = await next_where(stream, lambda s: True)
    assert not first.totals.HasField("service_level_today")
    assert first.totals.time_zone == "UTC"
    await env.run(start("c1"))
    env.clock.advance(5)
    await accept_offer(env, stream)
    await env.run(start("c2"))  # offered to ann, who lets it be
    env.clock.advance(30)
    await env.run(c.CustomerLeft(tenant=T, conversation_id="c2"))
    await env.run(start("c3"))
    env.clock.advance(25)
    await accept_offer(env, stream)
    await env.run(start("c4"))
    env.clock.advance(10)
    now = await next_where(stream, lambda s: s.totals.waiting == 1)
    q = queue(now, "q")
    assert (q.answered_today, q.answered_within_threshold_today, q.abandoned_today) == (2, 1, 1)
    assert round(q.service_level_today, 4) == round(1 / 3, 4)
    totals = now.totals
    assert (totals.answered_today, totals.answered_within_threshold_today) == (2, 1)
    assert (totals.abandoned_today, round(totals.service_level_today, 4)) == (1, round(1 / 3, 4))
    assert seconds(totals.longest_wait) == 10.0
    by_status = {(x.status, x.custom_status): x.agents for x in totals.agents_by_status}
    assert by_status == {
        (agent_pb2.AGENT_STATUS_ONLINE, ""): 1,
        (agent_pb2.AGENT_STATUS_OFFLINE, ""): 1,
    }
    assert (totals.load, totals.capacity) == (2.0, 2.0)
    only_hours = await next_where(dashboard(env, "admin", "queues/hours"), lambda s: True)
    assert (only_hours.totals.waiting, only_hours.totals.answered_today) == (0, 0)
    env.clock.advance(86400)  # the next day: nothing answered or abandoned yet
    tomorrow = await next_where(stream, lambda s: s.totals.answered_today == 0)
    assert not tomorrow.totals.HasField("service_level_today")
    stream.cancel()


async def test_an_admin_sees_only_the_queues_asked_for_and_streams_share_one_poller(
    env: Env,
) -> None:
    admin = dashboard(env, "admin", "queues/hours")
    first = await next_where(admin, lambda s: True)
    assert [q.queue for q in first.queues] == ["queues/hours"]
    assert [a.agent for a in first.agents] == ["agents/ann", "agents/bob"]
    supervisor = dashboard(env, "supervisor")
    await next_where(supervisor, lambda s: True)
    assert env.pollers == 1

    await env.run(c.SetAgentStatus(tenant=T, agent_id="bob", status=m.AgentStatus.AWAY))
    for stream in (admin, supervisor):
        changed = await next_where(
            stream, lambda s: agent(s, "bob").status == agent_pb2.AGENT_STATUS_AWAY
        )
        assert len(changed.queues) == (1 if stream is admin else 2)
    assert set(env.live_calls) == {T}

    admin.cancel()
    supervisor.cancel()
    for _ in range(int(WAIT / 0.05)):
        if env.pollers == 0:
            break
        await asyncio.sleep(0.05)
    assert env.pollers == 0


async def test_nothing_is_sent_while_nothing_changes(env: Env) -> None:
    stream = dashboard(env, "supervisor")
    await next_where(stream, lambda s: True)
    calls = len(env.live_calls)

    async def polled() -> None:
        while len(env.live_calls) < calls + 3:  # polls go on; the figures stay the same
            await asyncio.sleep(0.05)

    await asyncio.wait_for(polled(), WAIT)
    await env.run(c.SetAgentStatus(tenant=T, agent_id="ann", status=m.AgentStatus.ONLINE))
    response = await asyncio.wait_for(stream.read(), WAIT)  # the next one sent is the change
    assert agent(response.snapshot, "ann").status == agent_pb2.AGENT_STATUS_ONLINE
    stream.cancel()


async def test_an_unknown_queue_is_not_found(env: Env) -> None:
    stream = dashboard(env, "supervisor", "queues/nope")
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await asyncio.wait_for(stream.read(), WAIT)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("role", ["agent", "gateway"])
async def test_agents_and_gateways_may_not_watch(env: Env, role: str) -> None:
    stream = dashboard(env, role)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await asyncio.wait_for(stream.read(), WAIT)
    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert env.live_calls == []


async def test_a_ray_shard_answers_live_figures(
    local_ray: None, database_url: str, pool: asyncpg.Pool
) -> None:
    import ray

    from core.runtime.actor import spawn
    from core.runtime.dispatcher import Dispatcher

    actor = spawn(93, database_url)
    dispatcher = Dispatcher([actor])
    for command in (
        c.ConfigureTenant(tenant=T),
        c.ConfigureQueue(tenant=T, settings=m.QueueSettings("q")),
        c.ConfigureAgent(tenant=T, profile=m.AgentProfile("ann", capacity=2)),
        c.StartConversation(
            tenant=T, conversation_id="c1", channel="email", customer_id="k1", queue_id="q"
        ),
        c.SetAgentStatus(tenant=T, agent_id="ann", status=m.AgentStatus.ONLINE),
    ):
        assert (await dispatcher.submit(command)).ok
    figures: TenantLive = await actor.live.remote(T)
    assert isinstance(figures, TenantLive)
    (q,) = figures.queues
    (ann,) = figures.agents
    assert (q.queue_id, q.waiting, q.offered, q.open) == ("q", 0, 1, True)
    assert (ann.agent_id, ann.load_milli, ann.capacity_milli, len(ann.offers)) == (
        "ann",
        500,
        2000,
        1,
    )
    ray.kill(actor, no_restart=True)
