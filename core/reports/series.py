"""A report's series: the one function every reader of reports calls (``run``).

The ReportService, ``usher report`` and the exports all take a ``Report`` from here, and so can
charts and live dashboards later: a ``Report`` is plain values (periods in the tenant's zone,
one ``Row`` per period and per agent, queue or channel, totals over the range), with the
figures read from the rollups (``core.store.rollups``) and, for agents, their attendance and
login log (``core.store.attendance``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import asyncpg

from core.reports import figures as fg
from core.reports.calendar import Grouping, Period, periods, snap, whole_months
from core.reports.query import GROUPED_BY, BadQuery, Kind, ReportQuery, check, rows_for
from core.store import attendance, report_reads, rollups
from core.store.attendance import Attendance, Login

NO_KEY = ""


@dataclass(frozen=True, slots=True)
class Row:
    """One group: ``period`` indexes ``Report.periods`` (None: the whole range); ``key`` is the
    agent, queue or channel (empty for the overview, and for "no queue" in the queues report)."""

    period: int | None
    key: str
    figures: fg.Figures
    attendance: Attendance | None = None


@dataclass(frozen=True, slots=True)
class Report:
    query: ReportQuery
    time_zone: str
    start: dt.datetime
    """The range actually covered: the query's, widened to whole hours or local days."""
    end: dt.datetime
    periods: tuple[Period, ...]
    rows: tuple[Row, ...]
    """Per period (in order), then per key (sorted)."""
    totals: tuple[Row, ...]
    """Per key over the whole range."""
    total: fg.Figures
    names: dict[str, str]
    """Display names of the keys that have one (agents', queues')."""
    logins: tuple[Login, ...] = ()
    """The agents report's login log over the range (when asked for)."""


async def run(
    pool: asyncpg.Pool | asyncpg.Connection,
    tenant: str,
    query: ReportQuery,
    now: dt.datetime | None = None,
    *,
    with_logins: bool = False,
) -> Report:
    """The report (the agents report with its login log when ``with_logins``). ``BadQuery``
    names every bad field (the range, the grouping, filters naming ids the tenant does not
    have); ``LookupError`` for a tenant that does not exist."""
    check(query)
    zone = await report_reads.time_zone(pool, tenant)
    if zone is None:
        raise LookupError(f"tenant {tenant!r} not found")
    f = query.filter
    missing = await report_reads.unknown(
        pool, tenant, f.queues, f.agents, (f.department,) if f.department else ()
    )
    if missing:
        bad = {f"filter.queues[{f.queues.index(q)}]": f"no queue {q!r}" for q in missing.queues}
        for a in missing.agents:
            bad[f"filter.agents[{f.agents.index(a)}]"] = f"no agent {a!r}"
        if missing.departments:
            bad["filter.department"] = f"no department {f.department!r}"
        raise BadQuery(bad)
    start, end = snap(query.start, query.end, query.grouping, zone)
    found = periods(start, end, query.grouping, zone)
    starts = [p.start for p in found]
    wanted = rows_for(query)
    months = whole_months(start, end, zone) if query.grouping is Grouping.MONTH else None
    selection = rollups.Selection(
        tenant=tenant,
        grain=wanted.grain,
        level=wanted.level,
        label=wanted.label,
        start=start,
        end=end,
        queues=f.queues,
        agents=f.agents,
        channels=f.channels,
        agents_only=query.kind is Kind.AGENTS,
        months=months,
    )
    summed = await rollups.sums(pool, selection, starts, GROUPED_BY[query.kind])
    by_group: dict[tuple[int, str], fg.Figures] = {
        (s.period, s.dimensions[0] if s.dimensions else NO_KEY): fg.Figures(s.values)
        for s in summed
    }
    present: dict[tuple[int, str], Attendance] = {}
    logins: tuple[Login, ...] = ()
    if query.kind is Kind.AGENTS:
        moment = now or dt.datetime.now(dt.UTC)
        same = not (f.queues or f.channels or f.tag)  # the rows read hold every status fact
        present = await _attendance(
            pool, tenant, query, start, end, found, moment, months, summed if same else None
        )
        if with_logins:
            agents: list[str] | None = list(f.agents) or None
            if f.department and agents is None:
                agents = await report_reads.department_agents(pool, tenant, f.department)
            if agents != []:
                signed = await attendance.logins(pool, tenant, start, end, moment, agents)
                logins = tuple(signed)
    else:  # agents' status time lands in no queue and no channel: not a conversation figure
        by_group = {k: v for k, v in by_group.items() if v.counts_conversations}
    keys = sorted({k for _, k in by_group} | {k for _, k in present})
    if query.kind is Kind.OVERVIEW:
        keys = [NO_KEY]  # every period, with zeros where nothing happened
    rows: list[Row] = []
    totals: list[Row] = []
    for key in keys:
        series = [by_group.get((i, key)) for i in range(len(found))]
        overall = Attendance() if query.kind is Kind.AGENTS else None
        for i, figures in enumerate(series):
            seen = present.get((i, key))
            if overall is not None and seen is not None:
                overall.add(seen)
            if figures is not None or seen is not None or query.kind is Kind.OVERVIEW:
                rows.append(Row(i, key, figures or fg.ZERO, seen))
        totals.append(Row(None, key, fg.add([s.values for s in series if s]), overall))
    rows.sort(key=lambda r: (r.period or 0, r.key))
    names = await report_reads.names(pool, tenant)
    shown = names.agents if query.kind is Kind.AGENTS else names.queues
    return Report(
        query=query,
        time_zone=zone,
        start=start,
        end=end,
        periods=tuple(found),
        rows=tuple(rows),
        totals=tuple(totals),
        total=fg.add([t.figures.values for t in totals]),
        names={k: shown[k] for k in keys if k in shown}
        if query.kind in (Kind.AGENTS, Kind.QUEUES)
        else {},
        logins=logins,
    )


async def _attendance(
    pool: asyncpg.Pool | asyncpg.Connection,
    tenant: str,
    query: ReportQuery,
    start: dt.datetime,
    end: dt.datetime,
    found: list[Period],
    now: dt.datetime,
    months: tuple[dt.datetime, dt.datetime] | None,
    summed: list[rollups.Summed] | None,
) -> dict[tuple[int, str], Attendance]:
    """Attendance per period and agent: the rollups' status time, sign-ins and last moment
    online (any queue, channel or tag: attendance is not per conversation; ``summed``, the
    agents' rows already read when no such filter applies), the statuses still going, and the
    custom statuses' time."""
    f = query.filter
    starts = [p.start for p in found]
    level, label = ("dept_a", f.department) if f.department else ("a", "")
    grain = "h" if query.grouping is Grouping.HOUR else "d"
    selection = rollups.Selection(
        tenant, grain, level, label, start, end, agents=f.agents, agents_only=True, months=months
    )
    out: dict[tuple[int, str], Attendance] = {}
    if summed is None:
        summed = await rollups.sums(pool, selection, starts, ("agent",))
    for s in summed:
        figures = fg.Figures(s.values)
        seconds = {
            name: figures[f"{name}_ms"] / 1000
            for name in ("online", "away", "break")
            if figures[f"{name}_ms"]
        }
        first, last = figures["first_sign_in_ms"], figures["last_online_ms"]
        if seconds or first or last:
            out[s.period, s.dimensions[0]] = Attendance(
                first_sign_in=_instant(first), last_online=_instant(last), seconds=seconds
            )
    agents: list[str] | None = list(f.agents) or None
    if f.department and agents is None:
        agents = await report_reads.department_agents(pool, tenant, f.department)
    if agents == []:
        return out
    moment = min(now, end)
    for current in await attendance.still_on(pool, tenant, end, agents):
        for i, period in enumerate(found):
            low, high = max(current.since, period.start), min(moment, period.end)
            if high <= low:
                continue
            entry = out.setdefault((i, current.agent_id), Attendance())
            spent = (high - low).total_seconds()
            entry.seconds[current.status] = entry.seconds.get(current.status, 0.0) + spent
            if entry.last_online is None or high > entry.last_online:
                entry.last_online = high
    custom = await attendance.custom_seconds(pool, tenant, start, end, starts, now, agents)
    for key, spent_in in custom.items():
        out.setdefault(key, Attendance()).custom.update(spent_in)
    return out


def _instant(epoch_ms: int) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(epoch_ms / 1000, dt.UTC) if epoch_ms else None
