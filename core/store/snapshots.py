"""Snapshots of a tenant's router, so that a rebuild replays only the events after one.

The state is pickled: it is a graph of the engine's own objects (agents, groups, heaps), with
the reports' fold at the same event (``core.reports.rollup.RollupState``), written and read
only by Usher's own processes through this module. ``FORMAT`` changes whenever the
engine's state classes do; snapshots of another format are ignored and the log is replayed whole.
"""

from __future__ import annotations

import pickle
import time

import asyncpg

from core.reports.rollup import RollupState
from core.routing import Engine
from core.routing import events as ev
from core.routing.router import Router
from core.store.errors import StaleEpoch
from core.store.eventlog import EventLog

FORMAT = 11
KEEP = 2
"""Snapshots kept per tenant (the newest ones)."""


def dump(router: Router, rollups: RollupState | None = None) -> bytes:
    """The router's state (and the reports' fold at the same event) as ``save`` stores it."""
    return pickle.dumps((router, rollups), protocol=pickle.HIGHEST_PROTOCOL)


async def save(pool: asyncpg.Pool, tenant: str, state: bytes, seq: int, epoch: int) -> None:
    """Store ``state`` (``dump`` of the tenant's router) as the state after event ``seq``; it
    must be exactly that (every event up to ``seq`` applied, nothing after). Refused for a
    stale ``epoch``."""
    async with pool.acquire() as conn, conn.transaction():
        inserted = await conn.fetchval(
            """INSERT INTO snapshots (tenant_id, seq, format, state)
               SELECT $1, $2, $3, $4 FROM tenants WHERE tenant_id = $1 AND epoch = $5
               ON CONFLICT (tenant_id, seq) DO UPDATE SET state = EXCLUDED.state
               RETURNING seq""",
            tenant,
            seq,
            FORMAT,
            state,
            epoch,
        )
        if inserted is None:
            raise StaleEpoch(f"tenant {tenant!r}: epoch {epoch} is not current")
        await conn.execute(
            """DELETE FROM snapshots WHERE tenant_id = $1 AND seq < (
                   SELECT min(seq) FROM (SELECT seq FROM snapshots WHERE tenant_id = $1
                                         ORDER BY seq DESC LIMIT $2) AS newest)""",
            tenant,
            KEEP,
        )


async def latest(pool: asyncpg.Pool, tenant: str) -> tuple[int, Router, RollupState | None] | None:
    """The newest snapshot of this format, as (seq, router, rollups), or None."""
    row = await pool.fetchrow(
        "SELECT seq, state FROM snapshots WHERE tenant_id = $1 AND format = $2"
        " ORDER BY seq DESC LIMIT 1",
        tenant,
        FORMAT,
    )
    if row is None:
        return None
    router, rollups = pickle.loads(row["state"])
    return row["seq"], router, rollups


async def rebuild(
    engine: Engine,
    log: EventLog,
    pool: asyncpg.Pool,
    tenant: str,
    rollups: RollupState | None = None,
    reports_through: int = 0,
) -> int:
    """Load the tenant into ``engine``: its newest snapshot, then the events after it.
    Returns the sequence of the last event applied (0 for a tenant with no history).

    With ``rollups`` (a new state), the reports' fold is brought to the same event, holding
    (``pending``) the deltas of the events after ``reports_through`` (the last event whose
    facts are stored): restored from the snapshot, whose pending deltas are those after the
    mark when it was taken -- the mark has not moved since unless it passed the snapshot
    (then they are stored) -- or folded over the log."""
    found = await latest(pool, tenant)
    after = 0
    if found is not None:
        after, router, saved = found
        engine.restore(router)
        if rollups is not None:
            if saved is not None:
                rollups.restore(saved)
                if reports_through >= after:
                    rollups.take()  # written since the snapshot
            else:
                _catch_up(rollups, await log.load(tenant, up_to=after), 0, reports_through)
    events = await log.load(tenant, after=after)
    engine.replay(events)
    if rollups is not None:
        _catch_up(rollups, events, after, reports_through)
    return after + len(events)


def _catch_up(
    rollups: RollupState, events: list[ev.Event], after: int, reports_through: int
) -> None:
    """Follow the events numbered ``after + 1``... up to the mark; fold and hold the rest."""
    stored = max(0, min(len(events), reports_through - after))
    rollups.follow(events[:stored])
    rollups.hold(rollups.fold(events[stored:]), time.monotonic())
