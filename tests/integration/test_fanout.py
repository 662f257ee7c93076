"""Commits pushed from a Ray shard actor through Redis pub/sub into a front door's feeds.

No log tail runs here: what arrives came through Redis (or, for a hole, the feed's backfill).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest
import ray
import redis.asyncio as aioredis

from core.api.tail import CommitListener
from core.routing import commands as c
from core.routing import events as ev
from core.routing import model as m
from core.runtime.actor import channel_pattern, decode_commit, encode_commit, spawn, tenant_of
from core.runtime.dispatcher import Dispatcher
from core.runtime.feed import Feeds, Subscription
from core.store import EventLog

T = "acme"
WAIT = 30.0  # a safety net against hangs, never an assertion about speed


def setup_commands() -> list[c.Command]:
    return [
        c.ConfigureTenant(tenant=T),
        c.ConfigureQueue(tenant=T, settings=m.QueueSettings("q")),
        c.ConfigureAgent(tenant=T, profile=m.AgentProfile("ann", capacity=2)),
        c.SetAgentStatus(tenant=T, agent_id="ann", status=m.AgentStatus.ONLINE),
    ]


def start(n: int) -> c.StartConversation:
    return c.StartConversation(
        tenant=T, conversation_id=f"c{n}", channel="webchat", customer_id=f"k{n}", queue_id="q"
    )


class RecordingBackfill:
    """The event log's ``load``, remembering each hole it was asked to fill."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._log = EventLog(pool)
        self.calls: list[tuple[int, int]] = []

    async def __call__(self, tenant: str, after: int, up_to: int) -> Sequence[ev.Event]:
        self.calls.append((after, up_to))
        return await self._log.load(tenant, after, up_to)


@asynccontextmanager
async def listening(redis_url: str, feeds: Feeds, prefix: str) -> AsyncIterator[CommitListener]:
    client = aioredis.Redis.from_url(redis_url)
    listener = CommitListener(client, feeds, prefix=prefix)
    listener.start()
    try:
        await asyncio.wait_for(listener.subscribed.wait(), WAIT)
        yield listener
    finally:
        await listener.stop()
        await client.aclose()


async def take(subscription: Subscription, count: int) -> list[tuple[int, ev.Event]]:
    items: list[tuple[int, ev.Event]] = []

    async def collect() -> None:
        async for item in subscription:
            items.append((item.event_id, item.event))
            if len(items) == count:
                return

    await asyncio.wait_for(collect(), WAIT)
    return items


async def test_a_ray_shard_pushes_its_commits_to_the_feeds_in_order(
    local_ray: None, database_url: str, redis_url: str, key_prefix: str, pool: asyncpg.Pool
) -> None:
    actor = spawn(92, database_url, redis_url, prefix=key_prefix)
    dispatcher = Dispatcher([actor])
    backfill = RecordingBackfill(pool)
    feeds = Feeds(backfill)
    subscription = feeds.feed(T).subscribe()  # new events only: all through Redis
    try:
        async with listening(redis_url, feeds, key_prefix) as listener:
            outcomes = [await dispatcher.submit(command) for command in setup_commands()]
            outcomes += await asyncio.gather(*(dispatcher.submit(start(n)) for n in range(20)))
            assert all(o.ok for o in outcomes)
            committed = [e for o in outcomes for e in o.events]

            received = await take(subscription, len(committed))

            assert [i for i, _ in received] == list(range(1, len(committed) + 1))
            assert [e for _, e in received] == list(await EventLog(pool).load(T, 0, len(committed)))
            assert sorted(type(e).__name__ for e in committed) == sorted(
                type(e).__name__ for _, e in received
            )
            assert backfill.calls == []  # everything came through Redis, in order
            assert listener.received > 0
        health: dict[str, Any] = await actor.health.remote()
        assert health["publishing"] and health["dropped"] == 0
    finally:
        subscription.close()
        ray.kill(actor, no_restart=True)


async def test_commits_missed_before_subscribing_are_filled_from_the_store(
    local_ray: None, database_url: str, redis_url: str, key_prefix: str, pool: asyncpg.Pool
) -> None:
    actor = spawn(93, database_url, redis_url, prefix=key_prefix)
    dispatcher = Dispatcher([actor])
    try:
        for command in setup_commands():  # nobody listens yet: these pushes are lost
            assert (await dispatcher.submit(command)).ok
        backfill = RecordingBackfill(pool)
        feeds = Feeds(backfill)
        subscription = feeds.feed(T).subscribe(after=0)
        async with listening(redis_url, feeds, key_prefix):
            assert (await dispatcher.submit(start(1))).ok
            last = int(await pool.fetchval("SELECT last_seq FROM tenants WHERE tenant_id = $1", T))

            received = await take(subscription, last)

        assert [i for i, _ in received] == list(range(1, last + 1))
        assert [e for _, e in received] == list(await EventLog(pool).load(T, 0, last))
        assert backfill.calls  # the hole before the first pushed commit came from the store
        subscription.close()
    finally:
        ray.kill(actor, no_restart=True)


def test_commit_messages_round_trip_and_channels_map_to_tenants() -> None:
    event = ev.SkillDefined(tenant=T, at=1.5, skill="billing")
    assert decode_commit(encode_commit(7, [event, event])) == (7, [event, event])
    with pytest.raises(ValueError):
        decode_commit(b"\x93not a commit")
    assert channel_pattern("usher:") == "usher:events:*"
    assert channel_pattern("a*[b]:") == "a\\*\\[b\\]:events:*"
    assert tenant_of("usher:events:acme", "usher:") == "acme"
    assert tenant_of("usher:presence:acme", "usher:") is None
    assert tenant_of("usher:events:", "usher:") is None
