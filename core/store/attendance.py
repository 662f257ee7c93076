"""Agents' attendance and login log, from their status intervals (``agent_sessions``).

A *login* is a run of intervals in any status but offline: it begins with a sign-in (the
first of them, whose client address the log shows) and ends with a sign-out (the offline
interval after it), or is still going. Per agent and period, attendance is the first sign-in
in the period, the last moment online in it (any status but offline; clipped to the period
and to now) and the seconds spent in each status (online, away, break) and in each custom
status (also counted under its base status).

The intervals are read from each agent's last sign-out before the range, so a login that began
before the range still shows its real sign-in.
"""

from __future__ import annotations

import bisect
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


@dataclass(frozen=True, slots=True)
class Attendances:
    by_period: dict[tuple[int, str], Attendance]
    """(period index, agent) -> attendance, for the periods the agent was on in."""
    logins: list[Login]
    """Logins overlapping the range, by sign-in time."""


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
)
SELECT s.agent_id, s.status, s.custom_status, s.started_at, s.ended_at, s.client_address
FROM bound b
JOIN agent_sessions s ON s.tenant_id = $1 AND s.agent_id = b.agent_id
WHERE s.started_at >= b.since AND s.started_at < $3
ORDER BY s.agent_id, s.started_at
"""


async def read(
    pool: asyncpg.Pool | asyncpg.Connection,
    tenant: str,
    start: dt.datetime,
    end: dt.datetime,
    starts: Sequence[dt.datetime],
    now: dt.datetime,
    agents: Sequence[str] | None = None,
) -> Attendances:
    """Attendance per period (``starts``: each period's first instant; the last period ends
    at ``end``) and agent, and the logins overlapping ``[start, end)``; ``agents`` None is
    every agent of the tenant."""
    rows = await pool.fetch(_INTERVALS, tenant, start, end, list(agents) if agents else None)
    bounds = [*starts, end]
    by_period: dict[tuple[int, str], Attendance] = {}
    logins: list[Login] = []
    current: str | None = None
    run: tuple[dt.datetime, str] | None = None  # (sign-in, address) of the open login

    def close(agent: str, at: dt.datetime | None) -> None:
        nonlocal run
        if run is not None and (at is None or at > start) and run[0] < end:
            logins.append(Login(agent, run[0], at, run[1]))
        run = None

    for r in rows:
        agent = r["agent_id"]
        if agent != current:
            if current is not None:
                close(current, None)
            current = agent
        began: dt.datetime = r["started_at"]
        if r["status"] == OFFLINE:
            close(agent, began)
            continue
        signed_in = run is None
        if run is None:
            run = (began, r["client_address"])
        finished = min(r["ended_at"] or now, now, end)
        _spread(by_period, bounds, agent, r["status"], r["custom_status"], began, finished)
        if signed_in and start <= began < end:
            i = bisect.bisect_right(bounds, began) - 1
            entry = by_period.setdefault((i, agent), Attendance())
            if entry.first_sign_in is None or began < entry.first_sign_in:
                entry.first_sign_in = began
    if current is not None:
        close(current, None)
    logins.sort(key=lambda login: (login.sign_in, login.agent_id))
    return Attendances(by_period, logins)


def _spread(
    by_period: dict[tuple[int, str], Attendance],
    bounds: list[dt.datetime],
    agent: str,
    status: str,
    custom: str | None,
    began: dt.datetime,
    finished: dt.datetime,
) -> None:
    """Add ``[began, finished)`` to each period it overlaps."""
    if finished <= bounds[0] or began >= bounds[-1] or finished <= began:
        return
    first = max(0, bisect.bisect_right(bounds, began) - 1)
    for i in range(first, len(bounds) - 1):
        if bounds[i] >= finished:
            break
        low, high = max(began, bounds[i]), min(finished, bounds[i + 1])
        if high <= low:
            continue
        entry = by_period.setdefault((i, agent), Attendance())
        seconds = (high - low).total_seconds()
        entry.seconds[status] = entry.seconds.get(status, 0.0) + seconds
        if custom:
            entry.custom[custom] = entry.custom.get(custom, 0.0) + seconds
        if entry.last_online is None or high > entry.last_online:
            entry.last_online = high


async def logins(
    pool: asyncpg.Pool | asyncpg.Connection,
    tenant: str,
    start: dt.datetime,
    end: dt.datetime,
    now: dt.datetime,
    agents: Sequence[str] | None = None,
) -> list[Login]:
    """The logins overlapping ``[start, end)``, by sign-in time."""
    return (await read(pool, tenant, start, end, [start], now, agents)).logins
