"""A broadcast's audience turned into recipients: counted for a preview, stored for a send.

Both walk the same members in the same order (``_members``): the customers any part of the
audience names (groups: static members or a saved filter's matches; customers with any of the
tags; a filter; picked customers), live and not merged, by id, read through a server-side
cursor a chunk at a time; then the uploaded file's rows in file order. Each member gets its
address on the channel (``core.broadcasts.addresses``: the identity they wrote from there, else
their phone or e-mail), and is left out without one or when the address came earlier. The
rest are recipients, each with its text rendered now (``core.broadcasts.content``); a recipient
opted out on the channel (``broadcast_opt_outs``) or blocked by customer, phone or e-mail (a
standing block of ``blocks``) is stored as skipped, not sent.

``send`` runs in ONE transaction: the recipients (COPY, a chunk at a time, so memory stays flat
whatever the audience), the quotas (``core.store.quotas.reserve``: ``broadcast_recipients`` for
those to send, ``sms_per_month`` for the Twilio messages an SMS broadcast takes), and the
broadcast's new state. A quota refusal (``QuotaExceeded``) or an empty send
(``NothingToSend``) rolls all of it back: nothing stored, nothing consumed.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import asyncpg

from core.broadcasts import addresses, recipient_file
from core.broadcasts import content as bc
from core.store import broadcast_opt_outs, customer_fields, quotas
from core.store.broadcast_opt_outs import OptedOut
from core.store.broadcasts import Broadcast, WrongState, audience_file, fetch
from core.store.customer_fields import format_value
from core.store.customer_records import CustomerQuery, CustomerStore, load_query
from core.store.errors import StoreError, translated_errors
from core.store.report_reads import time_zone

CHUNK: Final = 2_000
"""Customers read, and recipients copied, per round trip."""
MAX_SAMPLES: Final = 20
_PLACEHOLDER: Final = re.compile(r"\$(\d+)")
_RECIPIENT_COLUMNS: Final = (
    "tenant_id",
    "broadcast_id",
    "recipient_id",
    "customer_id",
    "address",
    "text",
    "subject",
    "parameters",
    "state",
    "queued_at",
)


class NothingToSend(StoreError):
    """Every member of the audience is left out or skipped: nothing stored."""

    code = "FAILED_PRECONDITION"


@dataclass(frozen=True, slots=True)
class Member:
    """An audience member with an address on the channel."""

    customer_id: str | None
    address: str
    values: Mapping[str, str]
    phone: str = ""
    email: str = ""


@dataclass(frozen=True, slots=True)
class Sample:
    customer_id: str | None
    address: str
    rendered: bc.Rendered


@dataclass
class Tally:
    """What a send does or would do."""

    recipients: int = 0
    """To send (not skipped)."""
    opted_out: int = 0
    blocked: int = 0
    no_address: int = 0
    duplicates: int = 0
    sms: int = 0
    """Twilio messages (SMS broadcasts)."""
    samples: list[Sample] = field(default_factory=list)

    def quota(self, channel_type: str) -> dict[str, int]:
        """Metric -> amount a send reserves."""
        found = {"broadcast_recipients": self.recipients}
        if channel_type == "sms":
            found["sms_per_month"] = self.sms
        return found


@dataclass(frozen=True, slots=True)
class _Standing:
    """The tenant's standing blocks, as sets."""

    customers: frozenset[str]
    phones: frozenset[str]
    emails: frozenset[str]

    def blocks(self, m: Member) -> bool:
        return (
            (m.customer_id is not None and m.customer_id in self.customers)
            or m.address in self.phones
            or m.address in self.emails
            or (m.phone != "" and m.phone in self.phones)
            or (m.email != "" and m.email in self.emails)
        )


async def _standing(conn: asyncpg.Connection, tenant: str) -> _Standing:
    rows = await conn.fetch(
        """SELECT kind, value FROM blocks WHERE tenant_id = $1 AND unblocked_at IS NULL
           AND (expires_at IS NULL OR expires_at > now()) AND kind <> 'ip'""",
        tenant,
    )
    by: dict[str, set[str]] = {"customer": set(), "phone": set(), "email": set()}
    for r in rows:
        by[r["kind"]].add(r["value"])
    return _Standing(frozenset(by["customer"]), frozenset(by["phone"]), frozenset(by["email"]))


def _shifted(sql: str, args: list[Any], into: list[Any]) -> str:
    """``sql`` (whose ``$1`` is the tenant, as ``CustomerStore.where`` builds it) with its other
    placeholders renumbered after ``into``'s, and its arguments appended to ``into``."""
    base = len(into) - 1

    def renumber(match: re.Match[str]) -> str:
        n = int(match[1])
        return "$1" if n == 1 else f"${n + base}"

    into.extend(args[1:])
    return _PLACEHOLDER.sub(renumber, sql)


async def _selection(
    conn: asyncpg.Connection, tenant: str, b: Broadcast
) -> tuple[str, list[Any]] | None:
    """The statement listing the audience's customers (None: no customer part)."""
    a = b.audience
    args: list[Any] = [tenant, b.channel_id]
    parts: list[str] = []
    saved: dict[str, CustomerQuery | None] = {}
    groups = [*a.groups, *([a.filter.group] if a.filter is not None and a.filter.group else [])]
    if groups:
        for r in await conn.fetch(
            "SELECT group_id, filter::text AS filter FROM customer_groups WHERE tenant_id = $1"
            " AND group_id = ANY($2::text[])",
            tenant,
            groups,
        ):
            saved[r["group_id"]] = None if r["filter"] is None else load_query(r["filter"])
    for group in a.groups:
        sql, more = CustomerStore.where(tenant, CustomerQuery(group=group), saved.get(group))
        parts.append(_shifted(sql, more, args))
    if a.filter is not None:
        sql, more = CustomerStore.where(tenant, a.filter, saved.get(a.filter.group))
        parts.append(_shifted(sql, more, args))
    if a.tags:
        args.append(list(a.tags))
        parts.append(f"c.tags && ${len(args)}::text[]")
    if a.customers:
        args.append(list(a.customers))
        parts.append(f"c.customer_id = ANY(${len(args)}::text[])")
    if not parts:
        return None
    condition = " OR ".join(f"({p})" for p in parts)
    return (
        f"""SELECT c.customer_id, c.name, c.phone, c.email, c.fields::text AS fields,
                   i.external_id AS identity
            FROM customers c
            LEFT JOIN (SELECT DISTINCT ON (customer_id) customer_id, external_id
                       FROM customer_identities WHERE tenant_id = $1 AND channel = $2
                       ORDER BY customer_id, external_id) i ON i.customer_id = c.customer_id
            WHERE c.tenant_id = $1 AND c.deleted_at IS NULL AND c.merged_into IS NULL
              AND ({condition})
            ORDER BY c.customer_id""",
        args,
    )


def _field_text(value: Any) -> str:
    return format_value(tuple(value) if isinstance(value, list) else value)


def _values(row: asyncpg.Record) -> dict[str, str]:
    values = {
        "customer.name": row["name"] or "",
        "customer.phone": row["phone"] or "",
        "customer.email": row["email"] or "",
    }
    for key, value in json.loads(row["fields"] or "{}").items():
        values[f"customer.fields.{key}"] = _field_text(value)
    return values


async def _members(
    conn: asyncpg.Connection, tenant: str, b: Broadcast, tally: Tally
) -> AsyncIterator[Member]:
    """The audience's members with an address, each address once (in a transaction);
    ``tally`` counts those without one and the repeats."""
    seen: set[str] = set()
    selection = await _selection(conn, tenant, b)
    if selection is not None:
        sql, args = selection
        async for row in conn.cursor(sql, *args, prefetch=CHUNK):
            address = addresses.customer_address(
                b.channel_type,
                identity=row["identity"],
                phone_number=row["phone"],
                email_address=row["email"],
            )
            if address is None:
                tally.no_address += 1
            elif address in seen:
                tally.duplicates += 1
            else:
                seen.add(address)
                yield Member(
                    row["customer_id"],
                    address,
                    _values(row),
                    row["phone"] or "",
                    row["email"] or "",
                )
    if b.audience.file_format:
        content = await audience_file(conn, tenant, b.broadcast_id)
        rows = recipient_file.read(
            content, b.audience.file_format, b.channel_type, b.audience.file_region
        )
        known = await _known_customers(conn, tenant, b.channel_type, [r.address for r in rows])
        for r in rows:
            if r.address in seen:
                tally.duplicates += 1
                continue
            seen.add(r.address)
            customer = known.get(r.address)
            values = dict(r.values)
            if customer is not None:  # the file's cells first, the customer's record for the rest
                for name, value in customer[1].items():
                    if not values.get(name):
                        values[name] = value
            yield Member(
                None if customer is None else customer[0], r.address, values, r.phone, r.email
            )


async def _known_customers(
    conn: asyncpg.Connection, tenant: str, channel_type: str, found: list[str]
) -> dict[str, tuple[str, dict[str, str]]]:
    """The live customers a file's addresses belong to (address -> id and values): by phone
    (SMS, WhatsApp) or e-mail; LINE ids match no customer column."""
    if channel_type == "line" or not found:
        return {}
    column = "c.phone" if channel_type in addresses.PHONE_TYPES else "lower(c.email)"
    rows = await conn.fetch(
        f"""SELECT DISTINCT ON ({column}) {column} AS address, c.customer_id, c.name, c.phone,
                   c.email, c.fields::text AS fields
            FROM customers c
            WHERE c.tenant_id = $1 AND {column} = ANY($2::text[])
              AND c.deleted_at IS NULL AND c.merged_into IS NULL
            ORDER BY {column}, c.customer_id""",
        tenant,
        found,
    )
    return {r["address"]: (r["customer_id"], _values(r)) for r in rows}


async def _walk(
    conn: asyncpg.Connection,
    tenant: str,
    b: Broadcast,
    tally: Tally,
    samples: int,
    sink: list[tuple[Any, ...]] | None,
) -> AsyncIterator[None]:
    """Walk the members, counting into ``tally``; with ``sink``, append each recipient's row to
    it, yielding whenever ``CHUNK`` rows are waiting (and once at the end) for the caller to
    copy them out."""
    keys = await customer_fields.definitions(conn, tenant)
    compiled = bc.compile_content(b.content, b.channel_type, keys)
    opted: OptedOut = await broadcast_opt_outs.of_channel(conn, tenant, b.channel_id)
    standing = await _standing(conn, tenant)
    number = 0
    async for m in _members(conn, tenant, b, tally):
        rendered = bc.render(compiled, m.values)
        if (m.address, m.customer_id) in opted:
            state = "skipped_opted_out"
            tally.opted_out += 1
        elif standing.blocks(m):
            state = "skipped_blocked"
            tally.blocked += 1
        else:
            state = "queued"
            tally.recipients += 1
            if b.channel_type == "sms":
                tally.sms += bc.sms_messages(rendered.text)
            if len(tally.samples) < samples:
                tally.samples.append(Sample(m.customer_id, m.address, rendered))
        if sink is not None:
            number += 1
            sink.append(
                (
                    tenant,
                    b.broadcast_id,
                    number,
                    m.customer_id,
                    m.address,
                    rendered.text,
                    rendered.subject,
                    list(rendered.parameters),
                    state,
                )
            )
            if len(sink) >= CHUNK:
                yield
    yield


async def preview(pool: asyncpg.Pool, tenant: str, broadcast_id: str, samples: int) -> Tally:
    """What sending the draft now would do; stores nothing. ``WrongState`` unless a draft."""
    with translated_errors():
        async with (
            pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            b = await fetch(conn, tenant, broadcast_id)
            if b.state != "draft":
                raise WrongState(broadcast_id, b.state, "only a draft is previewed")
            tally = Tally()
            async for _ in _walk(conn, tenant, b, tally, min(samples, MAX_SAMPLES), None):
                pass
    return tally


def _resolve(now: dt.datetime, schedule_at: dt.datetime | None) -> tuple[str, dt.datetime]:
    if schedule_at is None or schedule_at <= now:
        return "sending", now
    return "scheduled", schedule_at


async def send(
    pool: asyncpg.Pool, tenant: str, broadcast_id: str, schedule_at: dt.datetime | None
) -> Tally:
    """Store the draft's recipients, reserve its quotas and make it SCHEDULED (``schedule_at``
    in the future) or SENDING, in one transaction. ``WrongState`` unless a draft;
    ``NothingToSend``, ``QuotaExceeded``: nothing stored or consumed."""
    with translated_errors():
        async with pool.acquire() as conn, conn.transaction():
            b = await fetch(conn, tenant, broadcast_id, lock=True)
            if b.state != "draft":
                raise WrongState(broadcast_id, b.state, "only a draft is sent")
            now: dt.datetime = await conn.fetchval("SELECT now()")
            rows: list[tuple[Any, ...]] = []
            tally = Tally()
            async for _ in _walk(conn, tenant, b, tally, 0, rows):
                if rows:
                    await conn.copy_records_to_table(
                        "broadcast_recipients",
                        records=[(*r, now) for r in rows],
                        columns=_RECIPIENT_COLUMNS,
                    )
                    rows.clear()
            if tally.recipients == 0:
                raise NothingToSend(
                    "nobody to send to: every member is left out, opted out or blocked"
                )
            zone = await time_zone(conn, tenant) or "UTC"
            month, _ = quotas.month_of(now, zone)
            reserved = tally.quota(b.channel_type)
            for metric, amount in reserved.items():
                await quotas.reserve(conn, tenant, metric, amount, now=now)
            new_state, at = _resolve(now, schedule_at)
            await conn.execute(
                """UPDATE broadcasts SET state = $3, schedule_at = $4, time_zone = $5,
                       left_out = $6, quota = $7::jsonb, submitted_at = $8, updated_at = $8
                   WHERE tenant_id = $1 AND broadcast_id = $2""",
                tenant,
                broadcast_id,
                new_state,
                at,
                zone,
                tally.no_address + tally.duplicates,
                json.dumps({**reserved, "month": month.isoformat()}),
                now,
            )
    return tally
