"""Web chat visitors' conversations (``conversation_visits``, migration 0027): the visitor
report's counts per page path, referrer host and region. Rows are projected from
``ConversationStarted`` in the event log's transaction (``core.store.projection``)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final

import asyncpg

from core.store.errors import translated_errors


@dataclass(frozen=True, slots=True)
class VisitorCount:
    """Conversations started from one page, referrer host and region."""

    page: str
    referrer_host: str
    region: str
    started: int


@dataclass(frozen=True, slots=True)
class VisitorReport:
    rows: tuple[VisitorCount, ...]
    """Most conversations first (then by page, referrer, region), at most the limit asked."""
    started: int
    """Every visitor conversation started over the range."""


_COUNTS_SQL: Final = """
SELECT page, referrer_host, region, count(*) AS started
FROM conversation_visits
WHERE tenant_id = $1 AND started_at >= $2 AND started_at < $3 AND ($4 = '' OR channel = $4)
GROUP BY page, referrer_host, region
ORDER BY started DESC, page, referrer_host, region"""


async def report(
    pool: asyncpg.Pool | asyncpg.Connection,
    tenant: str,
    start: dt.datetime,
    end: dt.datetime,
    *,
    channel: str = "",
    limit: int = 100,
    timeout: float = 10.0,
) -> VisitorReport:
    """Counts of the conversations started in ``[start, end)`` (on ``channel``, if given)."""
    with translated_errors():
        rows = await pool.fetch(_COUNTS_SQL, tenant, start, end, channel, timeout=timeout)
    counts = [VisitorCount(r["page"], r["referrer_host"], r["region"], r["started"]) for r in rows]
    return VisitorReport(tuple(counts[:limit]), sum(c.started for c in counts))
