"""A shard over real PostgreSQL: acknowledged means stored, fencing, timers, outages."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import asyncpg
import pytest

from core.routing import ManualClock
from core.routing import commands as c
from core.routing import events as ev
from core.routing import model as m
from core.routing.effects import Effect
from core.routing.invariants import snapshot
from core.runtime.shard import Committed, Shard
from tests.integration.proxy import CuttableProxy

T = "acme"


def setup_commands() -> list[c.Command]:
    return [
        c.ConfigureTenant(tenant=T),
        c.DefineSkill(tenant=T, skill="billing"),
        c.ConfigureQueue(
            tenant=T,
            settings=m.QueueSettings("q", requirements=(m.SkillRequirement("billing", 1),)),
        ),
        c.ConfigureAgent(tenant=T, profile=m.AgentProfile("ann", skills={"billing": 3})),
        c.ConfigureAgent(tenant=T, profile=m.AgentProfile("bob", skills={"billing": 3})),
        c.SetAgentStatus(tenant=T, agent_id="ann", status=m.AgentStatus.ONLINE),
        c.SetAgentStatus(tenant=T, agent_id="bob", status=m.AgentStatus.ONLINE),
    ]


def start(n: int) -> c.StartConversation:
    return c.StartConversation(
        tenant=T, conversation_id=f"c{n}", channel="line", customer_id=f"k{n}", queue_id="q"
    )


def recording(seen: list[tuple[int, int]]) -> Committed:
    """An ``on_commit`` hook that notes (first event id, event count) of each commit."""

    async def committed(
        tenant: str, first: int, events: Sequence[ev.Event], effects: Sequence[Effect]
    ) -> None:
        seen.append((first, len(events)))

    return committed


@pytest.fixture
async def shard(pool: asyncpg.Pool) -> AsyncIterator[Shard]:
    s = Shard("s0", pool, clock=ManualClock())
    yield s
    await s.stop()


async def test_acknowledged_commands_survive_a_new_incarnation(
    shard: Shard, pool: asyncpg.Pool
) -> None:
    outcomes = await shard.submit([*setup_commands(), start(1), start(2)])
    assert all(o.ok for o in outcomes)

    successor = Shard("s0-restarted", pool, clock=ManualClock())
    await successor.submit([start(3)])

    assert snapshot(successor.engine.router(T)).keys() == snapshot(shard.engine.router(T)).keys()
    conversations = successor.engine.router(T).conversations
    assert {cid: conv.state for cid, conv in conversations.items()} == {
        "c1": m.ConversationState.OFFERED,
        "c2": m.ConversationState.OFFERED,
        "c3": m.ConversationState.QUEUED,
    }
    await successor.stop()


async def test_the_older_incarnation_is_fenced_off(shard: Shard, pool: asyncpg.Pool) -> None:
    await shard.submit(setup_commands())
    successor = Shard("s0-new", pool, clock=ManualClock())
    await successor.submit([start(1)])

    (stale,) = await shard.submit([start(2)])

    assert stale.failure is not None and stale.failure.code == "UNAVAILABLE"
    assert await pool.fetchval("SELECT count(*) FROM conversations") == 1
    await successor.stop()


async def test_a_refused_command_gets_its_code_and_stores_nothing(
    shard: Shard, pool: asyncpg.Pool
) -> None:
    await shard.submit(setup_commands())
    before = await pool.fetchval("SELECT count(*) FROM events")

    bad, good = await shard.submit(
        [c.AcceptOffer(tenant=T, offer_id="o404", agent_id="ann"), start(1)]
    )

    assert bad.failure is not None and bad.failure.code == "FAILED_PRECONDITION"
    assert good.ok and good.first_id == before + 1
    assert await pool.fetchval("SELECT count(*) FROM events") == before + len(good.events)


async def test_event_ids_are_the_tenant_sequence_and_reach_subscribers(pool: asyncpg.Pool) -> None:
    seen: list[tuple[int, int]] = []
    shard = Shard("s0", pool, clock=ManualClock(), on_commit=recording(seen))
    await shard.submit(setup_commands())
    await shard.submit([start(1), start(2)])

    ids = [i for first, n in seen for i in range(first, first + n)]
    assert ids == list(range(1, len(ids) + 1))
    await shard.stop()


async def test_timers_fire_on_the_shard_and_are_stored(pool: asyncpg.Pool) -> None:
    clock = ManualClock()
    shard = Shard("s0", pool, clock=clock)
    await shard.submit([*setup_commands(), start(1)])

    clock.advance(31)  # the offer times out
    await shard.tick()

    types = [r["type"] for r in await pool.fetch("SELECT type FROM events ORDER BY seq")]
    assert types[-2:] == ["OfferDeclined", "OfferMade"]
    await shard.stop()


async def test_postgres_away_fails_commands_unavailable_and_the_shard_recovers(
    database_url: str, pool: asyncpg.Pool
) -> None:
    """(``pool`` only empties the tables; the shard talks through the proxy.)"""
    proxy = CuttableProxy(database_url)
    await proxy.start()
    proxied = await asyncpg.create_pool(proxy.url, min_size=1, max_size=2, timeout=2)
    shard = Shard("s0", proxied, clock=ManualClock())
    try:
        assert all(o.ok for o in await shard.submit(setup_commands()))

        await proxy.cut()
        (lost,) = await shard.submit([start(1)])
        assert lost.failure is not None and lost.failure.code == "UNAVAILABLE"
        await proxy.restore()

        (kept,) = await shard.submit([start(2)])
        assert kept.ok
        conversations = shard.engine.router(T).conversations
        assert "c1" not in conversations and "c2" in conversations
    finally:
        await shard.stop()
        await proxied.close()
        await proxy.cut()


async def test_a_restarted_shard_fires_overdue_timers_without_waiting_for_a_command(
    pool: asyncpg.Pool,
) -> None:
    before = Shard("s0", pool, clock=ManualClock())
    await before.submit([*setup_commands(), start(1)])
    await before.stop()  # the process dies; the offer's deadline passes meanwhile

    clock = ManualClock(before.engine.clock.now() + 60)
    after = Shard("s0-restarted", pool, clock=clock, owns=lambda tenant: True)
    assert await after.warm_up() == 1
    await after.tick()

    types = [r["type"] for r in await pool.fetch("SELECT type FROM events ORDER BY seq")]
    assert types[-2:] == ["OfferDeclined", "OfferMade"]
    await after.stop()


async def test_a_change_the_store_refuses_leaves_the_engine_as_the_store_has_it(
    shard: Shard, pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert all(o.ok for o in await shard.submit([*setup_commands(), start(1)]))
    append = shard._log.append
    calls = 0

    async def refusing(*args: object, **kwargs: object) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:  # the store refuses this one (as a constraint would)
            raise asyncpg.CheckViolationError("tags_check")
        return await append(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(shard._log, "append", refusing)
    tag = c.TagConversation(tenant=T, conversation_id="c1", add=frozenset({"vip"}))
    (refused,) = await shard.submit([tag])
    assert refused.failure is not None and refused.failure.code == "UNAVAILABLE"
    assert "tags_check" not in refused.failure.message  # no internals
    (again,) = await shard.submit([tag])  # reloaded from the store: the tag was never applied
    assert again.ok and any(isinstance(e, ev.TagsChanged) for e in again.events)
    assert shard.engine.router(T).conversations["c1"].tags == frozenset({"vip"})


async def test_a_command_that_fails_inside_the_engine_fails_its_batch_and_changes_nothing(
    shard: Shard, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert all(o.ok for o in await shard.submit(setup_commands()))
    real_execute = shard.engine.execute

    def failing(command: c.Command) -> object:
        if isinstance(command, c.StartConversation) and command.conversation_id == "c2":
            real_execute(command)  # changes the engine, then fails
            raise RuntimeError("a bug")
        return real_execute(command)

    monkeypatch.setattr(shard.engine, "execute", failing)
    first, second = await shard.submit([start(1), start(2)])
    for outcome in (first, second):
        assert outcome.failure is not None and outcome.failure.code == "UNAVAILABLE"
        assert "bug" not in outcome.failure.message
    monkeypatch.undo()
    (retried,) = await shard.submit([start(1)])
    assert retried.ok
    assert set(shard.engine.router(T).conversations) == {"c1"}


async def test_a_stalled_then_cut_store_loses_no_acknowledged_first_message(
    database_url: str, pool: asyncpg.Pool
) -> None:
    """Conversations with their first message keep arriving while PostgreSQL stalls (bytes
    held, as under SIGSTOP), then drops every connection: whatever was acknowledged is stored
    whole, and nothing refused left a conversation without its message."""
    proxy = CuttableProxy(database_url)
    await proxy.start()
    proxied = await asyncpg.create_pool(proxy.url, min_size=1, max_size=2, timeout=2)
    shard = Shard("s0", proxied, clock=ManualClock())
    shard._log._timeout = 1.0  # a stalled commit gives up (its outcome unknown) within a second
    acknowledged: list[str] = []

    async def customer(n: int) -> None:
        command = c.StartConversation(
            tenant=T,
            conversation_id=f"c{n}",
            channel="whatsapp",
            customer_id=f"k{n}",
            queue_id="q",
            first_message=m.MessageBody(text=f"first {n}", provider_message_id=f"w{n}"),
        )
        for _ in range(20):  # a gateway retries until it is answered
            (outcome,) = await shard.submit([command])
            if outcome.ok or (outcome.failure and outcome.failure.code == "ALREADY_EXISTS"):
                acknowledged.append(command.conversation_id)
                return
            await asyncio.sleep(0.2)

    try:
        assert all(o.ok for o in await shard.submit(setup_commands()))
        arrivals = [asyncio.create_task(customer(n)) for n in range(40)]
        await asyncio.sleep(0.05)
        proxy.stall()
        await asyncio.sleep(1.5)
        await proxy.cut()
        proxy.resume()
        await asyncio.sleep(0.5)
        await proxy.restore()
        await asyncio.gather(*arrivals)
    finally:
        await shard.stop()
        await proxied.close()
        await proxy.cut()
    rows = await pool.fetch(
        """SELECT c.conversation_id, count(m.message_id) AS messages
           FROM conversations c LEFT JOIN messages m ON m.tenant_id = c.tenant_id
             AND m.conversation_id = c.conversation_id AND m.sender = 'customer'
           WHERE c.tenant_id = $1 GROUP BY c.conversation_id""",
        T,
    )
    stored = {r["conversation_id"]: r["messages"] for r in rows}
    assert sorted(acknowledged) == sorted(stored)  # every arrival was answered in the end
    assert all(count == 1 for count in stored.values()), stored


async def test_a_batch_executed_on_top_of_one_whose_commit_fails_is_not_stored_either(
    shard: Shard, pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shard executes the next batch while the previous one commits; when that commit
    fails, the next batch (built on its state) fails too, though the store is up again."""
    assert all(o.ok for o in await shard.submit([*setup_commands(), start(1)]))
    conversation = shard.engine.router(T).conversations["c1"]
    commit = shard._log._commit
    release = asyncio.Event()
    calls = 0

    async def first_fails(batch: list[object]) -> dict[str, int]:
        nonlocal calls
        calls += 1
        if calls == 1:
            await release.wait()
            raise asyncpg.CheckViolationError("refused")
        return await commit(batch)  # type: ignore[arg-type]

    monkeypatch.setattr(shard._log, "_commit", first_fails)
    vip = c.TagConversation(tenant=T, conversation_id="c1", add=frozenset({"vip"}))
    first = asyncio.create_task(shard.submit([vip]))
    while not conversation.tags:  # executed, its commit under way
        await asyncio.sleep(0.01)
    gold = c.TagConversation(tenant=T, conversation_id="c1", add=frozenset({"gold"}))
    second = asyncio.create_task(shard.submit([gold]))  # its event holds "vip" too
    while len(conversation.tags) < 2:
        await asyncio.sleep(0.01)
    release.set()
    ((lost,), (built_on_lost,)) = await asyncio.gather(first, second)

    for outcome in (lost, built_on_lost):
        assert outcome.failure is not None and outcome.failure.code == "UNAVAILABLE"
    types = await pool.fetch("SELECT type FROM events WHERE tenant_id = $1", T)
    assert "TagsChanged" not in {r["type"] for r in types}
    (kept,) = await shard.submit([gold])
    assert kept.ok
    assert shard.engine.router(T).conversations["c1"].tags == frozenset({"gold"})


async def test_concurrent_batches_are_acknowledged_and_published_in_execution_order(
    pool: asyncpg.Pool,
) -> None:
    seen: list[tuple[int, int]] = []
    shard = Shard("s0", pool, clock=ManualClock(), on_commit=recording(seen))
    await shard.submit(setup_commands())
    outcomes = await asyncio.gather(*(shard.submit([start(n)]) for n in range(1, 41)))

    ids = [i for first, n in seen for i in range(first, first + n)]
    assert ids == list(range(1, len(ids) + 1))  # every event once, in order
    firsts = [outcome.first_id for (outcome,) in outcomes]
    assert all(o.ok for (o,) in outcomes) and firsts == sorted(firsts)
    stored = await pool.fetchval("SELECT max(seq) FROM events WHERE tenant_id = $1", T)
    assert stored == ids[-1]
    await shard.stop()
