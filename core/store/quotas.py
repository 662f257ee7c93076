"""Per-tenant quotas: every limit an installation sets a tenant, in one place (migration 0022).

Limits are the installation's, not the tenant's: ``set_limit`` is called by ``usher admin
quota set`` (straight on the database); tenants only read them (``QuotaService.GetQuotas``).
No row in ``tenant_quotas``: unlimited.

Two kinds of metric (``METRICS``):

- **counted** (``customers``, ``customer_groups``, ``bots``, ``qr_codes``): what is in use is a
  count of the tenant's live rows, taken when asked. Deleting frees room. Usage above a limit
  lowered later stays; only additions are refused.
- **monthly** (``sms_per_month``, ``broadcast_recipients``): what was consumed in the calendar
  month of the tenant's time zone (``TenantSettings.time_zone``, else its default queue's, else
  UTC: the zone reports count days in), kept in ``quota_consumption``. A reservation consumes.

``reserve(conn, tenant, metric, amount)`` runs inside the caller's transaction, before the
caller's write: it holds a per-tenant-and-metric advisory lock until that transaction ends, so
racing writers count in turn, and raises ``QuotaExceeded`` (nothing consumed) when ``amount``
more would pass the limit. A refusal of ``amount`` is whole: a broadcast of 500 recipients with
400 left is refused, not cut.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, TypeAlias

import asyncpg

from core.store.errors import InvalidInput, StoreError, UnknownTenant, translated_errors
from core.store.report_reads import time_zone

Db: TypeAlias = asyncpg.Pool | asyncpg.Connection

COUNTED: Final[dict[str, str]] = {
    "customers": "SELECT count(*) FROM customers WHERE tenant_id = $1"
    " AND deleted_at IS NULL AND merged_into IS NULL",
    "customer_groups": "SELECT count(*) FROM customer_groups WHERE tenant_id = $1",
    "bots": "SELECT count(*) FROM bots WHERE tenant_id = $1",
    "qr_codes": "SELECT count(*) FROM qr_codes WHERE tenant_id = $1",
}
"""Counted metrics -> the statement counting what the tenant has (``$1``: the tenant)."""
MONTHLY: Final = ("sms_per_month", "broadcast_recipients")
"""Metrics consumed per calendar month of the tenant's time zone."""
METRICS: Final = (*COUNTED, *MONTHLY)
DESCRIPTIONS: Final[dict[str, str]] = {
    "customers": "live customers (the recycle bin and merged customers excluded)",
    "customer_groups": "customer groups",
    "bots": "bots",
    "qr_codes": "QR codes (active and inactive)",
    "sms_per_month": "SMS messages sent this month",
    "broadcast_recipients": "broadcast recipients this month",
}
_LOCK_SQL: Final = "SELECT pg_advisory_xact_lock(hashtext('usher.quota:' || $1 || ':' || $2))"


class QuotaExceeded(StoreError):
    """``amount`` more of ``metric`` would pass the tenant's ``limit`` (``used`` in use or
    consumed this month); nothing was written."""

    code = "RESOURCE_EXHAUSTED"

    def __init__(self, metric: str, limit: int, used: int, amount: int = 1) -> None:
        super().__init__(
            f"the tenant's limit of {limit} {metric} is reached ({used} used, {amount} more asked)"
        )
        self.metric = metric
        self.limit = limit
        self.used = used
        self.amount = amount


@dataclass(frozen=True, slots=True)
class QuotaUsage:
    """One metric of a tenant: ``used`` against ``limit`` (None: unlimited); a monthly metric
    counts from ``period_start`` to ``period_end`` (exclusive), days of the tenant's zone."""

    metric: str
    used: int
    limit: int | None
    period_start: dt.date | None = None
    period_end: dt.date | None = None

    @property
    def remaining(self) -> int | None:
        return None if self.limit is None else max(0, self.limit - self.used)

    def __str__(self) -> str:
        return f"{self.used} / {'unlimited' if self.limit is None else self.limit}"


def check_metric(metric: str) -> None:
    """``InvalidInput`` unless ``metric`` is one of ``METRICS``."""
    if metric not in METRICS:
        raise InvalidInput(f"unknown quota metric {metric!r}: one of {', '.join(METRICS)}")


def month_of(now: dt.datetime, zone: str) -> tuple[dt.date, dt.date]:
    """The calendar month holding ``now`` in ``zone`` (an unknown zone: UTC), as its first day
    and the next month's first day."""
    try:
        tz: dt.tzinfo = zoneinfo.ZoneInfo(zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        tz = dt.UTC
    local = now.astimezone(tz).date()
    start = local.replace(day=1)
    end = (start + dt.timedelta(days=32)).replace(day=1)
    return start, end


async def _month(db: Db, tenant: str, now: dt.datetime | None) -> tuple[dt.date, dt.date]:
    zone = await time_zone(db, tenant) or "UTC"
    return month_of(now or dt.datetime.now(dt.UTC), zone)


async def _limit(db: Db, tenant: str, metric: str) -> int | None:
    found: int | None = await db.fetchval(
        "SELECT max_value FROM tenant_quotas WHERE tenant_id = $1 AND metric = $2", tenant, metric
    )
    return found


async def reserve(
    conn: asyncpg.Connection,
    tenant: str,
    metric: str,
    amount: int,
    *,
    now: dt.datetime | None = None,
) -> None:
    """Make room for ``amount`` more of ``metric`` in the caller's transaction, or raise
    ``QuotaExceeded`` and consume nothing. Counted metrics: checks only (the caller's insert
    follows under the lock); monthly ones: consumes ``amount`` in the month holding ``now``
    (default: the present), limit or not, so usage is known when a limit is set later."""
    check_metric(metric)
    if amount <= 0:
        return
    limit = await _limit(conn, tenant, metric)
    if limit is None and metric in COUNTED:
        return
    await conn.execute(_LOCK_SQL, tenant, metric)
    limit = await _limit(conn, tenant, metric)  # as it is now that writers go in turn
    if metric in COUNTED:
        used: int = await conn.fetchval(COUNTED[metric], tenant)
        if limit is not None and used + amount > limit:
            raise QuotaExceeded(metric, limit, used, amount)
        return
    month, _ = await _month(conn, tenant, now)
    used = (
        await conn.fetchval(
            "SELECT used FROM quota_consumption WHERE tenant_id = $1 AND metric = $2"
            " AND month = $3",
            tenant,
            metric,
            month,
        )
        or 0
    )
    if limit is not None and used + amount > limit:
        raise QuotaExceeded(metric, limit, used, amount)
    await conn.execute(
        """INSERT INTO quota_consumption (tenant_id, metric, month, used) VALUES ($1, $2, $3, $4)
           ON CONFLICT (tenant_id, metric, month)
           DO UPDATE SET used = quota_consumption.used + excluded.used""",
        tenant,
        metric,
        month,
        amount,
    )


async def release(
    conn: asyncpg.Connection,
    tenant: str,
    metric: str,
    amount: int,
    *,
    month: dt.date,
) -> None:
    """Give back ``amount`` of a monthly metric consumed in ``month`` (its first day) and not
    used after all (a broadcast cancelled before those sends); never below zero."""
    check_metric(metric)
    if metric not in MONTHLY:
        raise InvalidInput(f"{metric} is counted, not consumed: nothing to release")
    if amount <= 0:
        return
    await conn.execute(_LOCK_SQL, tenant, metric)
    await conn.execute(
        "UPDATE quota_consumption SET used = greatest(0, used - $4)"
        " WHERE tenant_id = $1 AND metric = $2 AND month = $3",
        tenant,
        metric,
        month,
        amount,
    )


async def usage(
    pool: Db,
    tenant: str,
    metrics: Sequence[str] = METRICS,
    *,
    now: dt.datetime | None = None,
) -> list[QuotaUsage]:
    """The tenant's usage against its limits, one ``QuotaUsage`` per metric of ``metrics``,
    in that order (monthly ones for the month holding ``now``)."""
    for metric in metrics:
        check_metric(metric)
    with translated_errors():
        rows = await pool.fetch(
            "SELECT metric, max_value FROM tenant_quotas WHERE tenant_id = $1", tenant
        )
        limits = {r["metric"]: r["max_value"] for r in rows}
        found: list[QuotaUsage] = []
        month: tuple[dt.date, dt.date] | None = None
        for metric in metrics:
            if metric in COUNTED:
                used = await pool.fetchval(COUNTED[metric], tenant)
                found.append(QuotaUsage(metric, used, limits.get(metric)))
                continue
            if month is None:
                month = await _month(pool, tenant, now)
            consumed = await pool.fetchval(
                "SELECT used FROM quota_consumption WHERE tenant_id = $1 AND metric = $2"
                " AND month = $3",
                tenant,
                metric,
                month[0],
            )
            found.append(QuotaUsage(metric, consumed or 0, limits.get(metric), *month))
    return found


async def set_limit(pool: Db, tenant: str, metric: str, limit: int | None) -> None:
    """Set the tenant's limit of ``metric`` (None: unlimited). ``InvalidInput`` for an unknown
    metric or a negative limit, ``UnknownTenant`` for an unknown tenant. Usage above a new
    limit stays; only additions are refused."""
    check_metric(metric)
    if limit is not None and limit < 0:
        raise InvalidInput("a limit is 0 or more")
    with translated_errors():
        if limit is None:
            await pool.execute(
                "DELETE FROM tenant_quotas WHERE tenant_id = $1 AND metric = $2", tenant, metric
            )
            exists = await pool.fetchval("SELECT 1 FROM tenants WHERE tenant_id = $1", tenant)
            if exists is None:
                raise UnknownTenant(f"unknown tenant {tenant!r}")
            return
        await pool.execute(
            """INSERT INTO tenant_quotas (tenant_id, metric, max_value) VALUES ($1, $2, $3)
               ON CONFLICT (tenant_id, metric)
               DO UPDATE SET max_value = excluded.max_value, updated_at = now()""",
            tenant,
            metric,
            limit,
        )


async def tenants_with_limits(pool: Db) -> list[str]:
    """The tenants that have at least one limit, by id."""
    with translated_errors():
        rows = await pool.fetch("SELECT DISTINCT tenant_id FROM tenant_quotas ORDER BY 1")
    return [r["tenant_id"] for r in rows]
