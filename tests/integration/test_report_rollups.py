"""Reports' rollups over real PostgreSQL: facts kept as the shard stores events (across a
restart from a snapshot), compacted into rollup rows, and ``rebuild`` from the event log yields
exactly the same rows."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import asyncpg
import pytest

from core.reports import measures as ms
from core.routing import ManualClock
from core.routing import commands as c
from core.routing import events as ev
from core.routing import model as m
from core.runtime import shard as shard_module
from core.runtime.shard import Outcome, Shard
from core.store import rollups

T = "acme"
Rows = dict[tuple[Any, ...], tuple[int, ...]]


async def stored(pool: asyncpg.Pool, tenant: str = T) -> Rows:
    rows = await pool.fetch(
        f"SELECT {', '.join(rollups.KEY_COLUMNS)}, {', '.join(ms.MEASURES)}"
        " FROM report_rollups WHERE tenant_id = $1",
        tenant,
    )
    keys = len(rollups.KEY_COLUMNS)
    return {tuple(r[:keys]): tuple(v or 0 for v in r[keys:]) for r in rows}


async def facts(pool: asyncpg.Pool, tenant: str = T) -> int:
    return int(
        await pool.fetchval("SELECT count(*) FROM report_facts WHERE tenant_id = $1", tenant)
    )


def offer_of(outcomes: Sequence[Outcome], conversation: str) -> str:
    for outcome in reversed(outcomes):
        for e in reversed(outcome.events):
            if isinstance(e, ev.OfferMade) and e.conversation_id == conversation:
                return e.offer_id
    raise AssertionError(f"no offer for {conversation}")


def transfer_of(outcomes: Sequence[Outcome]) -> str:
    for outcome in outcomes:
        for e in outcome.events:
            if isinstance(e, ev.TransferRequested):
                return e.transfer_id
    raise AssertionError("no transfer")


def say(conversation: str, agent: str | None = None, text: str = "hi") -> c.RecordMessage:
    return c.RecordMessage(
        tenant=T,
        conversation_id=conversation,
        sender=m.Sender.AGENT if agent else m.Sender.CUSTOMER,
        agent_id=agent,
        message=m.MessageBody(text=text),
    )


def start(n: int, **options: Any) -> c.StartConversation:
    return c.StartConversation(
        tenant=T,
        conversation_id=f"c{n}",
        channel=options.pop("channel", "line"),
        customer_id=f"k{n}",
        queue_id="q",
        **options,
    )


SETUP: list[c.Command] = [
    c.ConfigureTenant(tenant=T, settings=m.TenantSettings(time_zone="Asia/Kolkata")),
    c.DefineDepartment(tenant=T, department="sales", name="Sales"),
    c.ConfigureQueue(tenant=T, settings=m.QueueSettings("q", service_level_seconds=30)),
    c.ConfigureAgent(
        tenant=T, profile=m.AgentProfile("ann", capacity=2, departments=frozenset({"sales"}))
    ),
    c.ConfigureAgent(tenant=T, profile=m.AgentProfile("bob", capacity=2)),
    c.SetAgentStatus(tenant=T, agent_id="ann", status=m.AgentStatus.ONLINE),
]


async def run(shard: Shard, clock: ManualClock, *commands: c.Command) -> list[Outcome]:
    outcomes = await shard.submit(list(commands))
    for outcome in outcomes:
        assert outcome.ok, outcome.failure
    return outcomes


async def snapshot_taken(pool: asyncpg.Pool) -> int:
    for _ in range(100):
        seq = await pool.fetchval("SELECT max(seq) FROM snapshots WHERE tenant_id = $1", T)
        if seq:
            return int(seq)
        await asyncio.sleep(0.05)
    raise AssertionError("no snapshot was taken")


async def test_rollups_survive_a_restart_and_equal_a_rebuild(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shard_module, "SNAPSHOT_EVENTS_PER_OBJECT", 0)  # one after each batch
    clock = ManualClock(1_767_288_600.0)  # 2026-01-01T17:30Z: 23:00 in Kolkata, near midnight
    shard = Shard("s0", pool, clock=clock, snapshot_every=1)
    await run(shard, clock, *SETUP)
    started = await run(shard, clock, start(1, tags=frozenset({"vip"})))
    clock.advance(10)
    await run(
        shard, clock, c.AcceptOffer(tenant=T, offer_id=offer_of(started, "c1"), agent_id="ann")
    )
    clock.advance(5)  # exactly 5 s: within the first bucket
    await run(shard, clock, say("c1"), say("c1", "ann"))
    second = await run(shard, clock, start(2))
    clock.advance(45)
    await run(shard, clock, c.CustomerLeft(tenant=T, conversation_id="c2"))  # abandoned at 45 s
    third = await run(shard, clock, start(3, channel="webchat"))
    await run(shard, clock, c.AcceptOffer(tenant=T, offer_id=offer_of(third, "c3"), agent_id="ann"))
    await shard.stop()
    assert second
    taken = await snapshot_taken(pool)

    # a new incarnation continues from the snapshot and the events after it
    clock.advance(3_600)  # past local midnight: a new day
    successor = Shard("s1", pool, clock=clock, snapshot_every=1)
    await run(
        successor, clock, c.SetAgentStatus(tenant=T, agent_id="bob", status=m.AgentStatus.ONLINE)
    )
    asked = await run(
        successor,
        clock,
        c.RequestTransfer(
            tenant=T,
            agent_id="ann",
            conversation_id="c3",
            target=m.TransferTarget.AGENT,
            target_id="bob",
        ),
    )
    clock.advance(7)
    await run(
        successor,
        clock,
        c.AnswerTransfer(tenant=T, agent_id="bob", transfer_id=transfer_of(asked), accept=True),
    )
    clock.advance(20)
    await run(
        successor,
        clock,
        say("c3", "bob"),
        c.EndConversation(tenant=T, agent_id="bob", conversation_id="c3", outcome=m.Outcome.SPAM),
        c.EndConversation(tenant=T, agent_id="ann", conversation_id="c1"),
        c.StartConversation(
            tenant=T, conversation_id="c4", channel="line", customer_id="k4", with_bot=True
        ),
        c.CustomerLeft(tenant=T, conversation_id="c4"),
    )
    await successor.stop()
    assert taken > 1  # the successor restored the fold from a snapshot, not from the start

    assert await facts(pool) > 0 and not await stored(pool)  # facts, not yet compacted
    moved = await rollups.compact_due(pool)  # housekeeping's round: those hours are long over
    assert moved > 0 and await facts(pool) == 0
    live = await stored(pool)
    day = {k: v for k, v in live.items() if k[1:4] == ("d", "all", "")}
    assert len(day) == 2  # two local days in Kolkata
    totals = [sum(v[ms.INDEX[name]] for v in day.values()) for name in ms.COUNTERS]
    figures = dict(zip(ms.COUNTERS, totals, strict=True))
    assert figures["started"] == 4
    assert figures["answered"] == 2
    assert figures["abandoned"] == 1
    assert figures["abandoned_in_sl"] == 0  # 45 s > the queue's 30 s
    assert figures["answered_in_sl"] == 2
    assert figures["transfers_out"] == figures["transfers_in"] == 1
    assert figures["resolved"] == figures["spam"] == 1
    assert figures["bot_only"] == 1
    assert figures["handled"] == 3  # ann's c1, ann's c3 (transferred), bob's c3
    frt_within_5 = sum(
        v[ms.histogram_start("first_response") + i] for v in day.values() for i in range(4)
    )
    assert frt_within_5 == 1  # ann answered c1 after exactly 5 s; bob answered c3 after 20 s
    tagged = {k: v for k, v in live.items() if k[1:4] == ("d", "tag", "vip")}
    assert sum(v[ms.INDEX["started"]] for v in tagged.values()) == 1
    sales = {k: v for k, v in live.items() if k[1:4] == ("d", "dept", "sales")}
    assert sum(v[ms.INDEX["handled"]] for v in sales.values()) == 2  # ann's two

    rebuilt = await rollups.rebuild(pool, T)
    assert rebuilt.time_zone == "Asia/Kolkata"
    assert rebuilt.rows == len(live)
    assert await stored(pool) == live
    assert await facts(pool) == 0


@pytest.mark.parametrize("flushed_midway", [False, True])
async def test_facts_held_when_a_shard_dies_are_folded_again(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch, flushed_midway: bool
) -> None:
    """A shard holds facts for a second before an append writes them; one that dies meanwhile
    leaves events whose facts are not stored. The next incarnation folds the events after the
    tenant's ``reports_through`` mark again (from the snapshot's held facts, or the log), so
    nothing is lost or counted twice."""
    monkeypatch.setattr(shard_module, "SNAPSHOT_EVENTS_PER_OBJECT", 0)
    monkeypatch.setattr(shard_module, "REPORTS_EVERY", 3_600.0)  # never due by age here
    clock = ManualClock(1_767_288_600.0)
    shard = Shard("s0", pool, clock=clock, snapshot_every=1)
    await run(shard, clock, *SETUP)
    started = await run(shard, clock, start(1))
    clock.advance(12)
    await run(
        shard, clock, c.AcceptOffer(tenant=T, offer_id=offer_of(started, "c1"), agent_id="ann")
    )
    if flushed_midway:
        await shard.flush_reports(every=0.0)
        assert await facts(pool) > 0
    clock.advance(3)
    await run(shard, clock, say("c1"), say("c1", "ann"), start(2))
    await snapshot_taken(pool)
    # the shard dies here: no flush (its held facts are lost with it)

    clock.advance(30)
    successor = Shard("s1", pool, clock=clock, snapshot_every=1)
    await run(successor, clock, c.CustomerLeft(tenant=T, conversation_id="c2"))
    await successor.stop()  # writes what it held
    await rollups.compact_due(pool)
    live = await stored(pool)
    await rollups.rebuild(pool, T)
    assert await stored(pool) == live
    day = {k: v for k, v in live.items() if k[1:4] == ("d", "all", "")}
    total = {name: sum(v[ms.INDEX[name]] for v in day.values()) for name in ms.COUNTERS}
    assert (total["started"], total["answered"], total["abandoned"]) == (2, 1, 1)
    assert total["agent_messages"] == total["customer_messages"] == 1
