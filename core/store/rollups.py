"""The reports' rollup rows (``report_rollups``): applying deltas, summing rows, rebuilding.

Deltas (``core.reports.rollup``) are added with upserts: live, as part of the statement that
stores the events they count (``rollups_cte``, joined to the tenants whose epoch fence held, so
a refused append adds nothing); when rebuilding, with ``apply``. Each row's measures travel as
one row of a two-dimensional ``bigint`` array, in ``core.reports.measures.MEASURES`` order.

``sums`` adds rows up per period (``width_bucket`` over the periods' start instants, computed in
Python in the tenant's zone) and per the dimensions a report groups by. ``rebuild`` recomputes
a tenant's rows from its event log under the tenant's row lock, so appends wait and the rows
are exactly the fold of the events up to the tenant's last sequence.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import asyncpg

from core.reports import measures as ms
from core.reports.rollup import Deltas, RollupState
from core.store import codec

KEY_COLUMNS: Final = (
    "tenant_id",
    "grain",
    "level",
    "label",
    "bucket",
    "queue_id",
    "agent_id",
    "channel",
)
_KEY_TYPES: Final = ("text", "text", "text", "text", "timestamptz", "text", "text", "text")
DIMENSIONS: Final = {"queue": "queue_id", "agent": "agent_id", "channel": "channel"}
REBUILD_CHUNK: Final = 20_000
"""Events read and folded per round when rebuilding; their deltas are written then."""
WRITE_CHUNK: Final = 2_000
"""Rows per upsert statement when rebuilding."""

Columns = list[list[Any]]


def columns(tenant: str, deltas: Deltas) -> Columns:
    """The key columns and the measure matrix of ``deltas`` (the last entry), for the upsert."""
    keys: list[list[Any]] = [[] for _ in KEY_COLUMNS]
    matrix: list[list[int]] = []
    for (grain, level, label, bucket, queue, agent, channel), row in deltas.items():
        for column, value in zip(
            keys,
            (
                tenant,
                grain,
                level,
                label,
                dt.datetime.fromtimestamp(bucket, dt.UTC),
                queue,
                agent,
                channel,
            ),
            strict=True,
        ):
            column.append(value)
        matrix.append(row)
    return [*keys, matrix]


def columns_of(deltas_by_tenant: dict[str, Deltas]) -> Columns:
    """``columns`` of several tenants' deltas, concatenated."""
    out: Columns = [[] for _ in range(len(KEY_COLUMNS) + 1)]
    for tenant, deltas in deltas_by_tenant.items():
        for mine, theirs in zip(out, columns(tenant, deltas), strict=True):
            mine.extend(theirs)
    return out


PARAMETERS: Final = len(KEY_COLUMNS) + 1


def _upsert(first: int, joined: bool) -> str:
    keys = ", ".join(f"${first + i}::{t}[]" for i, t in enumerate(_KEY_TYPES))
    matrix = f"${first + len(KEY_COLUMNS)}::bigint[]"
    measures = ", ".join(f"m.v[k.n::int][{i + 1}]" for i in range(ms.WIDTH))
    join = "JOIN claimed c ON c.tenant_id = k.tenant_id" if joined else ""
    updates = ", ".join(f"{name} = report_rollups.{name} + EXCLUDED.{name}" for name in ms.MEASURES)
    return f"""INSERT INTO report_rollups ({", ".join(KEY_COLUMNS)}, {", ".join(ms.MEASURES)})
    SELECT {", ".join(f"k.{c}" for c in KEY_COLUMNS)}, {measures}
    FROM unnest({keys}) WITH ORDINALITY AS k({", ".join(KEY_COLUMNS)}, n)
    CROSS JOIN (SELECT {matrix} AS v) AS m
    {join}
    ON CONFLICT ({", ".join(KEY_COLUMNS)}) DO UPDATE SET {updates}"""


@functools.cache
def rollups_cte(first: int) -> str:
    """The data-modifying CTE adding deltas inside the event log's append statement, its
    ``PARAMETERS`` parameters numbered from ``first`` (``columns_of`` gives them)."""
    return f""", rollups_written AS (
    {_upsert(first, joined=True)}
)"""


_APPLY: Final = _upsert(1, joined=False)


async def apply(conn: asyncpg.Connection, tenant: str, deltas: Deltas) -> int:
    """Add ``deltas`` to the tenant's rows (rebuilds; live deltas ride with the events).
    Returns the rows written."""
    items = list(deltas.items())
    for i in range(0, len(items), WRITE_CHUNK):
        await conn.execute(_APPLY, *columns(tenant, dict(items[i : i + WRITE_CHUNK])))
    return len(items)


# --- reading -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Selection:
    """Which rows to add up: a level (and label), a grain, a range of buckets, filters."""

    tenant: str
    grain: str
    level: str
    label: str
    start: dt.datetime
    end: dt.datetime
    queues: tuple[str, ...] = ()
    agents: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    agents_only: bool = False
    """Leave out facts with no agent (the agents report)."""


@dataclass(frozen=True, slots=True)
class Summed:
    """One group's sums: its period's index (into the starts given), its dimension values."""

    period: int
    dimensions: tuple[str, ...]
    values: tuple[int, ...]


_SUMS: Final = ", ".join(f"sum({name})::bigint" for name in ms.MEASURES)


async def sums(
    pool: asyncpg.Pool | asyncpg.Connection,
    selection: Selection,
    starts: Sequence[dt.datetime],
    group_by: Sequence[str] = (),
) -> list[Summed]:
    """The rows of ``selection`` added up per period (``starts``: each period's first instant,
    ascending) and per the dimensions in ``group_by`` (``queue``, ``agent``, ``channel``)."""
    where = [
        "tenant_id = $1",
        "grain = $2",
        "level = $3",
        "label = $4",
        "bucket >= $5",
        "bucket < $6",
    ]
    args: list[Any] = [
        selection.tenant,
        selection.grain,
        selection.level,
        selection.label,
        selection.start,
        selection.end,
        list(starts),
    ]
    for values, column in (
        (selection.queues, "queue_id"),
        (selection.agents, "agent_id"),
        (selection.channels, "channel"),
    ):
        if values:
            args.append(list(values))
            where.append(f"{column} = ANY(${len(args)}::text[])")
    if selection.agents_only:
        where.append("agent_id <> ''")
    dims = [DIMENSIONS[d] for d in group_by]
    selected = ", ".join(["width_bucket(bucket, $7::timestamptz[]) AS period", *dims, _SUMS])
    grouped = ", ".join(["1", *(str(i + 2) for i in range(len(dims)))])
    sql = (
        f"SELECT {selected} FROM report_rollups WHERE {' AND '.join(where)}"
        f" GROUP BY {grouped} ORDER BY {grouped}"
    )
    rows = await pool.fetch(sql, *args)
    width = len(dims)
    return [
        Summed(
            period=r[0] - 1,
            dimensions=tuple(r[1 + i] for i in range(width)),
            values=tuple(r[1 + width + i] for i in range(ms.WIDTH)),
        )
        for r in rows
    ]


# --- rebuilding --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rebuilt:
    tenant: str
    events: int
    rows: int
    """Distinct rows written."""
    time_zone: str


async def rebuild(db: asyncpg.Pool | asyncpg.Connection, tenant: str) -> Rebuilt:
    """Recompute the tenant's rollups from its whole event log, in one transaction that holds
    the tenant's row (the shard's appends wait until it commits). ``LookupError`` for a tenant
    that does not exist."""
    if isinstance(db, asyncpg.Pool):
        async with db.acquire() as conn:
            return await _rebuild(conn, tenant)
    return await _rebuild(db, tenant)


async def _rebuild(conn: asyncpg.Connection, tenant: str) -> Rebuilt:
    state = RollupState(tenant)
    events = 0
    async with conn.transaction():
        last = await conn.fetchval(
            "SELECT last_seq FROM tenants WHERE tenant_id = $1 FOR UPDATE", tenant
        )
        if last is None:
            raise LookupError(f"tenant {tenant!r} not found")
        await conn.execute("DELETE FROM report_rollups WHERE tenant_id = $1", tenant)
        after = 0
        while after < last:
            records = await conn.fetch(
                "SELECT seq, type, payload FROM events WHERE tenant_id = $1 AND seq > $2"
                " AND seq <= $3 ORDER BY seq LIMIT $4",
                tenant,
                after,
                last,
                REBUILD_CHUNK,
            )
            if not records:
                break
            after = records[-1]["seq"]
            events += len(records)
            deltas = state.fold(codec.decode(r["type"], r["payload"]) for r in records)
            await apply(conn, tenant, deltas)
        written = await conn.fetchval(
            "SELECT count(*) FROM report_rollups WHERE tenant_id = $1", tenant
        )
    return Rebuilt(tenant, events, int(written), state.zone_name)
