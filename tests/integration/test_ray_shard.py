"""Shards as Ray actors behind the batching dispatcher, on a real local Ray (one per session:
the ``local_ray`` fixture of ``conftest``)."""

from __future__ import annotations

import asyncio

import asyncpg
import ray

from core.routing import Engine, ManualClock
from core.routing import commands as c
from core.routing import events as ev
from core.routing import model as m
from core.routing.invariants import check_invariants
from core.runtime.actor import spawn
from core.runtime.dispatcher import Dispatcher
from core.store import EventLog, snapshots

T = "acme"


def setup_commands(agents: int) -> list[c.Command]:
    commands: list[c.Command] = [
        c.ConfigureTenant(tenant=T),
        c.ConfigureQueue(tenant=T, settings=m.QueueSettings("q")),
    ]
    for n in range(agents):
        commands.append(c.ConfigureAgent(tenant=T, profile=m.AgentProfile(f"a{n}", capacity=2)))
        commands.append(c.SetAgentStatus(tenant=T, agent_id=f"a{n}", status=m.AgentStatus.ONLINE))
    return commands


def start(n: int) -> c.StartConversation:
    return c.StartConversation(
        tenant=T, conversation_id=f"c{n}", channel="webchat", customer_id=f"k{n}", queue_id="q"
    )


async def rebuilt(pool: asyncpg.Pool) -> Engine:
    engine = Engine(ManualClock())
    await snapshots.rebuild(engine, EventLog(pool), pool, T)
    return engine


async def test_commands_are_batched_into_few_actor_calls(
    local_ray: None, database_url: str, pool: asyncpg.Pool
) -> None:
    actor = spawn(90, database_url)
    dispatcher = Dispatcher([actor])
    for command in setup_commands(agents=5):
        assert (await dispatcher.submit(command)).ok
    calls_before = dispatcher.calls

    outcomes = await asyncio.gather(*(dispatcher.submit(start(n)) for n in range(200)))

    assert all(o.ok for o in outcomes)
    assert dispatcher.calls - calls_before < 20
    engine = await rebuilt(pool)
    assert len(engine.router(T).conversations) == 200
    ray.kill(actor, no_restart=True)


async def test_a_killed_shard_loses_nothing_acknowledged(
    local_ray: None, database_url: str, pool: asyncpg.Pool
) -> None:
    actor = spawn(91, database_url)
    dispatcher = Dispatcher([actor])
    for command in setup_commands(agents=3):
        assert (await dispatcher.submit(command)).ok

    async def flow(n: int) -> bool:
        """Start a conversation and accept its offer; True if the start was acknowledged."""
        outcome = await dispatcher.submit(start(n))
        offers = [e for e in outcome.events if isinstance(e, ev.OfferMade)]
        for offer in offers:
            await dispatcher.submit(
                c.AcceptOffer(tenant=T, offer_id=offer.offer_id, agent_id=offer.agent_ids[0])
            )
        return outcome.ok

    during = asyncio.gather(*(flow(n) for n in range(40)))
    await asyncio.sleep(0.05)
    ray.kill(actor, no_restart=False)  # Ray restarts it; tenants are rebuilt on demand
    acknowledged = {f"c{n}" for n, ok in enumerate(await during) if ok}
    refusals = []
    for n in range(40, 60):
        for _ in range(600):  # until the restarted actor answers (a new process: seconds)
            outcome = await dispatcher.submit(start(n))
            # A retry after an ambiguous UNAVAILABLE (the shard died after committing) finds it
            # done: the conversation id is the idempotency key.
            if outcome.ok or (outcome.failure and outcome.failure.code == "ALREADY_EXISTS"):
                acknowledged.add(f"c{n}")
                break
            refusals.append(outcome.failure)
            await asyncio.sleep(0.1)

    assert {f"c{n}" for n in range(40, 60)} <= acknowledged, refusals[-3:]
    router = (await rebuilt(pool)).router(T)
    check_invariants(router)  # nobody owned twice, nobody over capacity
    assert acknowledged <= set(router.conversations)
    ray.kill(actor, no_restart=True)
