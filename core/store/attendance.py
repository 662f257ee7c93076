"""Agents' attendance and login log, from their status intervals (``agent_sessions``).

A *login* is a run of intervals in any status but offline: it begins with a sign-in (the
first of them, whose client address the log shows) and ends with a sign-out (the offline
interval after it), or is still going. Per agent and period, attendance is the first sign-in
in the period, the last moment online in it (any status but offline; clipped to the period
and to now) and the seconds spent in each status (online, away, break) and in each custom
status (also counted under its base status).

The time per status, the sign-ins and the last moment online of the intervals that have
ended are in the reports' rollups (``core.reports.rollup`` counts them by the hour when a
status ends); this module reads what they lack: each agent's status still going
(``still_on``), time in custom statuses (``custom_seconds``, from their intervals, which a
partial index finds) and the login log (``logins``, from each agent's intervals since their
last sign-out before the range, so a login that began before it shows its real sign-in).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

import asyncpg

OFFLINE = "offline"


@dataclass(slots=True)
class Attendance:
    """One agent in one period."""

    first_sign_in: dt.datetime | None = None
    last_online: dt.datetime | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    """Per base status (``online``, ``away``, ``break``)."""
    custom: dict[str, float] = field(default_factory=dict)
    """Per custom status name."""

    def add(self, other: Attendance) -> None:
        """Fold another period's attendance into this one (totals over a range)."""
        if other.first_sign_in is not None and (
            self.first_sign_in is None or other.first_sign_in < self.first_sign_in
        ):
            self.first_sign_in = other.first_sign_in
        if other.last_online is not None and (
            self.last_online is None or other.last_online > self.last_online
        ):
            self.last_online = other.last_online
        for mine, theirs in ((self.seconds, other.seconds), (self.custom, other.custom)):
            for key, value in theirs.items():
                mine[key] = mine.get(key, 0.0) + value


@dataclass(frozen=True, slots=True)
class Login:
    agent_id: str
    sign_in: dt.datetime
    sign_out: dt.datetime | None
    """None while the agent is still signed in."""
    client_address: str


_INTERVALS = """
WITH bound AS (
    SELECT a.agent_id, coalesce(o.started_at, '-infinity'::timestamptz) AS since
    FROM agents a
    LEFT JOIN LATERAL (
        SELECT s.started_at FROM agent_sessions s
        WHERE s.tenant_id = a.tenant_id AND s.agent_id = a.agent_id AND s.status = 'offline'
          AND s.started_at <= $2
        ORDER BY s.started_at DESC LIMIT 1
    ) o ON true
    WHERE a.tenant_id = $1 AND ($4::text[] IS NULL OR a.agent_id = ANY($4::text[]))
), intervals AS (
    SELECT s.agent_id, s.status, s.custom_status, s.started_at, s.client_address,
           least(coalesce(s.ended_at, $5), $5) AS ended_at,
           lag(s.status) OVER (PARTITION BY s.agent_id ORDER BY s.started_at) AS previous
    FROM bound b
    JOIN agent_sessions s ON s.tenant_id = $1 AND s.agent_id = b.agent_id
    WHERE s.started_at >= b.since AND s.started_at < $3
)"""

_CUSTOM = """
SELECT p.i, v.agent_id, v.custom_status,
       sum(extract(epoch FROM least(coalesce(v.ended_at, $5), $5, e.ends[p.i])
                              - greatest(v.started_at, e.starts[p.i]))) AS seconds
FROM agent_sessions v
CROSS JOIN (SELECT $6::timestamptz[] AS starts, $7::timestamptz[] AS ends) AS e
CROSS JOIN LATERAL generate_series(
    greatest(width_bucket(v.started_at, e.starts), 1),
    width_bucket(least(coalesce(v.ended_at, $5), $5) - interval '1 microsecond', e.starts)
) AS p(i)
WHERE v.tenant_id = $1 AND v.custom_status IS NOT NULL AND v.status <> 'offline'
  AND v.started_at < $3 AND coalesce(v.ended_at, 'infinity') > $2
  AND ($4::text[] IS NULL OR v.agent_id = ANY($4::text[]))
GROUP BY 1, 2, 3"""

_STILL_ON = """
SELECT agent_id, status, started_at FROM agent_sessions
WHERE tenant_id = $1 AND ended_at IS NULL AND status <> 'offline' AND started_at < $2
  AND ($3::text[] IS NULL OR agent_id = ANY($3::text[]))"""

_LOGINS = (
    _INTERVALS
    + """
, edges AS (
    SELECT agent_id, status, started_at, client_address,
           lead(started_at) OVER (PARTITION BY agent_id ORDER BY started_at) AS next_edge
    FROM intervals
    WHERE (status = 'offline') IS DISTINCT FROM (previous = 'offline')
       OR previous IS NULL
)
SELECT agent_id, started_at AS sign_in, next_edge AS sign_out, client_address
FROM edges
WHERE status <> 'offline' AND started_at < $3 AND coalesce(next_edge, 'infinity') > $2
ORDER BY started_at, agent_id"""
)


async def custom_seconds(
    pool: asyncpg.Pool | asyncpg.Connection,
    tenant: str,
    start: dt.datetime,
    end: dt.datetime,
    starts: Sequence[dt.datetime],
    now: dt.datetime,
    agents: Sequence[str] | None = None,
) -> dict[tuple[int, str], dict[str, float]]:
    """Seconds in each custom status per period (``starts``: each period's first instant; the
    last ends at ``end``) and agent, up to now; ``agents`` None is every agent."""
    ends = [*starts[1:], end]
    rows = await pool.fetch(
        _CUSTOM,
        tenant,
        start,
        end,
        list(agents) if agents else None,
        min(now, end),
        list(starts),
        ends,
    )
    out: dict[tuple[int, str], dict[str, float]] = {}
    for r in rows:
        if r["seconds"] > 0:
            out.setdefault((r["i"] - 1, r["agent_id"]), {})[r["custom_status"]] = float(
                r["seconds"]
            )
    return out


@dataclass(frozen=True, slots=True)
class Current:
    """An agent's status that is still going (not yet in the rollups)."""

    agent_id: str
    status: str
    since: dt.datetime


async def still_on(
    pool: asyncpg.Pool | asyncpg.Connection,
    tenant: str,
    end: dt.datetime,
    agents: Sequence[str] | None = None,
) -> list[Current]:
    """The agents' statuses other than offline still going, begun before ``end``."""
    rows = await pool.fetch(_STILL_ON, tenant, end, list(agents) if agents else None)
    return [Current(r["agent_id"], r["status"], r["started_at"]) for r in rows]


async def logins(
    pool: asyncpg.Pool | asyncpg.Connection,
    tenant: str,
    start: dt.datetime,
    end: dt.datetime,
    now: dt.datetime,
    agents: Sequence[str] | None = None,
) -> list[Login]:
    """The logins overlapping ``[start, end)``, by sign-in time (then agent)."""
    rows = await pool.fetch(
        _LOGINS, tenant, start, end, list(agents) if agents else None, min(now, end)
    )
    return [Login(r["agent_id"], r["sign_in"], r["sign_out"], r["client_address"]) for r in rows]
