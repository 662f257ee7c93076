"""An ``ApiContext`` over one in-process shard: no Ray. For tests and ``usher serve --local``.

The shard's commits are published straight into the feeds (in commit order, so the feeds see
no holes); a feed that must fill a hole reads it from the event log. ``submit`` runs one command
as a batch of one: fine for one process, where the shard's lock serializes commands anyway.
Commands and events are counted in the Prometheus metrics (``core.api.metrics``).
"""

from __future__ import annotations

from collections.abc import Sequence

from core.api.auth import call_deadline
from core.api.context import ApiContext, within_deadline
from core.api.metrics import CountingFeeds, metered
from core.routing import commands as c
from core.routing import events as ev
from core.routing.clock import Clock
from core.routing.effects import Effect
from core.runtime.shard import Outcome, Shard
from core.store.connect import Connections
from core.store.customers import Customers
from core.store.eventlog import EventLog
from core.store.records import Records


def build_local_context(
    connections: Connections, *, clock: Clock | None = None, name: str = "local"
) -> tuple[ApiContext, Shard]:
    """The context and its shard. The caller starts the shard's timers (``shard.start()``) and
    stops it (``await shard.stop()``) when done; the connections stay the caller's to close."""
    log = EventLog(connections.pg)
    feeds = CountingFeeds(log.load)

    async def committed(
        tenant: str, first_id: int, events: Sequence[ev.Event], effects: Sequence[Effect]
    ) -> None:
        await feeds.publish(tenant, first_id, events)

    shard = Shard(name, connections.pg, clock=clock, on_commit=committed, owns=lambda tenant: True)

    async def submit(command: c.Command) -> Outcome:
        (outcome,) = await shard.submit([command])
        return outcome

    context = ApiContext(
        submit=within_deadline(metered(submit), call_deadline),
        feeds=feeds,
        pool=connections.pg,
        redis=connections.redis,
        records=Records(connections.pg),
        customers=Customers(connections.pg),
        live=shard.live,
    )
    return context, shard
