"""What QR codes brought: scans of their tracking links and conversations started from them
(tables ``qr_code_scans``, ``qr_code_visitors``, ``qr_scan_salts``; migration 0022).

- **Scans** are counted per code and day of the tenant's time zone when the tracking link
  redirects (``record_scan``, one statement): every scan, and the unique ones, a visitor being
  ``core.qr.visits.visitor`` (a hash salted with the day's random salt: no address is stored).
  Each new day's salt drops the salts and visitors older than ``KEEP_DAYS`` days, after which a
  hash can no longer be tied to an address.
- **Conversations** are counted when read, by their tie to the code: a conversation created
  since the code whose first customer message, trimmed and lower-cased, equals the code's
  trigger phrase (the WhatsApp or LINE prefill), or which was opened with the code's
  reference (a web chat page's ``ref=``: ``conversations.reference``, migration 0026). The
  messages are found through the content's trigram index where PostgreSQL has ``pg_trgm``
  (migration 0002), the references through ``conversations_reference``.
"""

from __future__ import annotations

import datetime as dt
import secrets
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import asyncpg

from core.store.errors import translated_errors
from core.store.report_reads import time_zone

KEEP_DAYS: Final = 2
"""Days a salt and its visitors are kept (the tenants' zones straddle a UTC day)."""
SALT_BYTES: Final = 32


@dataclass(frozen=True, slots=True)
class Counts:
    scans: int = 0
    unique_scans: int = 0
    conversations: int = 0


@dataclass(frozen=True, slots=True)
class Day:
    day: dt.date
    counts: Counts


async def tenant_zone(pool: asyncpg.Pool | asyncpg.Connection, tenant: str) -> str:
    """The IANA zone the tenant's days are counted in (as reports count them); one this
    process does not know: UTC."""
    name = await time_zone(pool, tenant) or "UTC"
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return "UTC"
    return name


async def today(pool: asyncpg.Pool, tenant: str, now: dt.datetime | None = None) -> dt.date:
    """The tenant's date at ``now`` (default: the present)."""
    zone = zoneinfo.ZoneInfo(await tenant_zone(pool, tenant))
    return (now or dt.datetime.now(dt.UTC)).astimezone(zone).date()


class Salts:
    """The day's salt of visitors' hashes, made on first use and cached in the process."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._known: dict[dt.date, bytes] = {}

    async def of(self, day: dt.date) -> bytes:
        found = self._known.get(day)
        if found is not None:
            return found
        with translated_errors():
            async with self._pool.acquire() as conn, conn.transaction():
                made = await conn.fetchval(
                    "INSERT INTO qr_scan_salts (day, salt) VALUES ($1, $2)"
                    " ON CONFLICT DO NOTHING RETURNING true",
                    day,
                    secrets.token_bytes(SALT_BYTES),
                )
                if made:  # a new day: forget the old ones
                    oldest = day - dt.timedelta(days=KEEP_DAYS)
                    await conn.execute("DELETE FROM qr_scan_salts WHERE day < $1", oldest)
                    await conn.execute("DELETE FROM qr_code_visitors WHERE day < $1", oldest)
                salt: bytes = await conn.fetchval(
                    "SELECT salt FROM qr_scan_salts WHERE day = $1", day
                )
        if len(self._known) > 2 * KEEP_DAYS:
            self._known.clear()
        self._known[day] = salt
        return salt


async def record_scan(
    pool: asyncpg.Pool, tenant: str, code: str, day: dt.date, visitor: bytes
) -> bool:
    """Count one scan of ``code`` on ``day``; True if ``visitor`` is new that day."""
    with translated_errors():
        unique: int = await pool.fetchval(
            """WITH seen AS (
                   INSERT INTO qr_code_visitors (tenant_id, code, day, visitor)
                   VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING 1
               ), counted AS (
                   INSERT INTO qr_code_scans AS s (tenant_id, code, day, scans, unique_scans)
                   SELECT $1, $2, $3, 1, count(*) FROM seen
                   ON CONFLICT (tenant_id, code, day) DO UPDATE
                   SET scans = s.scans + 1, unique_scans = s.unique_scans + excluded.unique_scans
               )
               SELECT count(*) FROM seen""",
            tenant,
            code,
            day,
            visitor,
        )
    return unique == 1


_TIED: Final = """
    SELECT q.code, m.conversation_id, c.created_at
    FROM qr_codes q
    JOIN messages m
      ON m.tenant_id = q.tenant_id AND m.sender = 'customer'
     AND m.content ILIKE '%' || replace(replace(replace(q.phrase_key, '\\', '\\\\'),
                                                '%', '\\%'), '_', '\\_') || '%'
     AND lower(btrim(m.content, E' \\t\\r\\n')) = q.phrase_key
    JOIN conversations c
      ON c.tenant_id = m.tenant_id AND c.conversation_id = m.conversation_id
     AND c.created_at >= q.created_at
    WHERE q.tenant_id = $1 AND q.code = ANY($2::text[]) AND q.phrase_key <> ''
      AND NOT EXISTS (
          SELECT 1 FROM messages e
          WHERE e.tenant_id = m.tenant_id AND e.conversation_id = m.conversation_id
            AND e.sender = 'customer' AND e.message_id < m.message_id)
    UNION ALL
    SELECT q.code, c.conversation_id, c.created_at
    FROM qr_codes q
    JOIN conversations c
      ON c.tenant_id = q.tenant_id AND c.reference = q.reference
     AND c.created_at >= q.created_at
    WHERE q.tenant_id = $1 AND q.code = ANY($2::text[]) AND q.reference <> ''"""
"""(code, conversation, its creation) of every conversation tied to one of the codes ``$2``:
by its first customer message, or by its reference (counted distinct by the readers)."""


async def totals(pool: asyncpg.Pool, tenant: str, codes: Sequence[str]) -> dict[str, Counts]:
    """Each code's counts since it was created (codes without any: zeros)."""
    if not codes:
        return {}
    with translated_errors():
        scans = await pool.fetch(
            "SELECT code, sum(scans) AS scans, sum(unique_scans) AS unique_scans"
            " FROM qr_code_scans WHERE tenant_id = $1 AND code = ANY($2::text[]) GROUP BY code",
            tenant,
            list(codes),
        )
        talks = await pool.fetch(
            f"SELECT code, count(DISTINCT conversation_id) AS n FROM ({_TIED}) t GROUP BY code",
            tenant,
            list(codes),
        )
    scanned = {r["code"]: (int(r["scans"]), int(r["unique_scans"])) for r in scans}
    talked = {r["code"]: int(r["n"]) for r in talks}
    return {
        code: Counts(*scanned.get(code, (0, 0)), conversations=talked.get(code, 0))
        for code in codes
    }


async def per_day(
    pool: asyncpg.Pool, tenant: str, code: str, first: dt.date, last: dt.date
) -> list[Day]:
    """The code's counts on each day from ``first`` to ``last`` (inclusive) of the tenant's
    zone, oldest first, days without any as zeros."""
    zone = await tenant_zone(pool, tenant)
    with translated_errors():
        scans = await pool.fetch(
            "SELECT day, scans, unique_scans FROM qr_code_scans"
            " WHERE tenant_id = $1 AND code = $2 AND day BETWEEN $3 AND $4",
            tenant,
            code,
            first,
            last,
        )
        talks = await pool.fetch(
            "SELECT (created_at AT TIME ZONE $5)::date AS day,"
            f" count(DISTINCT conversation_id) AS n FROM ({_TIED}) t"
            " WHERE (created_at AT TIME ZONE $5)::date BETWEEN $3 AND $4 GROUP BY 1",
            tenant,
            [code],
            first,
            last,
            zone,
        )
    scanned = {r["day"]: (int(r["scans"]), int(r["unique_scans"])) for r in scans}
    talked = {r["day"]: int(r["n"]) for r in talks}
    days = []
    day = first
    while day <= last:
        days.append(Day(day, Counts(*scanned.get(day, (0, 0)), conversations=talked.get(day, 0))))
        day += dt.timedelta(days=1)
    return days
