"""A shard publishes its commits in execution order even when a batch between them commits
nothing (a refused command): the tenant's next batch waits for the ones staged ahead of it."""

from __future__ import annotations

import asyncio
import itertools

import asyncpg

from core.routing import ManualClock
from core.routing import commands as c
from core.routing import model as m
from core.runtime.shard import Shard
from tests.integration.test_shard import T, recording, setup_commands


def message(n: int) -> c.Command:
    return c.ReceiveMessage(
        tenant=T,
        conversation_id=f"c{n}",
        channel="line",
        customer_id=f"k{n}",
        queue_id="q",
        message=m.MessageBody(text="hi", provider_message_id=f"p{n}"),
    )


async def test_commits_are_published_in_order_around_a_refused_batch(pool: asyncpg.Pool) -> None:
    seen: list[tuple[int, int]] = []
    shard = Shard("s0", pool, clock=ManualClock(), on_commit=recording(seen))
    try:
        for command in setup_commands():
            assert (await shard.submit([command]))[0].ok
        for round_ in range(20):
            base = 10 * round_
            refused = c.RecordMessage(
                tenant=T,
                conversation_id="nope",
                sender=m.Sender.CUSTOMER,
                message=m.MessageBody(text="x"),
            )
            outcomes = await asyncio.gather(
                shard.submit([message(base + 1)]),
                shard.submit([refused]),
                shard.submit([message(base + 2)]),
                shard.submit([refused]),
                shard.submit([message(base + 3)]),
            )
            assert [o[0].ok for o in outcomes] == [True, False, True, False, True]
        firsts = [first for first, _ in seen]
        assert firsts == sorted(firsts)
        for (first, count), (following, _) in itertools.pairwise(seen):
            assert following == first + count, "no hole, no overlap"
    finally:
        await shard.stop()
