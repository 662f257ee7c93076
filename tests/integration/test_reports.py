"""Reports' correctness: a known day scripted through the engine on a manual clock, over real
gRPC (the SDK), PostgreSQL and Redis, and every figure of every report checked against values
worked out by hand (docs/reports.md has the definitions; percentiles follow its rule: the rank
p × n placed linearly inside its histogram bin).

The tenant counts in Asia/Bangkok (UTC+7). Day 1 is Monday 2026-01-05, day 2 the Tuesday.
Queues: ``sales`` (ann; service level 20 s; offers expire after 30 s) and ``support`` (bob; 60 s;
offers last 5 min; a wait longer than 2 min is invited to leave a message). Ann is in the
``sales`` department. Times below are Bangkok times.

=====  =======================================================================================
conv   what happens (wait / first response / handle, in seconds)
=====  =======================================================================================
A      09:00:00 webchat, sales, tag vip; ann accepts 09:00:05 (wait 5), answers 09:00:10
       (first response exactly 5: the ≤5 s bucket), ends resolved 09:10:05 (handle 600)
B      10:00:00 line, sales; ann's offer expires 10:00:30 (a miss); she takes it 10:00:40
       (wait 40, outside 20 s), answers 10:01:40 (60), transfers it to bob 10:03:00, bob
       accepts 10:03:10 (ann handled 150), bob answers 10:03:25 (15), ends spam 10:13:10 (600)
C      11:00:00 webchat, support; offered to bob; the customer leaves 11:00:45 (abandoned
       after 45 s: within support's 60 s)
D      12:00:00 whatsapp, with the bot (no queue); the bot writes; the customer leaves 12:01:00
       (bot only)
E      13:00:00 whatsapp, with the bot; the bot writes; handed to support 13:00:30; bob accepts
       13:00:50 (20), answers 13:01:20 (30), ends ignored 13:05:00 (250)
F      14:00:00 line, support while bob is away; after 2 min it ends as a left message
G      15:00:00 webchat, sales, tag vip; ann accepts 15:00:10 (10), answers 15:00:12 (2),
       transfers it to the support queue 15:05:00 (handled 290); bob accepts 15:05:30 (30, a
       transfer in), answers 15:06:00 (30), ends resolved 15:20:00 (870)
H      23:59:50 line, sales; ann accepts 00:00:10 on day 2 (20: exactly the threshold),
       answers 00:00:15 (5), ends resolved 00:10:10 (600)
=====  =======================================================================================

Ratings (RateConversation, counted when given): A 5 at 09:20 (ann, sales, webchat, vip; given
twice, the second time a duplicate), B 2 at 10:20 (bob, sales, line), E 4 at 13:10 (bob,
support, whatsapp), H 3 at 00:20 on day 2 (ann, sales, line); H could not be rated at 00:05
(not ended), nor A again with another score.

Statuses: ann online 08:00, break 12:00–12:30, "meeting" (a custom away) 16:00–16:30, signs
out 18:00, back 23:50 and out again 00:30 on day 2. Bob online 08:00, away 14:00–14:30, signs
out 20:00.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from xml.etree import ElementTree
from zoneinfo import ZoneInfo

import asyncpg
import openpyxl
import pytest
import redis.asyncio as aioredis
from google.protobuf import duration_pb2, field_mask_pb2, timestamp_pb2
from google.rpc import error_details_pb2
from usher.client import (
    AdminClient,
    AgentClient,
    AlreadyExists,
    FailedPrecondition,
    GatewayClient,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ReportClient,
    UsherError,
)
from usher.v1 import admin_service_pb2 as admin_pb
from usher.v1 import agent_pb2, conversation_pb2, queue_pb2, tenant_pb2
from usher.v1 import agent_service_pb2 as agent_svc
from usher.v1 import conversation_service_pb2 as gw
from usher.v1 import record_service_pb2 as records_pb
from usher.v1 import report_service_pb2 as pb

from core.api.local import build_local_context
from core.api.server import Server, available_servicers
from core.routing import ManualClock
from core.runtime.shard import Shard
from core.store import credentials, rollups
from core.store.connect import Connections
from tests.integration.api_kit import GENEROUS

T = "acme"
OTHER = "globex"
BANGKOK = ZoneInfo("Asia/Bangkok")
DAY1 = dt.date(2026, 1, 5)
DAY2 = dt.date(2026, 1, 6)


def local(day: dt.date, hh: int, mm: int, ss: int = 0) -> float:
    return dt.datetime(day.year, day.month, day.day, hh, mm, ss, tzinfo=BANGKOK).timestamp()


def ts(day: dt.date, hh: int = 0, mm: int = 0) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromSeconds(int(local(day, hh, mm)))
    return out


def secs(value: float) -> duration_pb2.Duration:
    return duration_pb2.Duration(seconds=int(value))


@dataclass
class World:
    pool: asyncpg.Pool
    shard: Shard
    clock: ManualClock
    target: str
    admin: AdminClient
    gateway: GatewayClient
    ann: AgentClient
    bob: AgentClient
    reports: ReportClient
    conversations: dict[str, str]

    async def at(self, day: dt.date, hh: int, mm: int, ss: int = 0) -> None:
        """Move the clock to this Bangkok time and fire what falls due."""
        self.clock.set(local(day, hh, mm, ss))
        await self.shard.tick()

    async def offer(self, conversation: str) -> str:
        offer_id = await self.pool.fetchval(
            "SELECT offer_id FROM offers WHERE tenant_id = $1 AND conversation_id = $2"
            " AND outcome IS NULL",
            T,
            self.conversations[conversation].removeprefix("conversations/"),
        )
        assert offer_id is not None, conversation
        return f"offers/{offer_id}"

    async def transfer(self, conversation: str) -> str:
        transfer_id = await self.pool.fetchval(
            "SELECT transfer_id FROM transfers WHERE tenant_id = $1 AND conversation_id = $2"
            " AND outcome IS NULL",
            T,
            self.conversations[conversation].removeprefix("conversations/"),
        )
        assert transfer_id is not None, conversation
        return f"transfers/{transfer_id}"

    async def start(
        self,
        name: str,
        channel: str,
        queue: str = "",
        *,
        tags: tuple[str, ...] = (),
        with_bot: bool = False,
    ) -> None:
        started = await self.gateway.start_conversation(
            gw.StartConversationRequest(
                request_id=f"start-{name}",
                channel=channel,
                customer=conversation_pb2.CustomerIdentity(external_id=f"customer-{name}"),
                queue=f"queues/{queue}" if queue else "",
                tags=list(tags),
                with_bot=with_bot,
                first_message=gw.CustomerMessage(
                    text=f"hello from {name}", provider_message_id=f"m-{name}"
                ),
            )
        )
        self.conversations[name] = started.conversation.name

    async def say(self, agent: AgentClient, name: str) -> None:
        await agent.send_message(
            agent_svc.SendMessageRequest(
                request_id=f"say-{name}-{self.clock.now()}",
                conversation=self.conversations[name],
                text="Hello, how can I help?",
            )
        )

    async def end(self, agent: AgentClient, name: str, outcome: int) -> None:
        await agent.end_conversation(
            agent_svc.EndConversationRequest(
                conversation=self.conversations[name],
                outcome=outcome,  # type: ignore[arg-type]
            )
        )

    async def rate(self, name: str, score: int, comment: str = "") -> gw.RateConversationResponse:
        return await self.gateway.rate_conversation(
            gw.RateConversationRequest(
                conversation=self.conversations[name], score=score, comment=comment
            )
        )

    async def status(self, agent: AgentClient, status: int, custom: str = "") -> None:
        await agent.set_status(
            agent_svc.SetStatusRequest(status=status, custom_status=custom)  # type: ignore[arg-type]
        )


ONLINE = agent_pb2.AGENT_STATUS_ONLINE
AWAY = agent_pb2.AGENT_STATUS_AWAY
BREAK = agent_pb2.AGENT_STATUS_BREAK
OFFLINE = agent_pb2.AGENT_STATUS_OFFLINE
RESOLVED = conversation_pb2.OUTCOME_RESOLVED
SPAM = conversation_pb2.OUTCOME_SPAM
IGNORED = conversation_pb2.OUTCOME_IGNORED


async def _token(pool: asyncpg.Pool, tenant: str, role: str, agent: str | None = None) -> str:
    await pool.execute("INSERT INTO tenants (tenant_id) VALUES ($1) ON CONFLICT DO NOTHING", tenant)
    _, token = await credentials.create(pool, tenant, role, agent)
    return token


async def _configure(pool: asyncpg.Pool, target: str) -> None:
    async with AdminClient(target, await _token(pool, T, "admin")) as admin:
        await admin.update_tenant_settings(
            admin_pb.UpdateTenantSettingsRequest(
                settings=tenant_pb2.TenantSettings(
                    time_zone="Asia/Bangkok",
                    custom_statuses=[
                        tenant_pb2.CustomStatus(name="meeting", base=agent_pb2.AGENT_STATUS_AWAY)
                    ],
                ),
                update_mask=field_mask_pb2.FieldMask(paths=["time_zone", "custom_statuses"]),
            )
        )
        await admin.create_department(
            admin_pb.CreateDepartmentRequest(
                department_id="sales", department=tenant_pb2.Department(display_name="Sales")
            )
        )
        for agent_id, name, departments in (
            ("ann", "Ann", ["departments/sales"]),
            ("bob", "Bob", []),
        ):
            await admin.create_agent(
                admin_pb.CreateAgentRequest(
                    agent_id=agent_id,
                    agent=agent_pb2.Agent(display_name=name, capacity=3, departments=departments),
                )
            )
        await admin.create_queue(
            admin_pb.CreateQueueRequest(
                queue_id="sales",
                queue=queue_pb2.Queue(
                    display_name="Sales",
                    designated_agents=["agents/ann"],
                    offer_timeout=secs(30),
                    service_level_threshold=secs(20),
                ),
            )
        )
        await admin.create_queue(
            admin_pb.CreateQueueRequest(
                queue_id="support",
                queue=queue_pb2.Queue(
                    display_name="Support",
                    designated_agents=["agents/bob"],
                    offer_timeout=secs(300),
                    max_wait=secs(120),
                    service_level_threshold=secs(60),
                ),
            )
        )
    # another tenant, whose ids must not be accepted in acme's filters
    async with AdminClient(target, await _token(pool, OTHER, "admin")) as other:
        await other.create_queue(
            admin_pb.CreateQueueRequest(queue_id="theirs", queue=queue_pb2.Queue())
        )


async def _script(w: World) -> None:
    """The day in the module docstring, in order."""
    await w.at(DAY1, 8, 0)
    await w.status(w.ann, ONLINE)
    await w.status(w.bob, ONLINE)
    # A
    await w.at(DAY1, 9, 0)
    await w.start("A", "webchat", "sales", tags=("vip",))
    await w.at(DAY1, 9, 0, 5)
    await w.ann.accept_offer(agent_svc.AcceptOfferRequest(offer=await w.offer("A")))
    await w.at(DAY1, 9, 0, 10)
    await w.say(w.ann, "A")
    await w.at(DAY1, 9, 10, 5)
    await w.end(w.ann, "A", RESOLVED)
    await w.at(DAY1, 9, 20)
    first = await w.rate("A", 5, "great")
    assert (first.duplicate, first.rating.score, first.rating.agent) == (False, 5, "agents/ann")
    again = await w.rate("A", 5, "great")
    assert (again.duplicate, again.rating) == (True, first.rating)
    with pytest.raises(AlreadyExists):
        await w.rate("A", 1)
    # B
    await w.at(DAY1, 10, 0)
    await w.start("B", "line", "sales")
    await w.at(DAY1, 10, 0, 30)  # ann's offer expires: a miss
    await w.at(DAY1, 10, 0, 40)
    await w.ann.take_conversation(
        agent_svc.TakeConversationRequest(conversation=w.conversations["B"])
    )
    await w.at(DAY1, 10, 1, 40)
    await w.say(w.ann, "B")
    await w.at(DAY1, 10, 3, 0)
    await w.ann.request_transfer(
        agent_svc.RequestTransferRequest(conversation=w.conversations["B"], agent="agents/bob")
    )
    await w.at(DAY1, 10, 3, 10)
    await w.bob.answer_transfer(
        agent_svc.AnswerTransferRequest(transfer=await w.transfer("B"), accept=True)
    )
    await w.at(DAY1, 10, 3, 25)
    await w.say(w.bob, "B")
    await w.at(DAY1, 10, 13, 10)
    await w.end(w.bob, "B", SPAM)
    await w.at(DAY1, 10, 20)
    await w.rate("B", 2)
    # C
    await w.at(DAY1, 11, 0)
    await w.start("C", "webchat", "support")
    await w.at(DAY1, 11, 0, 45)
    await w.gateway.leave_conversation(
        gw.LeaveConversationRequest(conversation=w.conversations["C"])
    )
    # D, and ann's break
    await w.at(DAY1, 12, 0)
    await w.status(w.ann, BREAK)
    await w.start("D", "whatsapp", with_bot=True)
    await w.gateway.post_bot_message(
        gw.PostBotMessageRequest(
            request_id="bot-D", conversation=w.conversations["D"], text="Hi, I am a bot"
        )
    )
    await w.at(DAY1, 12, 1)
    await w.gateway.leave_conversation(
        gw.LeaveConversationRequest(conversation=w.conversations["D"])
    )
    await w.at(DAY1, 12, 30)
    await w.status(w.ann, ONLINE)
    # E
    await w.at(DAY1, 13, 0)
    await w.start("E", "whatsapp", with_bot=True)
    await w.gateway.post_bot_message(
        gw.PostBotMessageRequest(
            request_id="bot-E", conversation=w.conversations["E"], text="Let me find someone"
        )
    )
    await w.at(DAY1, 13, 0, 30)
    await w.gateway.request_agent(
        gw.RequestAgentRequest(conversation=w.conversations["E"], queue="queues/support")
    )
    await w.at(DAY1, 13, 0, 50)
    await w.bob.accept_offer(agent_svc.AcceptOfferRequest(offer=await w.offer("E")))
    await w.at(DAY1, 13, 1, 20)
    await w.say(w.bob, "E")
    await w.at(DAY1, 13, 5, 0)
    await w.end(w.bob, "E", IGNORED)
    await w.at(DAY1, 13, 10)
    await w.rate("E", 4)
    # F, while bob is away
    await w.at(DAY1, 14, 0)
    await w.status(w.bob, AWAY)
    await w.start("F", "line", "support")
    await w.at(DAY1, 14, 2)  # waited 2 min: invited to leave a message
    await w.at(DAY1, 14, 30)
    await w.status(w.bob, ONLINE)
    # G
    await w.at(DAY1, 15, 0)
    await w.start("G", "webchat", "sales", tags=("vip",))
    await w.at(DAY1, 15, 0, 10)
    await w.ann.accept_offer(agent_svc.AcceptOfferRequest(offer=await w.offer("G")))
    await w.at(DAY1, 15, 0, 12)
    await w.say(w.ann, "G")
    await w.at(DAY1, 15, 5, 0)
    await w.ann.request_transfer(
        agent_svc.RequestTransferRequest(conversation=w.conversations["G"], queue="queues/support")
    )
    await w.at(DAY1, 15, 5, 30)
    await w.bob.accept_offer(agent_svc.AcceptOfferRequest(offer=await w.offer("G")))
    await w.at(DAY1, 15, 6, 0)
    await w.say(w.bob, "G")
    await w.at(DAY1, 15, 20, 0)
    await w.end(w.bob, "G", RESOLVED)
    # statuses
    await w.at(DAY1, 16, 0)
    await w.status(w.ann, AWAY, "meeting")
    await w.at(DAY1, 16, 30)
    await w.status(w.ann, ONLINE)
    await w.at(DAY1, 18, 0)
    await w.status(w.ann, OFFLINE)
    await w.at(DAY1, 20, 0)
    await w.status(w.bob, OFFLINE)
    await w.at(DAY1, 23, 50)
    await w.status(w.ann, ONLINE)
    # H, across midnight
    await w.at(DAY1, 23, 59, 50)
    await w.start("H", "line", "sales")
    await w.at(DAY2, 0, 0, 10)
    await w.ann.accept_offer(agent_svc.AcceptOfferRequest(offer=await w.offer("H")))
    await w.at(DAY2, 0, 0, 15)
    await w.say(w.ann, "H")
    await w.at(DAY2, 0, 5)
    with pytest.raises(FailedPrecondition):
        await w.rate("H", 3)  # not ended yet
    await w.at(DAY2, 0, 10, 10)
    await w.end(w.ann, "H", RESOLVED)
    await w.at(DAY2, 0, 20)
    await w.rate("H", 3)
    with pytest.raises(NotFound):
        await w.gateway.rate_conversation(
            gw.RateConversationRequest(conversation="conversations/nobody", score=3)
        )
    await w.at(DAY2, 0, 30)
    await w.status(w.ann, OFFLINE)


@pytest.fixture
async def world(pool: asyncpg.Pool, redis_url: str) -> AsyncIterator[World]:
    client = aioredis.Redis.from_url(redis_url)
    clock = ManualClock(local(DAY1, 7, 0))
    ctx, shard = build_local_context(Connections(pool, client, "test", "test"), clock=clock)
    # the shard's timers are not started: the script fires them itself (World.at)
    server = Server(ctx, available_servicers(ctx), host="127.0.0.1", port=0, rate_limit=GENEROUS)
    await server.start()
    target = f"127.0.0.1:{server.port}"
    try:
        await _configure(pool, target)
        async with (
            AdminClient(target, await _token(pool, T, "admin")) as admin,
            GatewayClient(target, await _token(pool, T, "gateway")) as gateway,
            AgentClient(target, await _token(pool, T, "agent", "ann")) as ann,
            AgentClient(target, await _token(pool, T, "agent", "bob")) as bob,
            ReportClient(target, await _token(pool, T, "supervisor")) as reports,
        ):
            w = World(pool, shard, clock, target, admin, gateway, ann, bob, reports, {})
            await _script(w)
            await shard.flush_reports(every=0.0)  # the facts it held (a second's worth, live)
            yield w
    finally:
        await server.stop(grace=1.0)
        await shard.stop()
        await client.aclose()


# --- reading figures ---------------------------------------------------------------------------


def _seconds(d: duration_pb2.Duration, present: bool) -> float | None:
    return round(d.seconds + d.nanos / 1e9, 4) if present else None


def dist(message: pb.DurationFigures) -> tuple[float | None, ...]:
    return (
        message.count,
        _seconds(message.mean, message.HasField("mean")),
        _seconds(message.p50, message.HasField("p50")),
        _seconds(message.p90, message.HasField("p90")),
        _seconds(message.p95, message.HasField("p95")),
    )


def flat(message: Any) -> dict[str, Any]:
    """A figures message as plain values: ints, the service level (4 places), the buckets,
    and each duration as (count, mean, p50, p90, p95) in seconds."""
    out: dict[str, Any] = {}
    for field in message.DESCRIPTOR.fields:
        value = getattr(message, field.name)
        if isinstance(value, pb.DurationFigures):
            out[field.name] = dist(value)
        elif isinstance(value, pb.ResponseBuckets):
            out[field.name] = tuple(getattr(value, b.name) for b in value.DESCRIPTOR.fields)
        elif isinstance(value, pb.RatingFigures):
            average = round(value.average, 4) if value.HasField("average") else None
            scores = (value.score_1, value.score_2, value.score_3, value.score_4, value.score_5)
            out[field.name] = (value.count, average, *scores)
        elif field.name == "service_level":
            out[field.name] = round(value, 4) if message.HasField("service_level") else None
        else:
            out[field.name] = value
    return out


NONE = (0, None, None, None, None)
UNRATED = (0, None, 0, 0, 0, 0, 0)


def rated(*scores: int) -> tuple[Any, ...]:
    """Expected RatingFigures of these scores."""
    average = round(sum(scores) / len(scores), 4) if scores else None
    return (len(scores), average, *(scores.count(s) for s in range(1, 6)))


def conv(**given: Any) -> dict[str, Any]:
    """Expected ConversationFigures: zero unless given."""
    out: dict[str, Any] = {f.name: 0 for f in pb.ConversationFigures.DESCRIPTOR.fields}
    out.update(
        service_level=None,
        first_response_buckets=(0,) * 6,
        first_response=NONE,
        wait=NONE,
        handle=NONE,
        ratings=UNRATED,
    )
    out.update(given)
    return out


def agent(**given: Any) -> dict[str, Any]:
    out: dict[str, Any] = {f.name: 0 for f in pb.AgentFigures.DESCRIPTOR.fields}
    out.update(
        first_response_buckets=(0,) * 6,
        first_response=NONE,
        handle=NONE,
        wait=NONE,
        ratings=UNRATED,
    )
    out.update(given)
    return out


def query(
    start: dt.date,
    end: dt.date,
    group_by: int = pb.REPORT_GROUPING_DAY,
    **filter_: Any,
) -> pb.ReportQuery:
    return pb.ReportQuery(
        start_time=ts(start),
        end_time=ts(end),
        group_by=group_by,  # type: ignore[arg-type]
        filter=pb.ReportFilter(**filter_),
    )


DAY3 = DAY2 + dt.timedelta(days=1)

# --- expected figures, worked out from the module docstring ----------------------------------

# Overview, day 1. Waits answered: A 5, B 40, E 20, G 10 (sales) and 30 (support). Percentiles:
# bins (3,5] (7,10] (15,20] (20,30] (30,45] hold one each; p50 is rank 2.5 → (15,20] with 2
# below → 15 + 5 × 0.5 = 17.5; p90 rank 4.5 → (30,45] → 30 + 15 × 0.5 = 37.5; p95 rank 4.75 →
# 30 + 15 × 0.75 = 41.25. First responses A 5, B 60 (ann) and 15 (bob), E 30, G 2 (ann) and 30
# (bob): p50 rank 3 → (10,15] → 15; p90 rank 5.4 → (45,60] → 45 + 15 × 0.4 = 51; p95 → 55.5.
# Handle times A 600, B 150 and 600, E 250, G 290 and 870: p50 rank 3 → (240,300] (2 there, 1
# below) → 300; p90 rank 5.4 → (600,900] → 600 + 300 × 0.4 = 720; p95 → 810.
OVERVIEW_DAY1 = conv(
    started=8,
    bot_started=2,
    bot_only=1,
    bot_handed_off=1,
    handed_to_agents=7,
    queued=8,
    answered=5,
    answered_within_threshold=4,  # not B (40 > 20)
    abandoned=1,
    abandoned_within_threshold=1,  # C: 45 <= 60
    left_messages=1,
    transfers=2,
    ended=6,  # A B D E F G (C was abandoned, H ends on day 2)
    resolved=2,
    spam=1,
    ignored=1,
    service_level=round(4 / 6, 4),
    first_response_buckets=(2, 1, 2, 1, 0, 0),
    first_response=(6, round(142 / 6, 4), 15.0, 51.0, 55.5),
    wait=(5, 21.0, 17.5, 37.5, 41.25),
    handle=(6, 460.0, 300.0, 720.0, 810.0),
    customer_messages=8,
    agent_messages=6,
    bot_messages=2,
    ratings=rated(5, 2, 4),
)
# Day 2: H alone. Wait 20 in (15,20]: 15 + 5p; first response 5 in (3,5]: 3 + 2p; handle 600 in
# (450,600]: 450 + 150p (p = 0.5, 0.9, 0.95).
OVERVIEW_DAY2 = conv(
    answered=1,
    answered_within_threshold=1,  # exactly 20 s: within
    ended=1,
    resolved=1,
    service_level=1.0,
    first_response_buckets=(1, 0, 0, 0, 0, 0),
    first_response=(1, 5.0, 4.0, 4.8, 4.9),
    wait=(1, 20.0, 17.5, 19.5, 19.75),
    handle=(1, 600.0, 525.0, 585.0, 592.5),
    agent_messages=1,
    ratings=rated(3),
)
# Both days. Waits 5 10 20 20 30 40: p50 rank 3 → (15,20] (2 there, 2 below) → 17.5; p90 rank
# 5.4 → (30,45] → 36; p95 → 40.5. Responses 2 5 5 15 30 30 60: p50 rank 3.5 → (10,15] → 12.5;
# p90 rank 6.3 → (45,60] → 49.5; p95 → 54.75. Handle 150 250 290 600 600 600 870: p50 rank 3.5
# → (450,600] (3 there, 3 below) → 475; p90 rank 6.3 → (600,900] → 690; p95 → 795.
OVERVIEW_TOTAL = conv(
    started=8,
    bot_started=2,
    bot_only=1,
    bot_handed_off=1,
    handed_to_agents=7,
    queued=8,
    answered=6,
    answered_within_threshold=5,
    abandoned=1,
    abandoned_within_threshold=1,
    left_messages=1,
    transfers=2,
    ended=7,
    resolved=3,
    spam=1,
    ignored=1,
    service_level=round(5 / 7, 4),
    first_response_buckets=(3, 1, 2, 1, 0, 0),
    first_response=(7, 21.0, 12.5, 49.5, 54.75),
    wait=(6, round(125 / 6, 4), 17.5, 36.0, 40.5),
    handle=(7, 480.0, 475.0, 690.0, 795.0),
    customer_messages=8,
    agent_messages=7,
    bot_messages=2,
    ratings=rated(5, 2, 4, 3),
)

# Agents, day 1. Ann: responses 2 5 60 → p50 rank 1.5 → (3,5] → 4; p90 rank 2.7 → (45,60] →
# 55.5; p95 → 57.75. Handle 150 290 600 → (240,300] → 270; (450,600] → 555, 577.5. Waits she
# answered 5 10 40 → (7,10] → 8.5; (30,45] → 40.5, 42.75.
ANN_DAY1 = agent(
    assigned=3,
    handled=3,
    messages_sent=3,
    first_response_buckets=(2, 0, 0, 1, 0, 0),
    first_response=(3, round(67 / 3, 4), 4.0, 55.5, 57.75),
    handle=(3, round(1040 / 3, 4), 270.0, 555.0, 577.5),
    transfers_out=2,
    offers=4,  # A, B, G and H (offered at 23:59:50)
    offers_missed=1,
    answered=3,
    wait=(3, round(55 / 3, 4), 8.5, 40.5, 42.75),
    resolved=1,
    ratings=rated(5),
)
ANN_DAY2 = agent(
    assigned=1,
    handled=1,
    messages_sent=1,
    first_response_buckets=(1, 0, 0, 0, 0, 0),
    first_response=(1, 5.0, 4.0, 4.8, 4.9),
    handle=(1, 600.0, 525.0, 585.0, 592.5),
    answered=1,
    wait=(1, 20.0, 17.5, 19.5, 19.75),
    resolved=1,
    ratings=rated(3),
)
# Bob, day 1: responses 15 30 30 → p50 rank 1.5 → (20,30] (2 there, 1 below) → 22.5; p90 2.7
# → 28.5; p95 → 29.25. Handle 250 600 870 → (450,600] → 525; (600,900] → 810, 855. Waits 20 30
# → p50 rank 1 → (15,20] → 20; p90 1.8 → (20,30] → 28; p95 → 29.
BOB_DAY1 = agent(
    assigned=3,
    handled=3,
    messages_sent=3,
    first_response_buckets=(0, 1, 2, 0, 0, 0),
    first_response=(3, 25.0, 22.5, 28.5, 29.25),
    handle=(3, round(1720 / 3, 4), 525.0, 810.0, 855.0),
    transfers_in=2,  # B from ann, G through the support queue
    offers=3,  # C, E, G
    answered=2,
    wait=(2, 25.0, 20.0, 28.0, 29.0),
    resolved=1,
    spam=1,
    ignored=1,
    ratings=rated(2, 4),
)

# Queues, day 1. Sales: responses 2 5 15 60 → p50 rank 2 → (3,5] → 5; p90 3.6 → (45,60] → 54;
# p95 → 57. Waits 5 10 40 as ann's. Handle 150 290 600 600 → p50 rank 2 → (240,300] → 300;
# p90 3.6 → (450,600] (2 there) → 570; p95 → 585. Support: responses 30 30 → (20,30] → 25,
# 29, 29.5; waits 20 30 as bob's; handle 250 870 → (240,300] → 300; (600,900] → 840, 870.
SALES_DAY1 = conv(
    started=4,
    handed_to_agents=4,
    queued=4,
    answered=3,
    answered_within_threshold=2,
    transfers=2,
    ended=2,
    resolved=1,
    spam=1,
    service_level=round(2 / 3, 4),
    first_response_buckets=(2, 1, 0, 1, 0, 0),
    first_response=(4, 20.5, 5.0, 54.0, 57.0),
    wait=(3, round(55 / 3, 4), 8.5, 40.5, 42.75),
    handle=(4, 410.0, 300.0, 570.0, 585.0),
    customer_messages=4,
    agent_messages=4,
    ratings=rated(5, 2),
)
SUPPORT_DAY1 = conv(
    started=2,
    bot_handed_off=1,
    handed_to_agents=3,
    queued=4,
    answered=2,
    answered_within_threshold=2,
    abandoned=1,
    abandoned_within_threshold=1,
    left_messages=1,
    ended=3,
    resolved=1,
    ignored=1,
    service_level=round(2 / 3, 4),
    first_response_buckets=(0, 0, 2, 0, 0, 0),
    first_response=(2, 30.0, 25.0, 29.0, 29.5),
    wait=(2, 25.0, 20.0, 28.0, 29.0),
    handle=(2, 560.0, 300.0, 840.0, 870.0),
    customer_messages=2,
    agent_messages=2,
    ratings=rated(4),
)
NO_QUEUE_DAY1 = conv(
    started=2, bot_started=2, bot_only=1, ended=1, customer_messages=2, bot_messages=2
)
SALES_DAY2 = OVERVIEW_DAY2

# Channels, day 1. Webchat (A C G): responses 2 5 30 → (3,5] → 4; (20,30] → 27, 28.5; waits
# 5 10 30 → (7,10] → 8.5; (20,30] → 27, 28.5; handle 290 600 870 → (450,600] → 525; (600,900]
# → 810, 855. Line (B F H): responses 15 60 → (10,15] → 15; (45,60] → 57, 58.5; wait 40 →
# 30 + 15p; handle 150 600 → (120,180] → 180; (450,600] → 570, 585. Whatsapp (D E): response
# 30 → 20 + 10p; wait 20 → 15 + 5p; handle 250 → 240 + 60p.
WEBCHAT_DAY1 = conv(
    started=3,
    handed_to_agents=3,
    queued=4,
    answered=3,
    answered_within_threshold=3,
    abandoned=1,
    abandoned_within_threshold=1,
    transfers=1,
    ended=2,
    resolved=2,
    service_level=0.75,
    first_response_buckets=(2, 0, 1, 0, 0, 0),
    first_response=(3, round(37 / 3, 4), 4.0, 27.0, 28.5),
    wait=(3, 15.0, 8.5, 27.0, 28.5),
    handle=(3, round(1760 / 3, 4), 525.0, 810.0, 855.0),
    customer_messages=3,
    agent_messages=3,
    ratings=rated(5),
)
LINE_DAY1 = conv(
    started=3,
    handed_to_agents=3,
    queued=3,
    answered=1,
    left_messages=1,
    transfers=1,
    ended=2,
    spam=1,
    service_level=0.0,
    first_response_buckets=(0, 1, 0, 1, 0, 0),
    first_response=(2, 37.5, 15.0, 57.0, 58.5),
    wait=(1, 40.0, 37.5, 43.5, 44.25),
    handle=(2, 375.0, 180.0, 570.0, 585.0),
    customer_messages=3,
    agent_messages=2,
    ratings=rated(2),
)
WHATSAPP_DAY1 = conv(
    started=2,
    bot_started=2,
    bot_only=1,
    bot_handed_off=1,
    handed_to_agents=1,
    queued=1,
    answered=1,
    answered_within_threshold=1,
    ended=2,
    ignored=1,
    service_level=1.0,
    first_response_buckets=(0, 0, 1, 0, 0, 0),
    first_response=(1, 30.0, 25.0, 29.0, 29.5),
    wait=(1, 20.0, 17.5, 19.5, 19.75),
    handle=(1, 250.0, 270.0, 294.0, 297.0),
    customer_messages=2,
    agent_messages=1,
    bot_messages=2,
    ratings=rated(4),
)


def at(day: dt.date, hh: int, mm: int = 0) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hh, mm, tzinfo=BANGKOK)


def when(t: timestamp_pb2.Timestamp, present: bool) -> dt.datetime | None:
    return t.ToDatetime(tzinfo=dt.UTC) if present else None


def attendance(a: pb.Attendance) -> dict[str, Any]:
    return {
        "first_sign_in": when(a.first_sign_in_time, a.HasField("first_sign_in_time")),
        "last_online": when(a.last_online_time, a.HasField("last_online_time")),
        "online": a.online.seconds,
        "away": a.away.seconds,
        "break": a.break_time.seconds,
        "custom": {k: v.seconds for k, v in a.custom_statuses.items()},
    }


# --- the tests ---------------------------------------------------------------------------------


async def test_overview_by_day_and_over_the_range(world: World) -> None:
    report = await world.reports.get_overview_report(
        pb.GetOverviewReportRequest(query=query(DAY1, DAY3))
    )
    assert report.range.time_zone == "Asia/Bangkok"
    assert [r.period.label for r in report.rows] == ["2026-01-05", "2026-01-06"]
    assert report.rows[0].period.start_time.ToDatetime(tzinfo=dt.UTC) == at(DAY1, 0)
    assert report.rows[0].period.end_time.ToDatetime(tzinfo=dt.UTC) == at(DAY2, 0)
    assert flat(report.rows[0].figures) == OVERVIEW_DAY1
    assert flat(report.rows[1].figures) == OVERVIEW_DAY2
    assert flat(report.total) == OVERVIEW_TOTAL


async def test_weeks_months_and_hours_are_sums_of_the_same_rollups(world: World) -> None:
    for group_by, label in (
        (pb.REPORT_GROUPING_WEEK, "2026-W02"),
        (pb.REPORT_GROUPING_MONTH, "2026-01"),
    ):
        report = await world.reports.get_overview_report(
            pb.GetOverviewReportRequest(query=query(DAY1, DAY3, group_by))
        )
        assert [r.period.label for r in report.rows] == [label]
        assert flat(report.rows[0].figures) == OVERVIEW_TOTAL
    hours = await world.reports.get_overview_report(
        pb.GetOverviewReportRequest(
            query=pb.ReportQuery(
                start_time=ts(DAY1, 23),
                end_time=ts(DAY2, 1),
                group_by=pb.REPORT_GROUPING_HOUR,
            )
        )
    )
    assert [r.period.label for r in hours.rows] == ["2026-01-05 23:00", "2026-01-06 00:00"]
    assert hours.rows[1].period.start_time.ToDatetime(tzinfo=dt.UTC) == at(DAY2, 0)
    # 23:00: H started, was handed and queued, and its customer wrote; ann signed in (no fact)
    assert flat(hours.rows[0].figures) == conv(
        started=1, handed_to_agents=1, queued=1, customer_messages=1
    )
    assert flat(hours.rows[1].figures) == OVERVIEW_DAY2
    a_day = await world.reports.get_overview_report(
        pb.GetOverviewReportRequest(
            query=pb.ReportQuery(
                start_time=ts(DAY1), end_time=ts(DAY2), group_by=pb.REPORT_GROUPING_HOUR
            )
        )
    )
    assert len(a_day.rows) == 24  # every hour has a row, zeros included
    assert flat(a_day.total) == OVERVIEW_DAY1


async def test_agents_with_attendance_and_logins(world: World) -> None:
    report = await world.reports.get_agent_report(pb.GetAgentReportRequest(query=query(DAY1, DAY3)))
    rows = {(r.period.label, r.agent): r for r in report.rows}
    assert set(rows) == {
        ("2026-01-05", "agents/ann"),
        ("2026-01-05", "agents/bob"),
        ("2026-01-06", "agents/ann"),
    }
    assert rows["2026-01-05", "agents/ann"].display_name == "Ann"
    assert flat(rows["2026-01-05", "agents/ann"].figures) == ANN_DAY1
    assert flat(rows["2026-01-06", "agents/ann"].figures) == ANN_DAY2
    assert flat(rows["2026-01-05", "agents/bob"].figures) == BOB_DAY1
    # ann: online 08:00-12:00, 12:30-16:00, 16:30-18:00 and 23:50-24:00 (33,000 s); a break
    # and a meeting of half an hour each; still on at midnight
    assert attendance(rows["2026-01-05", "agents/ann"].attendance) == {
        "first_sign_in": at(DAY1, 8),
        "last_online": at(DAY2, 0),
        "online": 33_000,
        "away": 1_800,
        "break": 1_800,
        "custom": {"meeting": 1_800},
    }
    # day 2: on since the day before (no sign-in that day) until 00:30
    assert attendance(rows["2026-01-06", "agents/ann"].attendance) == {
        "first_sign_in": None,
        "last_online": at(DAY2, 0, 30),
        "online": 1_800,
        "away": 0,
        "break": 0,
        "custom": {},
    }
    # bob: 08:00-14:00 and 14:30-20:00 online (41,400 s), away in between
    assert attendance(rows["2026-01-05", "agents/bob"].attendance) == {
        "first_sign_in": at(DAY1, 8),
        "last_online": at(DAY1, 20),
        "online": 41_400,
        "away": 1_800,
        "break": 0,
        "custom": {},
    }
    totals = {r.agent: r for r in report.totals}
    assert totals["agents/ann"].figures.handled == 4
    assert attendance(totals["agents/ann"].attendance)["online"] == 34_800
    logins = await world.reports.list_agent_logins(
        pb.ListAgentLoginsRequest(start_time=ts(DAY1), end_time=ts(DAY3), page_size=2)
    )
    more = await world.reports.list_agent_logins(
        pb.ListAgentLoginsRequest(
            start_time=ts(DAY1),
            end_time=ts(DAY3),
            page_size=2,
            page_token=logins.next_page_token,
        )
    )
    assert not more.next_page_token
    seen = [
        (
            x.agent,
            x.sign_in_time.ToDatetime(tzinfo=dt.UTC),
            when(x.sign_out_time, x.HasField("sign_out_time")),
            x.client_address,
        )
        for x in [*logins.logins, *more.logins]
    ]
    assert seen == [
        ("agents/ann", at(DAY1, 8), at(DAY1, 18), "127.0.0.1"),
        ("agents/bob", at(DAY1, 8), at(DAY1, 20), "127.0.0.1"),
        ("agents/ann", at(DAY1, 23, 50), at(DAY2, 0, 30), "127.0.0.1"),
    ]


async def test_queues_and_channels(world: World) -> None:
    queues = await world.reports.get_queue_report(pb.GetQueueReportRequest(query=query(DAY1, DAY3)))
    rows = {(r.period.label, r.queue): r for r in queues.rows}
    assert set(rows) == {
        ("2026-01-05", ""),
        ("2026-01-05", "queues/sales"),
        ("2026-01-05", "queues/support"),
        ("2026-01-06", "queues/sales"),
    }
    assert rows["2026-01-05", "queues/sales"].display_name == "Sales"
    assert flat(rows["2026-01-05", "queues/sales"].figures) == SALES_DAY1
    assert flat(rows["2026-01-05", "queues/support"].figures) == SUPPORT_DAY1
    assert flat(rows["2026-01-05", ""].figures) == NO_QUEUE_DAY1
    assert flat(rows["2026-01-06", "queues/sales"].figures) == SALES_DAY2
    channels = await world.reports.get_channel_report(
        pb.GetChannelReportRequest(query=query(DAY1, DAY2))
    )
    by_channel = {r.channel: r for r in channels.rows}
    assert set(by_channel) == {"webchat", "line", "whatsapp"}
    assert flat(by_channel["webchat"].figures) == WEBCHAT_DAY1
    assert flat(by_channel["line"].figures) == LINE_DAY1
    assert flat(by_channel["whatsapp"].figures) == WHATSAPP_DAY1


async def test_filters(world: World) -> None:
    vip = await world.reports.get_overview_report(
        pb.GetOverviewReportRequest(query=query(DAY1, DAY2, tag="vip"))
    )
    # A and G: G's second wait (support, 30 s) counts too; responses 5, 2 (ann) and 30 (bob)
    assert flat(vip.total) == conv(
        started=2,
        handed_to_agents=2,
        queued=3,
        answered=3,
        answered_within_threshold=3,
        transfers=1,
        ended=2,
        resolved=2,
        service_level=1.0,
        first_response_buckets=(2, 0, 1, 0, 0, 0),
        first_response=(3, round(37 / 3, 4), 4.0, 27.0, 28.5),
        wait=(3, 15.0, 8.5, 27.0, 28.5),
        handle=(3, round(1760 / 3, 4), 525.0, 810.0, 855.0),
        customer_messages=2,
        agent_messages=3,
        ratings=rated(5),  # A's, given while it carried the tag
    )
    support = await world.reports.get_overview_report(
        pb.GetOverviewReportRequest(query=query(DAY1, DAY2, queues=["queues/support"]))
    )
    assert flat(support.total) == SUPPORT_DAY1
    line = await world.reports.get_overview_report(
        pb.GetOverviewReportRequest(query=query(DAY1, DAY2, channels=["line"]))
    )
    assert flat(line.total) == LINE_DAY1
    sales_team = await world.reports.get_agent_report(
        pb.GetAgentReportRequest(query=query(DAY1, DAY2, department="departments/sales"))
    )
    assert [(r.agent, flat(r.figures)) for r in sales_team.rows] == [("agents/ann", ANN_DAY1)]
    bob_in_queues = await world.reports.get_queue_report(
        pb.GetQueueReportRequest(query=query(DAY1, DAY2, agents=["agents/bob"]))
    )
    answered = {r.queue: r.figures.answered for r in bob_in_queues.totals}
    assert answered == {"queues/sales": 0, "queues/support": 2}


PNG = b"\x89PNG\r\n\x1a\n"
OVERVIEW, AGENTS, QUEUES = pb.REPORT_KIND_OVERVIEW, pb.REPORT_KIND_AGENTS, pb.REPORT_KIND_QUEUES
AS_PNG, AS_SVG = pb.IMAGE_FORMAT_PNG, pb.IMAGE_FORMAT_SVG


async def chart(w: World, kind: int, which: int, image: int, **q: Any) -> pb.GetReportChartResponse:
    return await w.reports.get_report_chart(
        pb.GetReportChartRequest(
            kind=kind,  # type: ignore[arg-type]
            query=query(DAY1, DAY3, **q),
            chart=which,  # type: ignore[arg-type]
            format=image,  # type: ignore[arg-type]
        )
    )


def plotted(response: pb.GetReportChartResponse) -> dict[str, list[float]]:
    return {s.name: list(s.values) for s in response.series}


async def test_charts_plot_the_reports_figures(world: World) -> None:
    volume = await chart(world, OVERVIEW, pb.REPORT_CHART_VOLUME, AS_PNG)
    assert volume.content_type == "image/png" and volume.image.startswith(PNG)
    assert list(volume.x_labels) == ["2026-01-05", "2026-01-06"]
    assert plotted(volume) == {"started": [8, 0], "answered": [5, 1], "abandoned": [1, 0]}
    outcomes = await chart(world, OVERVIEW, pb.REPORT_CHART_OUTCOMES, AS_SVG)
    assert outcomes.content_type == "image/svg+xml"
    svg = ElementTree.fromstring(outcomes.image)
    assert svg.tag == "{http://www.w3.org/2000/svg}svg"
    assert plotted(outcomes) == {
        "resolved": [2, 1],
        "spam": [1, 0],
        "ignored": [1, 0],
        "left a message": [1, 0],
        "abandoned": [1, 0],
    }
    again = await chart(world, OVERVIEW, pb.REPORT_CHART_OUTCOMES, AS_SVG)
    assert again.image == outcomes.image  # the same chart, the same SVG
    response = await chart(world, OVERVIEW, pb.REPORT_CHART_FIRST_RESPONSE, AS_PNG)
    assert list(response.x_labels) == ["≤5 s", "5–15 s", "15–30 s", "30–60 s", "60–180 s", ">180 s"]
    assert plotted(response) == {"first responses": [3, 1, 2, 1, 0, 0]}
    per_queue = await chart(world, QUEUES, pb.REPORT_CHART_OUTCOMES, AS_PNG)
    assert list(per_queue.x_labels) == ["(none)", "Sales", "Support"]
    assert plotted(per_queue)["resolved"] == [0, 2, 1]  # A and H; G
    per_agent = await chart(world, AGENTS, pb.REPORT_CHART_VOLUME, AS_PNG)
    assert plotted(per_agent) == {
        "assigned": [6, 1],
        "handled": [6, 1],
        "offers missed": [1, 0],
    }
    with pytest.raises(InvalidArgument) as refused:
        await world.reports.get_report_chart(
            pb.GetReportChartRequest(kind=OVERVIEW, query=query(DAY3, DAY1))
        )
    assert _violations(refused.value) == {"chart", "query.end_time"}


def _violations(error: UsherError) -> set[str]:
    bad = error.detail(error_details_pb2.BadRequest)
    assert bad is not None
    return {v.field for v in bad.field_violations}


BAD_REQUESTS: list[tuple[pb.ReportQuery, set[str]]] = [
    (query(DAY2, DAY1), {"query.end_time"}),
    (query(DAY1, DAY1 + dt.timedelta(days=800)), {"query.end_time"}),
    (pb.ReportQuery(end_time=ts(DAY2)), {"query.start_time"}),
    (query(DAY1, DAY1 + dt.timedelta(days=40), pb.REPORT_GROUPING_HOUR), {"query.group_by"}),
    (query(DAY1, DAY2, group_by=7), {"query.group_by"}),
    (query(DAY1, DAY2, queues=["queues/theirs"]), {"query.filter.queues[0]"}),
    (
        query(DAY1, DAY2, agents=["agents/ann", "agents/nobody"]),
        {"query.filter.agents[1]"},
    ),
    (query(DAY1, DAY2, department="departments/nowhere"), {"query.filter.department"}),
    (
        query(DAY1, DAY2, tag="vip", department="departments/sales"),
        {"query.filter.department"},
    ),
    (query(DAY1, DAY2, pb.REPORT_GROUPING_HOUR, tag="vip"), {"query.filter.tag"}),
]


async def test_bad_requests_name_their_fields(world: World) -> None:
    for request_, fields in BAD_REQUESTS:
        with pytest.raises(InvalidArgument) as caught:
            await world.reports.get_overview_report(pb.GetOverviewReportRequest(query=request_))
        assert _violations(caught.value) == fields, request_


async def test_agents_and_gateways_may_not_read_reports(world: World) -> None:
    async with ReportClient(world.target, await _token(world.pool, T, "agent", "ann")) as ann:
        with pytest.raises(PermissionDenied):
            await ann.get_overview_report(pb.GetOverviewReportRequest(query=query(DAY1, DAY2)))


async def test_exports(world: World) -> None:
    chunks = [
        c
        async for c in world.reports.export_report(
            pb.ExportReportRequest(
                kind=pb.REPORT_KIND_CHANNELS,
                query=query(DAY1, DAY2),
                format=records_pb.EXPORT_FORMAT_CSV,
            )
        )
    ]
    rows = list(csv.DictReader(io.StringIO(b"".join(chunks).decode("utf-8-sig"))))
    webchat = next(r for r in rows if r["channel"] == "webchat" and r["period"] == "2026-01-05")
    assert webchat["period_start"] == "2026-01-05T00:00:00+07:00"
    assert (webchat["started"], webchat["answered"], webchat["service_level"]) == ("3", "3", "0.75")
    assert webchat["first_response_within_5s"] == "2"
    assert webchat["wait_p50_s"] == "8.5"
    assert {r["period"] for r in rows} == {"2026-01-05", "total"}

    chunks = [
        c
        async for c in world.reports.export_report(
            pb.ExportReportRequest(
                kind=pb.REPORT_KIND_AGENTS,
                query=query(DAY1, DAY3),
                format=records_pb.EXPORT_FORMAT_XLSX,
            )
        )
    ]
    book = openpyxl.load_workbook(io.BytesIO(b"".join(chunks)), read_only=True)
    sheet = list(book["report"].iter_rows(values_only=True))
    header = list(sheet[0])
    ann = dict(zip(header, sheet[1], strict=True))
    assert (ann["period"], ann["agent"], ann["display_name"]) == ("2026-01-05", "ann", "Ann")
    assert (ann["handled"], ann["online_s"], ann["custom:meeting_s"]) == (3, 33_000, 1_800)
    logins = list(book["logins"].iter_rows(values_only=True))
    assert len(logins) == 4  # the header and three logins
    assert logins[1][4] == "127.0.0.1"


async def test_a_rebuild_answers_the_same(world: World) -> None:
    before = await world.reports.get_agent_report(pb.GetAgentReportRequest(query=query(DAY1, DAY3)))
    await rollups.rebuild(world.pool, T)
    after = await world.reports.get_agent_report(pb.GetAgentReportRequest(query=query(DAY1, DAY3)))
    assert after == before


async def test_compacting_facts_into_rollups_changes_no_figure(world: World) -> None:
    async def everything() -> list[object]:
        q = query(DAY1, DAY3)
        hours = pb.ReportQuery(
            start_time=ts(DAY1), end_time=ts(DAY3), group_by=pb.REPORT_GROUPING_HOUR
        )
        return [
            await world.reports.get_overview_report(pb.GetOverviewReportRequest(query=q)),
            await world.reports.get_overview_report(pb.GetOverviewReportRequest(query=hours)),
            await world.reports.get_agent_report(pb.GetAgentReportRequest(query=q)),
            await world.reports.get_queue_report(pb.GetQueueReportRequest(query=q)),
            await world.reports.get_channel_report(pb.GetChannelReportRequest(query=q)),
            await world.reports.get_overview_report(
                pb.GetOverviewReportRequest(query=query(DAY1, DAY3, tag="vip"))
            ),
            await world.reports.get_agent_report(
                pb.GetAgentReportRequest(query=query(DAY1, DAY3, department="departments/sales"))
            ),
        ]

    before = await everything()
    async with world.pool.acquire() as conn:
        # part of the facts first (the hours before 12:00 on day 1), then the rest
        assert await rollups.compact(conn, T, "Asia/Bangkok", at(DAY1, 12)) > 0
        assert await everything() == before
        assert await rollups.compact(conn, T, "Asia/Bangkok", rollups.FOREVER) > 0
    assert await world.pool.fetchval("SELECT count(*) FROM report_facts") == 0
    assert await everything() == before
