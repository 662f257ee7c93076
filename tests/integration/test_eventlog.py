"""The event log against real PostgreSQL: group commit, epoch fencing, rebuild, outages."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from core.routing import Engine, ManualClock
from core.routing import commands as c
from core.routing import events as ev
from core.routing import model as m
from core.routing.invariants import snapshot
from core.routing.router import Router
from core.store import EventLog, Projection, StaleEpoch, StoreUnavailable, project
from tests.integration.proxy import CuttableProxy
from tests.unit.test_engine_machine import EngineMachine

T = "acme"


class Durable:
    """An engine whose every command is appended to the log before it counts (as a shard does)."""

    def __init__(self, log: EventLog, epoch: int, tenant: str = T) -> None:
        self.log = log
        self.epoch = epoch
        self.tenant = tenant
        self.clock = ManualClock()
        self.engine = Engine(self.clock)
        self.events: list[ev.Event] = []

    @property
    def router(self) -> Router:
        return self.engine.router(self.tenant)

    async def run(self, command: c.Command) -> int:
        result = self.engine.execute(command)
        projection = project(self.router, result.events)
        seq = await self.log.append(self.tenant, self.epoch, result.events, projection)
        self.events.extend(result.events)
        return seq

    async def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        result = self.engine.tick()
        if result.events:
            projection = project(self.router, result.events)
            await self.log.append(self.tenant, self.epoch, result.events, projection)
            self.events.extend(result.events)


@pytest.fixture
async def log(pool: asyncpg.Pool) -> AsyncIterator[EventLog]:
    event_log = EventLog(pool)
    yield event_log
    await event_log.close()


async def contact_center(d: Durable) -> None:
    await d.run(c.ConfigureTenant(tenant=T, settings=m.TenantSettings(wrap_up_seconds=10)))
    await d.run(c.DefineSkill(tenant=T, skill="billing"))
    queue = m.QueueSettings("q", requirements=(m.SkillRequirement("billing", 2),), max_wait=300)
    await d.run(c.ConfigureQueue(tenant=T, settings=queue))
    for name in ("ann", "bob"):
        profile = m.AgentProfile(name, skills={"billing": 5}, capacity=1)
        await d.run(c.ConfigureAgent(tenant=T, profile=profile))
        await d.run(c.SetAgentStatus(tenant=T, agent_id=name, status=m.AgentStatus.ONLINE))
    for n in range(3):
        await d.run(
            c.StartConversation(
                tenant=T,
                conversation_id=f"c{n}",
                channel="whatsapp",
                customer_id=f"k{n}",
                queue_id="q",
            )
        )
    offer = d.router.conversations["c0"].offer
    assert offer is not None
    await d.run(c.AcceptOffer(tenant=T, offer_id=offer, agent_id="ann"))


async def test_appended_events_load_back_in_order_with_gap_free_sequences(
    log: EventLog, pool: asyncpg.Pool
) -> None:
    d = Durable(log, await log.claim(T))
    await contact_center(d)

    loaded = await log.load(T)

    assert loaded == d.events
    seqs = [r["seq"] for r in await pool.fetch("SELECT seq FROM events ORDER BY seq")]
    assert seqs == list(range(1, len(seqs) + 1))
    assert await pool.fetchval("SELECT last_seq FROM tenants WHERE tenant_id = $1", T) == len(seqs)


async def test_a_rebuilt_engine_equals_the_one_that_wrote_the_log(log: EventLog) -> None:
    d = Durable(log, await log.claim(T))
    await contact_center(d)
    await d.advance(45)  # the offer to bob for c1 expires and moves on

    rebuilt = Engine(ManualClock())
    rebuilt.replay(await log.load(T))

    assert snapshot(rebuilt.router(T)) == snapshot(d.router)


async def test_a_restarted_shard_resumes_waiting_offers_and_timers(log: EventLog) -> None:
    d = Durable(log, await log.claim(T))
    await contact_center(d)
    waiting = d.router.conversations["c2"]
    enqueued_at, offered_to = waiting.enqueued_at, d.router.conversations["c1"].offer

    clock = ManualClock(d.clock.now() + 60)  # the shard was down for a minute
    restarted = Engine(clock)
    restarted.replay(await log.load(T))
    router = restarted.router(T)
    assert router.conversations["c2"].enqueued_at == enqueued_at
    assert router.conversations["c1"].offer == offered_to
    assert router.conversations["c0"].owner == "ann"

    result = restarted.tick()  # the offer deadline passed while it was down

    declined = [e for e in result.events if isinstance(e, ev.OfferDeclined)]
    assert [e.reason for e in declined] == [m.DeclineReason.EXPIRED]


async def test_a_stale_epoch_is_refused_and_writes_nothing(
    log: EventLog, pool: asyncpg.Pool
) -> None:
    old = Durable(log, await log.claim(T))
    await old.run(c.ConfigureTenant(tenant=T))
    new_epoch = await log.claim(T)  # a new incarnation takes over
    before = await pool.fetchval("SELECT count(*) FROM events")

    with pytest.raises(StaleEpoch):
        await old.run(c.DefineSkill(tenant=T, skill="billing"))

    assert await pool.fetchval("SELECT count(*) FROM events") == before
    new = Durable(log, new_epoch)
    new.engine.replay(await log.load(T))
    await new.run(c.DefineSkill(tenant=T, skill="billing"))
    assert await pool.fetchval("SELECT count(*) FROM events") == before + 1


async def test_an_unclaimed_tenant_cannot_append(log: EventLog) -> None:
    with pytest.raises(StaleEpoch):
        await log.append(
            "nobody", 1, [ev.SkillDefined(tenant="nobody", at=0.0, skill="x")], Projection()
        )


async def test_concurrent_appends_share_transactions(log: EventLog, pool: asyncpg.Pool) -> None:
    tenants = [f"t{n}" for n in range(4)]
    epochs = {t: await log.claim(t) for t in tenants}

    async def write(tenant: str, n: int) -> tuple[str, int]:
        event = ev.SkillDefined(tenant=tenant, at=float(n), skill=f"s{n}")
        return tenant, await log.append(tenant, epochs[tenant], [event], Projection())

    results = await asyncio.gather(*(write(t, n) for n in range(50) for t in tenants))

    stats = log.statistics()
    assert stats.appends == 200 and stats.commits < 200
    for t in tenants:
        assert sorted(seq for tenant, seq in results if tenant == t) == list(range(1, 51))


async def test_records_follow_the_engine(log: EventLog, pool: asyncpg.Pool) -> None:
    d = Durable(log, await log.claim(T))
    await contact_center(d)
    await d.run(c.EndConversation(tenant=T, agent_id="ann", conversation_id="c0"))
    await d.advance(10)  # wrap-up over

    row = await pool.fetchrow(
        "SELECT state, owner_agent_id, last_agent_id, outcome, closed_at FROM conversations"
        " WHERE tenant_id = $1 AND conversation_id = 'c0'",
        T,
    )
    assert (row["state"], row["owner_agent_id"], row["last_agent_id"], row["outcome"]) == (
        "closed",
        None,
        "ann",
        "resolved",
    )
    assert row["closed_at"] is not None
    offers = await pool.fetch(
        "SELECT conversation_id, outcome FROM offers ORDER BY made_at, offer_id"
    )
    assert ("c0", "accepted") in [(o["conversation_id"], o["outcome"]) for o in offers]
    sessions = await pool.fetch("SELECT agent_id, status, ended_at FROM agent_sessions")
    assert {(s["agent_id"], s["status"]) for s in sessions} == {
        ("ann", "online"),
        ("bob", "online"),
    }


async def test_the_database_backs_one_live_offer_per_conversation(
    log: EventLog, pool: asyncpg.Pool
) -> None:
    d = Durable(log, await log.claim(T))
    await contact_center(d)
    live = await pool.fetchrow("SELECT * FROM offers WHERE outcome IS NULL LIMIT 1")

    with pytest.raises(asyncpg.UniqueViolationError):
        await pool.execute(
            "INSERT INTO offers (tenant_id, offer_id, conversation_id, agent_ids, broadcast,"
            " decision, made_at, deadline) VALUES ($1, 'dup', $2, '{}', false, '{}', now(), now())",
            T,
            live["conversation_id"],
        )


async def test_commands_fail_unavailable_while_postgres_is_away_and_recover(
    database_url: str,
) -> None:
    proxy = CuttableProxy(database_url)
    await proxy.start()
    pool = await asyncpg.create_pool(proxy.url, min_size=1, max_size=2)
    log = EventLog(pool, timeout=2.0)
    try:
        d = Durable(log, await log.claim("outage"), tenant="outage")
        await d.run(c.ConfigureTenant(tenant="outage"))
        acknowledged = len(await log.load("outage"))

        await proxy.cut()
        with pytest.raises(StoreUnavailable):
            await d.run(c.DefineSkill(tenant="outage", skill="lost"))
        await proxy.restore()

        # The engine ran ahead of the store; a real shard claims anew and rebuilds, as do we
        # (the failed epoch's appends stay refused: they might build on the lost one).
        with pytest.raises(StaleEpoch):
            await d.run(c.DefineSkill(tenant="outage", skill="after"))
        d.epoch = await log.claim("outage")
        d.engine = Engine(d.clock)
        d.engine.replay(await log.load("outage"))
        assert len(await log.load("outage")) == acknowledged
        await d.run(c.DefineSkill(tenant="outage", skill="kept"))
        assert [type(e) for e in await log.load("outage")][-1] is ev.SkillDefined
    finally:
        await log.close()
        await pool.close()
        await proxy.cut()


def machine_histories(count: int) -> list[list[ev.Event]]:
    """Event histories from the engine's Hypothesis state machine."""
    histories: list[list[ev.Event]] = []

    class Recording(EngineMachine):
        def teardown(self) -> None:
            histories.append(list(self.log))

    run_state_machine_as_test(
        Recording,
        settings=settings(
            max_examples=count,
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        ),
    )
    return histories


async def test_state_rebuilt_from_the_log_equals_the_state_before_the_crash(
    log: EventLog,
) -> None:
    for n, history in enumerate(machine_histories(12)):
        tenant = f"h{n}"
        original = Engine(ManualClock())
        original.replay(history)
        renamed = [_retenant(e, tenant) for e in history]
        epoch = await log.claim(tenant)
        for start in range(0, len(renamed), 25):
            chunk = renamed[start : start + 25]
            await log.append(tenant, epoch, chunk, Projection())

        rebuilt = Engine(ManualClock())
        rebuilt.replay(_retenant(e, T) for e in await log.load(tenant))

        assert snapshot(rebuilt.router(T)) == snapshot(original.router(T))


def _retenant(event: ev.Event, tenant: str) -> ev.Event:
    import dataclasses

    return dataclasses.replace(event, tenant=tenant)


async def test_a_rebuild_from_a_snapshot_and_the_events_after_it_equals_the_original(
    log: EventLog, pool: asyncpg.Pool
) -> None:
    from core.store import snapshots

    epoch = await log.claim(T)
    d = Durable(log, epoch)
    await contact_center(d)
    seq = await pool.fetchval("SELECT last_seq FROM tenants WHERE tenant_id = $1", T)
    await snapshots.save(pool, d.router.tenant, snapshots.dump(d.router), seq, epoch)
    await d.run(c.EndConversation(tenant=T, agent_id="ann", conversation_id="c0"))
    await d.advance(45)

    rebuilt = Engine(ManualClock())
    last = await snapshots.rebuild(rebuilt, log, pool, T)

    assert last == await pool.fetchval("SELECT last_seq FROM tenants WHERE tenant_id = $1", T)
    assert snapshot(rebuilt.router(T)) == snapshot(d.router)
    with pytest.raises(StaleEpoch):
        await snapshots.save(pool, d.router.tenant, snapshots.dump(d.router), seq, epoch - 1)


async def test_a_caller_that_stops_waiting_does_not_shift_the_others_sequences(
    log: EventLog,
) -> None:
    epoch = await log.claim(T)

    def skills(*names: str) -> list[ev.Event]:
        return [ev.SkillDefined(tenant=T, at=0.0, skill=n) for n in names]

    first = asyncio.ensure_future(log.append(T, epoch, skills("a"), Projection()))
    second = asyncio.ensure_future(log.append(T, epoch, skills("b", "c"), Projection()))
    gone = asyncio.ensure_future(log.append(T, epoch, skills("d"), Projection()))
    last = asyncio.ensure_future(log.append(T, epoch, skills("e"), Projection()))
    await asyncio.sleep(0)  # all four are queued for the same batch
    gone.cancel()

    assert [await first, await second, await last] == [1, 3, 5]
    assert [e.skill for e in await log.load(T)] == ["a", "b", "c", "d", "e"]  # type: ignore[attr-defined]
