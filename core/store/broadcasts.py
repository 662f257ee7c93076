"""Broadcasts as a resource (migration 0023): drafts, their lifecycle and their figures.

A broadcast is a DRAFT until sent: its channel, content (``core.broadcasts.content``) and
audience (groups, tags, a filter, picked customers, an uploaded file) are checked whole when it
is created (``Violations`` per field, ``Missing`` for what it names that the tenant lacks).
``core.store.broadcast_audience.send`` turns a draft into recipients and reserves its quota;
then it is SCHEDULED or SENDING. Pause, resume and cancel move the broadcast's state in one
statement each (a stale state is ``WrongState``, FAILED_PRECONDITION); cancelling also cancels
the queued recipients and gives their quota back (``core.store.quotas.release``).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import asyncpg

from core.broadcasts import content as bc
from core.broadcasts import recipient_file
from core.store import customer_fields, quotas
from core.store.customer_fields import Conflict, Missing, Violations
from core.store.customer_records import CustomerQuery, dump_query, load_query
from core.store.errors import StoreError, translated_errors
from core.store.report_reads import time_zone

STATES: Final = ("draft", "scheduled", "sending", "paused", "completed", "cancelled")
RECIPIENT_STATES: Final = (
    "queued",
    "sending",
    "sent",
    "delivered",
    "read",
    "failed",
    "skipped_opted_out",
    "skipped_blocked",
    "cancelled",
)
FILE_FORMATS: Final = ("csv", "xlsx")
MAX_GROUPS: Final = 50
MAX_TAGS: Final = 50
MAX_PICKED: Final = 1_000
_ID_CHARS: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")


class WrongState(StoreError):
    """The broadcast is not in a state that allows this; nothing changed."""

    code = "FAILED_PRECONDITION"

    def __init__(self, broadcast_id: str, state: str, wanted: str) -> None:
        super().__init__(f"broadcast {broadcast_id!r} is {state}: {wanted}")
        self.broadcast_id = broadcast_id
        self.state = state


@dataclass(frozen=True, slots=True)
class Audience:
    """Who a broadcast goes to: anyone any part names (``filter`` None: no filter part)."""

    groups: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    filter: CustomerQuery | None = None
    customers: tuple[str, ...] = ()
    file_format: str = ""
    """``csv`` or ``xlsx`` when a file is part of it."""
    file_region: str = ""
    file_rows: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "groups": list(self.groups),
            "tags": list(self.tags),
            "filter": None if self.filter is None else json.loads(dump_query(self.filter)),
            "customers": list(self.customers),
            "file_format": self.file_format,
            "file_region": self.file_region,
            "file_rows": self.file_rows,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Audience:
        found = raw.get("filter")
        return cls(
            groups=tuple(raw.get("groups", ())),
            tags=tuple(raw.get("tags", ())),
            filter=None if found is None else load_query(json.dumps(found)),
            customers=tuple(raw.get("customers", ())),
            file_format=str(raw.get("file_format", "")),
            file_region=str(raw.get("file_region", "")),
            file_rows=int(raw.get("file_rows", 0)),
        )

    @property
    def empty(self) -> bool:
        return not (
            self.groups
            or self.tags
            or self.filter is not None
            or self.customers
            or self.file_format
        )


@dataclass(frozen=True, slots=True)
class Draft:
    """What a writer gives to create a broadcast."""

    display_name: str
    channel_id: str
    content: bc.Content
    audience: Audience
    file: bytes = b""


@dataclass(frozen=True, slots=True)
class Stats:
    """Recipients by state (``RECIPIENT_STATES``), and the audience left out when sent."""

    by_state: Mapping[str, int] = field(default_factory=dict)
    left_out: int = 0

    @property
    def recipients(self) -> int:
        return sum(self.by_state.values())


@dataclass(frozen=True, slots=True)
class Broadcast:
    broadcast_id: str
    display_name: str
    channel_id: str
    channel_type: str
    content: bc.Content
    audience: Audience
    state: str
    schedule_at: dt.datetime | None
    time_zone: str
    left_out: int
    quota: Mapping[str, int]
    """Metric -> amount reserved when sent."""
    quota_month: dt.date | None
    created_by: str
    created_at: dt.datetime
    updated_at: dt.datetime
    submitted_at: dt.datetime | None
    ended_at: dt.datetime | None


_COLUMNS: Final = (
    "broadcast_id, display_name, channel_id, channel_type, content::text AS content,"
    " audience::text AS audience, state, schedule_at, time_zone, left_out, quota::text AS quota,"
    " created_by, created_at, updated_at, submitted_at, ended_at"
)


def _of(row: asyncpg.Record) -> Broadcast:
    quota = json.loads(row["quota"])
    month = quota.pop("month", None)
    return Broadcast(
        row["broadcast_id"],
        row["display_name"],
        row["channel_id"],
        row["channel_type"],
        bc.Content.from_json(json.loads(row["content"])),
        Audience.from_json(json.loads(row["audience"])),
        row["state"],
        row["schedule_at"],
        row["time_zone"],
        row["left_out"],
        {k: int(v) for k, v in quota.items()},
        None if month is None else dt.date.fromisoformat(month),
        row["created_by"],
        row["created_at"],
        row["updated_at"],
        row["submitted_at"],
        row["ended_at"],
    )


def _check_id(broadcast_id: str) -> None:
    if (
        not 1 <= len(broadcast_id) <= 64
        or not set(broadcast_id) <= _ID_CHARS
        or broadcast_id[0] in "_.-"
    ):
        raise Violations({"broadcast_id": "letters, digits and _.- (not first), up to 64"})


async def _check_audience(
    conn: asyncpg.Connection, tenant: str, channel_type: str, draft: Draft
) -> Audience:
    """The audience with its file's row count; ``Violations``/``Missing`` for what is wrong."""
    audience = draft.audience
    problems: dict[str, str] = {}
    if audience.empty:
        problems["audience"] = "name groups, tags, a filter, customers or a file"
    if len(audience.groups) > MAX_GROUPS:
        problems["audience.groups"] = f"at most {MAX_GROUPS}"
    if len(audience.tags) > MAX_TAGS:
        problems["audience.tags"] = f"at most {MAX_TAGS}"
    if len(audience.customers) > MAX_PICKED:
        problems["audience.customers"] = f"at most {MAX_PICKED}"
    if audience.filter is not None and audience.filter.deleted:
        problems["audience.filter.deleted"] = "the recycle bin's customers get no broadcasts"
    rows = 0
    if audience.file_format:
        if audience.file_format not in FILE_FORMATS:
            problems["audience.file.format"] = "CSV or XLSX"
        else:
            try:
                rows = len(
                    recipient_file.read(
                        draft.file, audience.file_format, channel_type, audience.file_region
                    )
                )
            except Violations as exc:
                problems.update({f"audience.file.{k}": v for k, v in exc.violations.items()})
    if problems:
        raise Violations(problems)
    groups = [*audience.groups]
    if audience.filter is not None and audience.filter.group:
        groups.append(audience.filter.group)
    if groups:
        known = {
            r["group_id"]
            for r in await conn.fetch(
                "SELECT group_id FROM customer_groups WHERE tenant_id = $1"
                " AND group_id = ANY($2::text[])",
                tenant,
                groups,
            )
        }
        for group in groups:
            if group not in known:
                raise Missing("customer group", f"customerGroups/{group}")
    if audience.customers:
        known = {
            r["customer_id"]
            for r in await conn.fetch(
                "SELECT customer_id FROM customers WHERE tenant_id = $1"
                " AND customer_id = ANY($2::text[]) AND deleted_at IS NULL",
                tenant,
                list(audience.customers),
            )
        }
        for customer in audience.customers:
            if customer not in known:
                raise Missing("customer", f"customers/{customer}")
    return Audience(
        audience.groups,
        audience.tags,
        audience.filter,
        audience.customers,
        audience.file_format,
        audience.file_region,
        rows,
    )


async def fetch(
    conn: asyncpg.Pool | asyncpg.Connection, tenant: str, broadcast_id: str, *, lock: bool = False
) -> Broadcast:
    """The broadcast (``lock``: held ``FOR UPDATE`` till the transaction ends); ``Missing`` if
    the tenant has none of that id."""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM broadcasts WHERE tenant_id = $1 AND broadcast_id = $2"
        + (" FOR UPDATE" if lock else ""),
        tenant,
        broadcast_id,
    )
    if row is None:
        raise Missing("broadcast", f"broadcasts/{broadcast_id}")
    return _of(row)


async def audience_file(conn: asyncpg.Connection, tenant: str, broadcast_id: str) -> bytes:
    """The uploaded file of a broadcast (empty: none)."""
    found: bytes | None = await conn.fetchval(
        "SELECT audience_file FROM broadcasts WHERE tenant_id = $1 AND broadcast_id = $2",
        tenant,
        broadcast_id,
    )
    return found or b""


async def tenant_zone(pool: asyncpg.Pool, tenant: str) -> str:
    """The zone a broadcast's wall-clock schedule is read in: ``TenantSettings.time_zone``,
    else the default queue's, else UTC (as reports and quotas count days)."""
    with translated_errors():
        return await time_zone(pool, tenant) or "UTC"


class Broadcasts:
    """Every tenant's broadcasts, over ``pool``."""

    def __init__(self, pool: asyncpg.Pool, *, timeout: float = 30.0) -> None:
        self._pool = pool
        self._timeout = timeout

    async def create(
        self, tenant: str, broadcast_id: str | None, draft: Draft, created_by: str
    ) -> Broadcast:
        """A new DRAFT; ``Violations``, ``Missing`` (the channel, a group, a customer) or
        ``Conflict`` (the id) and nothing stored otherwise."""
        broadcast_id = broadcast_id or uuid.uuid4().hex
        _check_id(broadcast_id)
        if len(draft.display_name) > 200:
            raise Violations({"display_name": "at most 200 characters"})
        with translated_errors():
            async with self._pool.acquire() as conn, conn.transaction():
                channel_type = await conn.fetchval(
                    "SELECT type FROM channels WHERE tenant_id = $1 AND channel_id = $2",
                    tenant,
                    draft.channel_id,
                )
                if channel_type is None:
                    raise Missing("channel", f"channels/{draft.channel_id}")
                if channel_type not in bc.CHANNEL_TYPES:
                    raise Violations({"channel": f"a {channel_type} channel cannot broadcast"})
                keys = await customer_fields.definitions(conn, tenant)
                problems: dict[str, str] = {}
                try:
                    bc.compile_content(draft.content, channel_type, keys, "content.")
                except Violations as exc:
                    problems.update(exc.violations)
                try:
                    audience = await _check_audience(conn, tenant, channel_type, draft)
                except Violations as exc:
                    problems.update(exc.violations)
                if problems:
                    raise Violations(problems)
                try:
                    row = await conn.fetchrow(
                        f"""INSERT INTO broadcasts (tenant_id, broadcast_id, display_name,
                                channel_id, channel_type, content, audience, audience_file,
                                created_by)
                            VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8, $9)
                            RETURNING {_COLUMNS}""",
                        tenant,
                        broadcast_id,
                        draft.display_name,
                        draft.channel_id,
                        channel_type,
                        json.dumps(draft.content.to_json()),
                        json.dumps(audience.to_json()),
                        draft.file or None,
                        created_by,
                        timeout=self._timeout,
                    )
                except asyncpg.exceptions.UniqueViolationError as exc:
                    raise Conflict("broadcast_id", "a broadcast has this id") from exc
        return _of(row)

    async def get(self, tenant: str, broadcast_id: str) -> Broadcast:
        """The broadcast; ``Missing`` if the tenant has none of that id."""
        with translated_errors():
            return await fetch(self._pool, tenant, broadcast_id)

    async def stats(self, tenant: str, broadcast_id: str) -> Stats:
        """Its recipients by state (one grouped count)."""
        with translated_errors():
            rows = await self._pool.fetch(
                """SELECT state, count(*) AS n FROM broadcast_recipients
                   WHERE tenant_id = $1 AND broadcast_id = $2 GROUP BY state""",
                tenant,
                broadcast_id,
                timeout=self._timeout,
            )
            left_out = await self._pool.fetchval(
                "SELECT left_out FROM broadcasts WHERE tenant_id = $1 AND broadcast_id = $2",
                tenant,
                broadcast_id,
            )
        return Stats({r["state"]: r["n"] for r in rows}, left_out or 0)

    async def list(
        self,
        tenant: str,
        state: str | None,
        after: tuple[dt.datetime, str] | None,
        limit: int,
    ) -> list[Broadcast]:
        """Newest first, after the (created_at, id) of the previous page's last."""
        args: list[Any] = [tenant, limit]
        where = ["tenant_id = $1"]
        if state is not None:
            args.append(state)
            where.append(f"state = ${len(args)}")
        if after is not None:
            args.extend(after)
            where.append(f"(created_at, broadcast_id) < (${len(args) - 1}, ${len(args)})")
        with translated_errors():
            rows = await self._pool.fetch(
                f"SELECT {_COLUMNS} FROM broadcasts WHERE {' AND '.join(where)}"
                " ORDER BY created_at DESC, broadcast_id DESC LIMIT $2",
                *args,
                timeout=self._timeout,
            )
        return [_of(r) for r in rows]

    async def delete(self, tenant: str, broadcast_id: str) -> None:
        """Delete a draft, completed or cancelled broadcast; ``WrongState`` otherwise."""
        with translated_errors():
            async with self._pool.acquire() as conn, conn.transaction():
                state = await self._locked_state(conn, tenant, broadcast_id)
                if state not in ("draft", "completed", "cancelled"):
                    raise WrongState(broadcast_id, state, "cancel it first")
                await conn.execute(
                    "DELETE FROM broadcasts WHERE tenant_id = $1 AND broadcast_id = $2",
                    tenant,
                    broadcast_id,
                )

    @staticmethod
    async def _locked_state(conn: asyncpg.Connection, tenant: str, broadcast_id: str) -> str:
        state: str | None = await conn.fetchval(
            "SELECT state FROM broadcasts WHERE tenant_id = $1 AND broadcast_id = $2 FOR UPDATE",
            tenant,
            broadcast_id,
        )
        if state is None:
            raise Missing("broadcast", f"broadcasts/{broadcast_id}")
        return state

    async def _move(
        self,
        tenant: str,
        broadcast_id: str,
        allowed: Sequence[str],
        unchanged: Sequence[str],
        statement: str,
        wanted: str,
    ) -> Broadcast:
        """Run ``statement`` ($1 tenant, $2 id) when the state is in ``allowed``; change
        nothing when it is in ``unchanged``; ``WrongState`` otherwise."""
        with translated_errors():
            async with self._pool.acquire() as conn, conn.transaction():
                state = await self._locked_state(conn, tenant, broadcast_id)
                if state in allowed:
                    await conn.execute(statement, tenant, broadcast_id)
                elif state not in unchanged:
                    raise WrongState(broadcast_id, state, wanted)
        return await self.get(tenant, broadcast_id)

    async def pause(self, tenant: str, broadcast_id: str) -> Broadcast:
        """SCHEDULED or SENDING -> PAUSED (remembering which); PAUSED stays."""
        return await self._move(
            tenant,
            broadcast_id,
            ("scheduled", "sending"),
            ("paused",),
            "UPDATE broadcasts SET paused_from = state, state = 'paused', updated_at = now()"
            " WHERE tenant_id = $1 AND broadcast_id = $2",
            "only a scheduled or sending broadcast can be paused",
        )

    async def resume(self, tenant: str, broadcast_id: str) -> Broadcast:
        """PAUSED -> what it was (a schedule whose time passed: SENDING); SCHEDULED and SENDING
        stay."""
        return await self._move(
            tenant,
            broadcast_id,
            ("paused",),
            ("scheduled", "sending"),
            """UPDATE broadcasts SET updated_at = now(), paused_from = NULL,
                   state = CASE WHEN paused_from = 'scheduled' AND schedule_at > now()
                                THEN 'scheduled' ELSE 'sending' END
               WHERE tenant_id = $1 AND broadcast_id = $2""",
            "only a paused broadcast can be resumed",
        )

    async def cancel(self, tenant: str, broadcast_id: str) -> Broadcast:
        """SCHEDULED, SENDING or PAUSED -> CANCELLED: queued recipients are cancelled and their
        quota given back (sends a gateway holds finish and are reported); CANCELLED stays."""
        with translated_errors():
            async with self._pool.acquire() as conn, conn.transaction():
                state = await self._locked_state(conn, tenant, broadcast_id)
                if state == "cancelled":
                    return await self.get(tenant, broadcast_id)
                if state not in ("scheduled", "sending", "paused"):
                    raise WrongState(
                        broadcast_id, state, "only an unfinished broadcast can be cancelled"
                    )
                row = await conn.fetchrow(
                    """WITH gone AS (
                           UPDATE broadcast_recipients SET state = 'cancelled'
                           WHERE tenant_id = $1 AND broadcast_id = $2 AND state = 'queued'
                           RETURNING text)
                       SELECT count(*) AS recipients,
                              coalesce(sum(greatest(1, ceil(length(btrim(text)) / $3::numeric))), 0)
                                  AS sms
                       FROM gone""",
                    tenant,
                    broadcast_id,
                    bc.SMS_PIECE,
                )
                found = await conn.fetchrow(
                    """UPDATE broadcasts SET state = 'cancelled', paused_from = NULL,
                           ended_at = now(), updated_at = now()
                       WHERE tenant_id = $1 AND broadcast_id = $2
                       RETURNING channel_type, quota::text AS quota""",
                    tenant,
                    broadcast_id,
                )
                quota = json.loads(found["quota"])
                if "month" in quota:
                    month = dt.date.fromisoformat(quota["month"])
                    await quotas.release(
                        conn, tenant, "broadcast_recipients", int(row["recipients"]), month=month
                    )
                    if found["channel_type"] == "sms":
                        await quotas.release(
                            conn, tenant, "sms_per_month", int(row["sms"]), month=month
                        )
        return await self.get(tenant, broadcast_id)
