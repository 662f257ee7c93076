"""The Prometheus metrics move with a conversation flow through real gRPC servicers.

Counters are process-wide, so every check compares a value before and after. No durations.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import grpc
import prometheus_client
import pytest
import redis.asyncio as aioredis
from usher.v1 import (
    agent_pb2,
    agent_service_pb2,
    agent_service_pb2_grpc,
    conversation_pb2,
    conversation_service_pb2,
    conversation_service_pb2_grpc,
)

from core.api.agents import AgentServicer
from core.api.context import Caller
from core.api.conversations import ConversationServicer
from core.api.local import build_local_context
from core.api.metrics import QueueDepth, offer_outcome, with_stream_gauge
from core.api.server import Servicer
from core.routing import ManualClock
from core.routing import commands as c
from core.routing import events as ev
from core.routing import model as m
from core.store.connect import Connections

T = "acme"
WAIT = 10.0  # a safety net against hangs, never an assertion about speed
GATEWAY = (("x-test-caller", "gateway"),)


def agent(name: str) -> tuple[tuple[str, str], ...]:
    return (("x-test-caller", f"agent:{name}"),)


def caller_from_metadata(context: Any) -> Caller:
    role, _, agent_id = dict(context.invocation_metadata())["x-test-caller"].partition(":")
    return Caller(tenant=T, role=role, agent_id=agent_id or None, credential_id=role)


def value(name: str, **labels: str) -> float:
    return prometheus_client.REGISTRY.get_sample_value(name, labels) or 0.0


class Stubs:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.gateway = conversation_service_pb2_grpc.ConversationServiceStub(channel)
        self.agents = agent_service_pb2_grpc.AgentServiceStub(channel)


@pytest.fixture
async def stubs(pool: asyncpg.Pool, redis: aioredis.Redis) -> AsyncIterator[Stubs]:
    connections = Connections(pg=pool, redis=redis, database_url="", redis_url="")
    api, shard = build_local_context(connections, clock=ManualClock())
    setup: list[c.Command] = [
        c.ConfigureTenant(tenant=T),
        c.ConfigureQueue(tenant=T, settings=m.QueueSettings("q")),
        c.ConfigureAgent(tenant=T, profile=m.AgentProfile("ann", name="Ann", capacity=2)),
    ]
    for command in setup:
        assert (await api.submit(command)).ok
    server = grpc.aio.server()
    servicers = [
        Servicer(
            "usher.v1.ConversationService",
            ConversationServicer(api, caller_of=caller_from_metadata),
            conversation_service_pb2_grpc.add_ConversationServiceServicer_to_server,
        ),
        Servicer(
            "usher.v1.AgentService",
            AgentServicer(api, caller_of=caller_from_metadata),
            agent_service_pb2_grpc.add_AgentServiceServicer_to_server,
        ),
    ]
    for servicer in map(with_stream_gauge, servicers):
        servicer.add(servicer.servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    yield Stubs(channel)
    await channel.close()
    await server.stop(None)
    await shard.stop()


async def start(stubs: Stubs, external_id: str) -> Any:
    return await stubs.gateway.StartConversation(
        conversation_service_pb2.StartConversationRequest(
            request_id=f"start-{external_id}",
            channel="whatsapp",
            customer=conversation_pb2.CustomerIdentity(external_id=external_id),
            queue="queues/q",
            first_message=conversation_service_pb2.CustomerMessage(
                text="hi", provider_message_id=f"wamid-{external_id}"
            ),
        ),
        metadata=GATEWAY,
    )


async def next_offer(stream: Any) -> Any:
    async def scan() -> Any:
        while True:
            response = await stream.read()
            assert response is not grpc.aio.EOF, "the stream ended"
            for event in response.events:
                if event.WhichOneof("event") == "offer":
                    return event.offer

    return await asyncio.wait_for(scan(), WAIT)


async def until(check: Any) -> None:
    async def poll() -> None:
        while not check():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), WAIT)


async def test_a_conversation_flow_moves_the_metrics(stubs: Stubs) -> None:
    streams = "usher_open_streams"
    before = {
        "made": value("usher_offers_total", outcome="made"),
        "accepted": value("usher_offers_total", outcome="accepted"),
        "rejected": value("usher_offers_total", outcome="rejected"),
        "start_ok": value("usher_commands_total", command="StartConversation", code="OK"),
        "accept_ok": value("usher_commands_total", command="AcceptOffer", code="OK"),
        "start_timed": value("usher_command_seconds_count", command="StartConversation"),
        "agent_streams": value(streams, service="AgentService"),
    }
    await stubs.agents.SetStatus(
        agent_service_pb2.SetStatusRequest(status=agent_pb2.AGENT_STATUS_ONLINE),
        metadata=agent("ann"),
    )
    events = stubs.agents.StreamEvents(
        agent_service_pb2.StreamEventsRequest(), metadata=agent("ann")
    )

    await start(stubs, "+1")
    first = await next_offer(events)
    await stubs.agents.RejectOffer(
        agent_service_pb2.RejectOfferRequest(offer=first.name), metadata=agent("ann")
    )
    await start(stubs, "+2")
    second = await next_offer(events)
    await stubs.agents.AcceptOffer(
        agent_service_pb2.AcceptOfferRequest(offer=second.name), metadata=agent("ann")
    )
    with pytest.raises(grpc.aio.AioRpcError):  # gone: a refused command is counted by its code
        await stubs.agents.AcceptOffer(
            agent_service_pb2.AcceptOfferRequest(offer=second.name), metadata=agent("ann")
        )

    assert value(streams, service="AgentService") == before["agent_streams"] + 1
    assert value("usher_offers_total", outcome="made") >= before["made"] + 2
    assert value("usher_offers_total", outcome="rejected") == before["rejected"] + 1
    assert value("usher_offers_total", outcome="accepted") == before["accepted"] + 1
    assert value("usher_commands_total", command="StartConversation", code="OK") == (
        before["start_ok"] + 2
    )
    assert value("usher_commands_total", command="AcceptOffer", code="OK") == (
        before["accept_ok"] + 1
    )
    refused = [
        s
        for metric in prometheus_client.REGISTRY.collect()
        if metric.name == "usher_commands"
        for s in metric.samples
        if s.name == "usher_commands_total"
        and s.labels["command"] == "AcceptOffer"
        and s.labels["code"] != "OK"
        and s.value > 0
    ]
    assert refused
    assert value("usher_command_seconds_count", command="StartConversation") == (
        before["start_timed"] + 2
    )
    text = prometheus_client.generate_latest().decode()
    for name in ("usher_command_seconds_bucket", "usher_commands_total", "usher_offers_total"):
        assert name in text

    events.cancel()
    await until(lambda: value(streams, service="AgentService") == before["agent_streams"])


def test_offer_outcomes_come_from_offer_events() -> None:
    declined = ev.OfferDeclined(
        tenant=T, at=0.0, offer_id="o", conversation_id="c", reason=m.DeclineReason.EXPIRED
    )
    assert offer_outcome(declined) == "expired"
    assert offer_outcome(ev.SkillDefined(tenant=T, at=0.0, skill="s")) is None


async def test_queue_depth_counts_the_waiting_and_drops_to_zero(
    stubs: Stubs, pool: asyncpg.Pool
) -> None:
    depth = QueueDepth(pool)
    for n in range(3):  # ann is signed out: they wait
        await start(stubs, f"+8529000100{n}")
    await depth.refresh()
    assert value("usher_queue_waiting", tenant=T, queue="q") == 3
    assert value("usher_queue_longest_wait_seconds", tenant=T, queue="q") >= 0

    await pool.execute(
        "UPDATE conversations SET state = 'abandoned' WHERE tenant_id = $1", T
    )  # as if they left; the gauge reads the record tables
    await depth.refresh()
    assert value("usher_queue_waiting", tenant=T, queue="q") == 0
