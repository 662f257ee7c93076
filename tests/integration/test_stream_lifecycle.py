"""Server streams end when their client goes, are capped, and are counted truly.

A real front door over loopback (``api_kit.running``). Every wait polls the server's own
figures (``StreamGuard.open_streams``, the feed's subscribers, ``usher_open_streams``) under a
generous overall timeout: a safety net against hangs, never an assertion about speed.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Callable

import asyncpg
import grpc
import prometheus_client
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from usher.v1 import (
    agent_service_pb2,
    agent_service_pb2_grpc,
    conversation_service_pb2,
    conversation_service_pb2_grpc,
    supervisor_service_pb2,
    supervisor_service_pb2_grpc,
)

from core.api.keepalive import Keepalive
from core.api.streams import REFUSED_REASON, StreamLimits
from core.routing import commands as c
from core.routing import events as ev
from core.routing import model as m
from core.serve import ServeSettings
from core.store import credentials
from tests.integration.api_kit import Running, running

T = "acme"
WAIT = 60.0
"""The overall timeout of every wait (a safety net, not a measurement)."""


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def open_streams(service: str) -> float:
    """``usher_open_streams{service}`` now (process-wide: compare before and after)."""
    found = prometheus_client.REGISTRY.get_sample_value("usher_open_streams", {"service": service})
    return found or 0.0


async def until(check: Callable[[], bool]) -> None:
    async def poll() -> None:
        while not check():
            await asyncio.sleep(0.02)

    await asyncio.wait_for(poll(), WAIT)


@pytest.fixture
async def configured(pool: asyncpg.Pool) -> asyncpg.Pool:
    """The pool, with the tenant's row (its agents are configured per test)."""
    await pool.execute("INSERT INTO tenants (tenant_id) VALUES ($1) ON CONFLICT DO NOTHING", T)
    return pool


async def with_agents(api: Running, *names: str) -> dict[str, str]:
    """Agents ``names`` configured in the tenant; a fresh token for each."""
    commands: list[c.Command] = [c.ConfigureTenant(tenant=T)]
    commands += [
        c.ConfigureAgent(tenant=T, profile=m.AgentProfile(name, name.title(), {}, capacity=1))
        for name in names
    ]
    for command in commands:
        assert (await api.server.ctx.submit(command)).ok
    return {name: await api.token(T, "agent", name) for name in names}


def agent_events(channel: grpc.aio.Channel, token: str) -> grpc.aio.UnaryStreamCall:  # type: ignore[type-arg]
    stub = agent_service_pb2_grpc.AgentServiceStub(channel)
    return stub.StreamEvents(agent_service_pb2.StreamEventsRequest(), metadata=bearer(token))


def outbound(channel: grpc.aio.Channel, token: str) -> grpc.aio.UnaryStreamCall:  # type: ignore[type-arg]
    stub = conversation_service_pb2_grpc.ConversationServiceStub(channel)
    return stub.StreamOutbound(
        conversation_service_pb2.StreamOutboundRequest(), metadata=bearer(token)
    )


@pytest.fixture
async def roomy(configured: asyncpg.Pool, redis_url: str) -> AsyncIterator[Running]:
    """A front door whose caps leave room for a few hundred streams of one credential."""
    limits = StreamLimits(per_credential=1_000, per_tenant=1_000)
    async with running(configured, redis_url, with_core=True, stream_limits=limits) as api:
        yield api


ROUNDS = 4
STREAMS = 200
SUBSCRIPTION_LIMIT = 1_000
"""How many events a stream's subscription may queue (``TenantFeed.subscribe``'s default)."""
AWAY = m.AgentStatus.AWAY


async def test_streams_dropped_by_the_client_are_released(roomy: Running) -> None:
    api = roomy
    token = (await with_agents(api, "ann"))["ann"]
    feed = api.server.ctx.feeds.feed(T)
    before = open_streams("AgentService")
    for round_ in range(ROUNDS):
        channel = grpc.aio.insecure_channel(api.target)
        calls = [agent_events(channel, token) for _ in range(STREAMS)]
        await until(lambda: api.server.streams.open_streams == STREAMS)
        await until(lambda: feed.subscribers == STREAMS)
        assert open_streams("AgentService") == before + STREAMS

        if round_ % 2 == 0:  # the client cancels each call
            for call in calls:
                call.cancel()
        else:  # the client closes its connection with the calls open
            await channel.close(grace=None)

        await until(lambda: api.server.streams.open_streams == 0)
        await until(lambda: feed.subscribers == 0)
        assert open_streams("AgentService") == before
        assert api.server.drain.open_streams == 0
        await channel.close()


FROZEN_CLIENT = textwrap.dedent(
    """
    import sys, time, grpc
    from usher.v1 import agent_service_pb2, agent_service_pb2_grpc
    target, token, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    stub = agent_service_pb2_grpc.AgentServiceStub(grpc.insecure_channel(target))
    metadata = (("authorization", "Bearer " + token),)
    calls = [
        stub.StreamEvents(agent_service_pb2.StreamEventsRequest(), metadata=metadata)
        for _ in range(count)
    ]
    time.sleep(3600)
    """
)


async def test_keepalive_ends_the_streams_of_a_client_that_froze(
    configured: asyncpg.Pool, redis_url: str
) -> None:
    """A client process stopped with SIGSTOP keeps its connection open but answers nothing:
    only the server's keepalive pings can find it (without them its streams stay forever)."""
    quick = Keepalive(time=0.5, timeout=1.0)
    async with running(configured, redis_url, with_core=True, keepalive=quick) as api:
        assert ("grpc.keepalive_time_ms", 500) in api.server.keepalive.server_options()
        token = (await with_agents(api, "ann"))["ann"]
        feed = api.server.ctx.feeds.feed(T)
        count = 10
        client = await asyncio.create_subprocess_exec(
            sys.executable, "-c", FROZEN_CLIENT, api.target, token, str(count)
        )
        try:
            await until(lambda: api.server.streams.open_streams == count)
            client.send_signal(signal.SIGSTOP)
            await until(lambda: api.server.streams.open_streams == 0)
            await until(lambda: feed.subscribers == 0)
        finally:
            client.kill()
            await client.wait()


def refusal(error: grpc.aio.AioRpcError) -> tuple[str, list[str]]:
    """(ErrorInfo reason, QuotaFailure subjects) of a refused call."""
    status = rpc_status.from_call(error)
    assert status is not None
    reason, subjects = "", []
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        quota = error_details_pb2.QuotaFailure()
        if detail.Unpack(info):
            reason = info.reason
        elif detail.Unpack(quota):
            subjects += [v.subject for v in quota.violations]
    return reason, subjects


async def refused(call: grpc.aio.UnaryStreamCall) -> grpc.aio.AioRpcError:  # type: ignore[type-arg]
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await asyncio.wait_for(call.read(), WAIT)
    return raised.value


async def test_a_credential_past_its_cap_is_refused_until_a_stream_closes(
    configured: asyncpg.Pool, redis_url: str
) -> None:
    limits = StreamLimits(per_credential=3, per_tenant=100)
    async with running(configured, redis_url, with_core=True, stream_limits=limits) as api:
        token = await api.token(T, "gateway")
        other = await api.token(T, "gateway")
        guard = api.server.streams.open
        async with grpc.aio.insecure_channel(api.target) as channel:
            admitted = [outbound(channel, token) for _ in range(3)]
            await until(lambda: api.server.streams.open_streams == 3)

            error = await refused(outbound(channel, token))
            assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "at most 3 per credential" in (error.details() or "")
            assert refusal(error) == (REFUSED_REASON, ["credential"])
            assert api.server.streams.open_streams == 3

            # another credential of the tenant is not held back by this one's streams
            another = outbound(channel, other)
            await until(lambda: api.server.streams.open_streams == 4)

            admitted[0].cancel()
            await until(lambda: api.server.streams.open_streams == 3)
            again = outbound(channel, token)
            await until(lambda: api.server.streams.open_streams == 4)
            assert not again.done()
            for call in [*admitted[1:], another, again]:
                call.cancel()
            await until(lambda: api.server.streams.open_streams == 0)
        assert guard.total == 0


async def test_a_tenant_past_its_cap_is_refused_whatever_the_credential(
    configured: asyncpg.Pool, redis_url: str
) -> None:
    limits = StreamLimits(per_credential=10, per_tenant=2)
    async with running(configured, redis_url, with_core=True, stream_limits=limits) as api:
        tokens = [await api.token(T, "gateway") for _ in range(3)]
        stranger = await api.token("globex", "gateway")
        async with grpc.aio.insecure_channel(api.target) as channel:
            admitted = [outbound(channel, tokens[0]), outbound(channel, tokens[1])]
            await until(lambda: api.server.streams.open_streams == 2)

            error = await refused(outbound(channel, tokens[2]))
            assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert refusal(error) == (REFUSED_REASON, ["tenant"])

            elsewhere = outbound(channel, stranger)  # another tenant's cap is its own
            await until(lambda: api.server.streams.open_streams == 3)
            for call in [*admitted, elsewhere]:
                call.cancel()
            await until(lambda: api.server.streams.open_streams == 0)


async def test_usher_open_streams_counts_each_stream_once_however_it_ends(
    roomy: Running,
) -> None:
    """Client cancel, an error from the servicer, and the server's drain at shutdown."""
    api = roomy
    supervisor = await api.token(T, "supervisor")
    before = open_streams("SupervisorService")
    async with grpc.aio.insecure_channel(api.target) as channel:
        stub = supervisor_service_pb2_grpc.SupervisorServiceStub(channel)

        missing = stub.StreamConversation(
            supervisor_service_pb2.StreamConversationRequest(conversation="conversations/nope"),
            metadata=bearer(supervisor),
        )
        error = await refused(missing)
        assert error.code() == grpc.StatusCode.NOT_FOUND
        await until(lambda: api.server.streams.open_streams == 0)
        assert open_streams("SupervisorService") == before

        cancelled = stub.StreamDashboard(
            supervisor_service_pb2.StreamDashboardRequest(), metadata=bearer(supervisor)
        )
        assert await asyncio.wait_for(cancelled.read(), WAIT) is not grpc.aio.EOF
        assert open_streams("SupervisorService") == before + 1
        cancelled.cancel()
        await until(lambda: api.server.streams.open_streams == 0)
        assert open_streams("SupervisorService") == before

        drained = stub.StreamDashboard(
            supervisor_service_pb2.StreamDashboardRequest(), metadata=bearer(supervisor)
        )
        assert await asyncio.wait_for(drained.read(), WAIT) is not grpc.aio.EOF
        await api.server.stop(grace=1.0)
        ended = await refused(drained)
        assert ended.code() == grpc.StatusCode.UNAVAILABLE
    assert api.server.streams.open_streams == 0
    assert open_streams("SupervisorService") == before


async def test_a_stream_cut_off_as_a_slow_consumer_is_released(roomy: Running) -> None:
    """More events for an agent than its subscription may queue, in one go: the stream ends
    RESOURCE_EXHAUSTED (SLOW_CONSUMER) and leaves nothing open behind it."""
    api = roomy
    token = (await with_agents(api, "ann"))["ann"]
    feed = api.server.ctx.feeds.feed(T)
    before = open_streams("AgentService")
    async with grpc.aio.insecure_channel(api.target) as channel:
        call = agent_events(channel, token)
        await until(lambda: feed.subscribers == 1)
        burst = [
            ev.AgentStatusChanged(tenant=T, at=time.time(), agent_id="ann", status=AWAY)
            for _ in range(SUBSCRIPTION_LIMIT + 1)
        ]
        await feed.publish(feed.last_id + 1, burst)
        with pytest.raises(grpc.aio.AioRpcError) as cut:
            while await asyncio.wait_for(call.read(), WAIT) is not grpc.aio.EOF:
                pass
        assert cut.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert refusal(cut.value)[0] == "SLOW_CONSUMER"
        await until(lambda: api.server.streams.open_streams == 0)
        await until(lambda: feed.subscribers == 0)
    assert open_streams("AgentService") == before


def test_serve_settings_carry_the_caps_and_keepalive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USHER_MAX_STREAMS_PER_CREDENTIAL", "7")
    monkeypatch.setenv("USHER_KEEPALIVE_TIME", "12.5")
    settings = ServeSettings(max_streams_per_tenant=70)
    assert settings.stream_limits() == StreamLimits(per_credential=7, per_tenant=70)
    assert ("grpc.keepalive_time_ms", 12_500) in settings.keepalive().server_options()


async def test_a_revoked_credential_s_open_streams_end_unauthenticated(roomy: Running) -> None:
    """No call need arrive: the front door looks for revocations while streams are open."""
    api = roomy
    tokens = await with_agents(api, "ann", "bob")
    async with grpc.aio.insecure_channel(api.target) as channel:
        ann, bob = agent_events(channel, tokens["ann"]), agent_events(channel, tokens["bob"])
        await until(lambda: api.server.streams.open_streams == 2)

        assert await credentials.revoke(api.pool, tokens["ann"].split("_")[1])
        error = await refused(ann)
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "revoked" in (error.details() or "")
        await until(lambda: api.server.streams.open_streams == 1)
        assert not bob.done()  # another credential's stream goes on
        bob.cancel()
        await until(lambda: api.server.streams.open_streams == 0)
