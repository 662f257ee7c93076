"""The reports' rows: facts added as events are stored, rolled up later, read as one.

Two tables (migration 0018), whose measure columns are ``core.reports.measures.MEASURES``
(NULL meaning zero):

- ``report_facts``: the fold's deltas (``core.reports.rollup``), one row per local hour and
  queue, agent, channel, tag set and department set. They are added live by ``APPLY`` in the
  event log's append transaction, after the statement whose epoch fence held (a refused
  append adds nothing): a batch touches about one row per conversation it moves, sent as one
  JSON parameter holding only each row's non-zero measures (``payload``). (Inside the fenced
  statement, as one more CTE, the same upsert cost several times more: measured.)
- ``report_rollups``: the same sums per local hour, day and month at each level of detail
  (``all``, ``qc``, ``a``, ``qac``; per day and month also per tag and per department at the
  same four: ``tag_all``, ``tag_qc``, ``tag_a``, ``tag``, and ``dept_...``), which ``compact``
  derives
  from facts: in one statement it deletes the facts of the hours it is given and adds them up
  into these rows. A fact is therefore counted in exactly one of the tables at any time, and a
  late fact for an old hour is simply moved by the next compaction.

``sums`` reads a selection of rollup rows and the matching facts not yet compacted, added up
per period (``width_bucket`` over the periods' start instants, computed in Python in the
tenant's zone) and per the dimensions a report groups by. ``rebuild`` recomputes a tenant's
facts from its event log and compacts them, under the tenant's row lock (appends wait).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import asyncpg
import msgspec

from core.reports import measures as ms
from core.reports.calendar import Buckets
from core.reports.rollup import Deltas, RollupState
from core.store import codec, report_reads

FACT_KEY: Final = ("tenant_id", "bucket", "queue_id", "agent_id", "channel", "tags", "departments")
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
DIMENSIONS: Final = {"queue": "queue_id", "agent": "agent_id", "channel": "channel"}
REBUILD_CHUNK: Final = 20_000
"""Events read and folded per round when rebuilding; their facts are written then."""
WRITE_CHUNK: Final = 2_000
"""Fact rows per upsert statement when rebuilding."""

FOREVER: Final = dt.datetime.max.replace(tzinfo=dt.UTC)
COMPACT_AFTER: Final = dt.timedelta(hours=1, minutes=5)
"""Facts are compacted once their hour has been over five minutes (an hour bucket starts an
hour before it ends): few rows are updated again after compaction, and none need be."""

_json = msgspec.json.Encoder()


def _add(table: str, name: str) -> str:
    """``name`` of an upsert's conflicting row merged with the new value (``ms.sql_merge``)."""
    return f"{name} = {ms.sql_merge(name, f'{table}.{name}', f'EXCLUDED.{name}')}"


# --- writing facts -------------------------------------------------------------------------------


def payload(deltas_by_tenant: dict[str, Deltas]) -> str:
    """The deltas as the upsert's one parameter: a JSON array of fact rows, each with its key
    and only the measures that are not zero (a row counts about ten of some 120)."""
    rows: list[dict[str, Any]] = []
    stamps: dict[float, str] = {}
    names = ms.MEASURES
    for tenant, deltas in deltas_by_tenant.items():
        for (bucket, queue, agent, channel, tags, departments), values in deltas.items():
            stamp = stamps.get(bucket)
            if stamp is None:
                stamp = stamps[bucket] = dt.datetime.fromtimestamp(bucket, dt.UTC).isoformat()
            row: dict[str, Any] = {
                "tenant_id": tenant,
                "bucket": stamp,
                "queue_id": queue,
                "agent_id": agent,
                "channel": channel,
                "tags": tags,
                "departments": departments,
            }
            for i, value in enumerate(values):
                if value:
                    row[names[i]] = value
            rows.append(row)
    return _json.encode(rows).decode()


def _upsert(parameter: int, joined: bool) -> str:
    join = "JOIN claimed c ON c.tenant_id = d.tenant_id" if joined else ""
    updates = ", ".join(_add("report_facts", name) for name in ms.MEASURES)
    return f"""INSERT INTO report_facts
    SELECT d.* FROM jsonb_populate_recordset(NULL::report_facts, ${parameter}::jsonb) AS d
    {join}
    ON CONFLICT ({", ".join(FACT_KEY)}) DO UPDATE SET {updates}"""


APPLY: Final = _upsert(1, joined=False)
MARK: Final = "UPDATE tenants SET reports_through = $2 WHERE tenant_id = $1"
"""Move a tenant's ``reports_through``: its events up to there have their facts stored."""


async def reports_through(pool: asyncpg.Pool | asyncpg.Connection, tenant: str) -> int:
    """The tenant's last event whose facts are stored (0 for none or no tenant)."""
    found = await pool.fetchval("SELECT reports_through FROM tenants WHERE tenant_id = $1", tenant)
    return int(found or 0)


async def apply(conn: asyncpg.Connection, tenant: str, deltas: Deltas) -> int:
    """Add ``deltas`` to the tenant's facts (rebuilds and seeding; live deltas ride with the
    events). Returns the fact rows written."""
    items = list(deltas.items())
    for i in range(0, len(items), WRITE_CHUNK):
        await conn.execute(APPLY, payload({tenant: dict(items[i : i + WRITE_CHUNK])}))
    return len(items)


# --- compacting ----------------------------------------------------------------------------------

_SUMS: Final = ", ".join(ms.sql_aggregate(name) for name in ms.MEASURES)
_LEVEL: Final = """CASE GROUPING(f.queue_id, f.agent_id, f.channel)
        WHEN 7 THEN 'all' WHEN 2 THEN 'qc' WHEN 5 THEN 'a' ELSE 'qac' END"""
_ROLLUP_UPDATES: Final = ", ".join(_add("report_rollups", name) for name in ms.MEASURES)
_INSERT: Final = f"INSERT INTO report_rollups ({', '.join((*KEY_COLUMNS, *ms.MEASURES))})"
_CONFLICT: Final = f"ON CONFLICT ({', '.join(KEY_COLUMNS)}) DO UPDATE SET {_ROLLUP_UPDATES}"


def _levels(name: str, grain: str, bucket: str) -> str:
    """A CTE adding the facts up per ``bucket`` (a column of ``facts``) at the four levels."""
    return f""", {name} AS (
    {_INSERT}
    SELECT $1, '{grain}', {_LEVEL}, '', f.{bucket},
           coalesce(f.queue_id, ''), coalesce(f.agent_id, ''), coalesce(f.channel, ''), {_SUMS}
    FROM facts f
    GROUP BY GROUPING SETS ((f.{bucket}), (f.{bucket}, f.queue_id, f.channel),
                            (f.{bucket}, f.agent_id),
                            (f.{bucket}, f.queue_id, f.agent_id, f.channel))
    HAVING GROUPING(f.queue_id, f.agent_id, f.channel) <> 5 OR f.agent_id <> ''
    {_CONFLICT}
)"""


def _labelled(name: str, grain: str, bucket: str, kind: str, column: str) -> str:
    """A CTE adding the facts up per ``bucket`` and each value of ``column`` (tags,
    departments) at the four levels, named ``{kind}_all``, ``{kind}_qc``, ``{kind}_a`` and
    ``{kind}`` (queue × agent × channel)."""
    return f""", {name} AS (
    {_INSERT}
    SELECT $1, '{grain}',
           '{kind}' || CASE GROUPING(f.queue_id, f.agent_id, f.channel)
               WHEN 7 THEN '_all' WHEN 2 THEN '_qc' WHEN 5 THEN '_a' ELSE '' END,
           t.label, f.{bucket},
           coalesce(f.queue_id, ''), coalesce(f.agent_id, ''), coalesce(f.channel, ''), {_SUMS}
    FROM facts f CROSS JOIN LATERAL unnest(f.{column}) AS t(label)
    GROUP BY GROUPING SETS ((t.label, f.{bucket}), (t.label, f.{bucket}, f.queue_id, f.channel),
                            (t.label, f.{bucket}, f.agent_id),
                            (t.label, f.{bucket}, f.queue_id, f.agent_id, f.channel))
    HAVING GROUPING(f.queue_id, f.agent_id, f.channel) <> 5 OR f.agent_id <> ''
    {_CONFLICT}
)"""


_COMPACT: Final = (
    """
WITH moved AS (
    DELETE FROM report_facts
    WHERE tenant_id = $1 AND bucket = ANY($2::timestamptz[])
    RETURNING *
), facts AS (
    SELECT m.*, d.day, d.month FROM moved m
    JOIN unnest($2::timestamptz[], $3::timestamptz[], $4::timestamptz[]) AS d(hour, day, month)
      ON d.hour = m.bucket
)"""
    + _levels("by_hour", "h", "bucket")
    + _levels("by_day", "d", "day")
    + _levels("by_month", "m", "month")
    + _labelled("tag_days", "d", "day", "tag", "tags")
    + _labelled("tag_months", "m", "month", "tag", "tags")
    + _labelled("department_days", "d", "day", "dept", "departments")
    + _labelled("department_months", "m", "month", "dept", "departments")
    + "\nSELECT count(*) FROM moved"
)


async def compact(
    conn: asyncpg.Connection, tenant: str, zone_name: str, before: dt.datetime
) -> int:
    """Move the tenant's facts of hours starting before ``before`` into rollup rows (hours
    and days of ``zone_name``); how many fact rows moved. Facts that arrive meanwhile stay for
    the next round."""
    hours = await conn.fetch(
        "SELECT DISTINCT bucket FROM report_facts WHERE tenant_id = $1 AND bucket < $2",
        tenant,
        before,
    )
    if not hours:
        return 0
    buckets = Buckets(zone_name)
    starts = [r["bucket"] for r in hours]
    local = [buckets.of(h.timestamp()) for h in starts]
    days = [dt.datetime.fromtimestamp(b[1], dt.UTC) for b in local]
    months = [dt.datetime.fromtimestamp(b[2], dt.UTC) for b in local]
    moved: int = await conn.fetchval(_COMPACT, tenant, starts, days, months)
    return moved


async def tenants_with_facts(pool: asyncpg.Pool, before: dt.datetime) -> list[str]:
    """Tenants holding facts of hours starting before ``before``."""
    rows = await pool.fetch("SELECT DISTINCT tenant_id FROM report_facts WHERE bucket < $1", before)
    return [r["tenant_id"] for r in rows]


async def compact_due(pool: asyncpg.Pool, now: dt.datetime | None = None) -> int:
    """Compact every tenant's facts of the hours that ended ``COMPACT_AFTER`` ago or more, in
    its time zone (a transaction per tenant); how many fact rows moved."""
    before = (now or dt.datetime.now(dt.UTC)) - COMPACT_AFTER
    moved = 0
    for tenant in await tenants_with_facts(pool, before):
        zone = await report_reads.time_zone(pool, tenant) or "UTC"
        async with pool.acquire() as conn, conn.transaction():
            moved += await compact(conn, tenant, zone, before)
    return moved


# --- reading -------------------------------------------------------------------------------------


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
    months: tuple[dt.datetime, dt.datetime] | None = None
    """Whole local months inside the range, answered by monthly rows instead of daily ones
    (``grain`` is then ``d``)."""


@dataclass(frozen=True, slots=True)
class Summed:
    """One group's sums: its period's index (into the starts given), its dimension values."""

    period: int
    dimensions: tuple[str, ...]
    values: tuple[int, ...]


_MEASURE_LIST: Final = ", ".join(ms.MEASURES)
_TOTALS: Final = ", ".join(f"coalesce({ms.sql_aggregate(name)}, 0)::bigint" for name in ms.MEASURES)


async def sums(
    pool: asyncpg.Pool | asyncpg.Connection,
    selection: Selection,
    starts: Sequence[dt.datetime],
    group_by: Sequence[str] = (),
) -> list[Summed]:
    """The rows of ``selection`` (rollups, and the facts not yet compacted) added up per
    period (``starts``: each period's first instant, ascending) and per the dimensions in
    ``group_by`` (``queue``, ``agent``, ``channel``)."""
    args: list[Any] = [selection.tenant, selection.start, selection.end, list(starts)]
    filters: list[str] = []
    for values, column in (
        (selection.queues, "queue_id"),
        (selection.agents, "agent_id"),
        (selection.channels, "channel"),
    ):
        if values:
            args.append(list(values))
            filters.append(f"{column} = ANY(${len(args)}::text[])")
    if selection.agents_only or selection.level in ("a", "tag_a", "dept_a"):
        filters.append("agent_id <> ''")
    facts = list(filters)
    if selection.level.startswith(("tag", "dept")):
        args.append(selection.label)
        column = "tags" if selection.level.startswith("tag") else "departments"
        facts.append(f"${len(args)} = ANY({column})")
    args += [selection.grain, selection.level, selection.label]
    grain, level, label = (f"${len(args) - 2}", f"${len(args) - 1}", f"${len(args)}")
    grains = f"grain = {grain}"
    if selection.months is not None:
        args += list(selection.months)
        first, last = f"${len(args) - 1}", f"${len(args)}"
        grains = (
            f"((grain = {grain} AND (bucket < {first} OR bucket >= {last}))"
            f" OR (grain = 'm' AND bucket >= {first} AND bucket < {last}))"
        )
    dims = [DIMENSIONS[d] for d in group_by]
    columns = ", ".join(["bucket", *dims, _MEASURE_LIST])
    where = " ".join(f"AND {f}" for f in filters)
    where_facts = " ".join(f"AND {f}" for f in facts)
    grouped = ", ".join(["1", *(str(i + 2) for i in range(len(dims)))])
    sql = f"""
    SELECT {", ".join(["width_bucket(bucket, $4::timestamptz[]) AS period", *dims, _TOTALS])}
    FROM (
        SELECT {columns} FROM report_rollups
        WHERE tenant_id = $1 AND {grains} AND level = {level} AND label = {label}
          AND bucket >= $2 AND bucket < $3 {where}
        UNION ALL
        SELECT {columns} FROM report_facts
        WHERE tenant_id = $1 AND bucket >= $2 AND bucket < $3 {where_facts}
    ) AS rows
    GROUP BY {grouped} ORDER BY {grouped}"""
    rows = await pool.fetch(sql, *args)
    width = len(dims)
    found = []
    for r in rows:
        cells = tuple(r)
        found.append(Summed(cells[0] - 1, cells[1 : 1 + width], cells[1 + width :]))
    return found


# --- rebuilding ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rebuilt:
    tenant: str
    events: int
    rows: int
    """Rollup rows written."""
    time_zone: str


async def rebuild(db: asyncpg.Pool | asyncpg.Connection, tenant: str) -> Rebuilt:
    """Recompute the tenant's facts and rollups from its whole event log, in one transaction
    that holds the tenant's row (the shard's appends wait until it commits), and move the
    tenant to a new epoch: its shard's next append is refused and the shard loads the tenant
    again (a command in flight answers UNAVAILABLE once). ``LookupError`` for a tenant that
    does not exist."""
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
        await conn.execute("DELETE FROM report_facts WHERE tenant_id = $1", tenant)
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
            await compact(conn, tenant, state.zone_name, FOREVER)
        # the facts are stored up to the last event; a new epoch makes the tenant's shard load
        # it again (its next append is refused), dropping the facts it held
        await conn.execute(
            "UPDATE tenants SET reports_through = $2, epoch = epoch + 1 WHERE tenant_id = $1",
            tenant,
            last,
        )
        written = await conn.fetchval(
            "SELECT count(*) FROM report_rollups WHERE tenant_id = $1", tenant
        )
    return Rebuilt(tenant, events, int(written), state.zone_name)
