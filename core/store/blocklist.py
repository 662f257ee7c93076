"""The tenant's blocklist: blocks by customer id, phone, e-mail or IP, and what blocked senders
wrote (``blocked_messages``). Not routing state: the front door writes these tables alone.

The inbound path asks ``Blocklist.match`` for every customer message, so it is cheap: each
process keeps a tenant's standing blocks for ``ttl`` seconds (a tenant with none costs a dict
lookup), bounded in tenants (least recently used out first) and in blocks per tenant (beyond
``max_cached`` the tenant is matched in PostgreSQL, by index). A change made through this
``Blocklist`` drops the tenant's cached copy at once; other processes see it within ``ttl``.

Creating and unblocking append their change to the blocklist's change log in the same
transaction (``core.store.block_log``; read by ``core.store.block_events``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

import asyncpg
import msgspec

from core.routing import model as m
from core.store import block_log
from core.store.block_log import Change
from core.store.errors import InvalidInput, translated_errors
from core.store.validation import PHONE_PATTERN

DEFAULT_TTL: Final = 5.0
MAX_TENANTS: Final = 10_000
MAX_CACHED: Final = 50_000
MAX_REASON: Final = 1000

_DIGITS: Final = re.compile(r"^[1-9][0-9]{4,14}$")


class Kind(StrEnum):
    CUSTOMER = "customer"
    PHONE = "phone"
    EMAIL = "email"
    IP = "ip"


Key = tuple[Kind, str]
"""A normalized target: (kind, value)."""


class State(StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"
    UNBLOCKED = "unblocked"


@dataclass(frozen=True, slots=True)
class Block:
    block_id: int
    kind: Kind
    value: str
    reason: str
    created_at: dt.datetime
    created_by: str
    expires_at: dt.datetime | None
    unblocked_at: dt.datetime | None
    unblocked_by: str | None

    def state(self, now: dt.datetime) -> State:
        if self.unblocked_at is not None:
            return State.UNBLOCKED
        if self.expires_at is not None and self.expires_at <= now:
            return State.EXPIRED
        return State.ACTIVE


def normalized(kind: Kind, value: str) -> str:
    """The value as blocks store and match it (e-mail lower-cased, IP addresses compressed);
    ``InvalidInput`` when it is not one of its kind."""
    if kind is Kind.PHONE:
        if not PHONE_PATTERN.fullmatch(value):
            raise InvalidInput("a phone number is E.164: + and 5 to 15 digits")
        return value
    if kind is Kind.EMAIL:
        local, at, domain = value.partition("@")
        if not at or not local or not domain or len(value) > 320 or any(c.isspace() for c in value):
            raise InvalidInput("an e-mail address has a local part, @ and a domain")
        return value.lower()
    if kind is Kind.IP:
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            raise InvalidInput("not an IPv4 or IPv6 address") from None
    if not 1 <= len(value) <= 200 or "\x00" in value:
        raise InvalidInput("a customer id has 1 to 200 characters")
    return value


def sender_keys(
    *,
    customer_id: str | None,
    external_id: str = "",
    phone: str = "",
    email: str = "",
    ip_address: str = "",
) -> list[Key]:
    """The keys an inbound sender may be blocked under: their customer id, their phone and
    e-mail (also when the channel's external id is one: a WhatsApp id is the number without
    its +), and their IP address. Malformed values are skipped (they match no block)."""
    keys: list[Key] = []
    if customer_id:
        keys.append((Kind.CUSTOMER, customer_id))
    phones = {phone, external_id, f"+{external_id}" if _DIGITS.match(external_id) else ""}
    keys.extend((Kind.PHONE, p) for p in sorted(phones) if PHONE_PATTERN.fullmatch(p))
    emails = {email.lower(), external_id.lower() if "@" in external_id else ""}
    keys.extend((Kind.EMAIL, e) for e in sorted(emails) if e)
    if ip_address:
        with contextlib.suppress(ValueError):
            keys.append((Kind.IP, str(ipaddress.ip_address(ip_address))))
    return keys


_COLUMNS: Final = (
    "block_id, kind, value, reason, created_at, created_by, expires_at, unblocked_at, unblocked_by"
)


def _block(row: asyncpg.Record) -> Block:
    return Block(
        row["block_id"],
        Kind(row["kind"]),
        row["value"],
        row["reason"],
        row["created_at"],
        row["created_by"],
        row["expires_at"],
        row["unblocked_at"],
        row["unblocked_by"],
    )


@dataclass(frozen=True, slots=True)
class Sender:
    """Who writes in a stored conversation, for ``sender_keys``."""

    channel: str
    customer_id: str
    external_id: str
    phone: str
    email: str


@dataclass(slots=True)
class _Standing:
    """A tenant's standing blocks as loaded at ``loaded_at`` (monotonic): key to (block id,
    expiry as epoch seconds or None). ``blocks`` None: too many to cache, ask PostgreSQL."""

    loaded_at: float
    blocks: dict[Key, tuple[int, float | None]] | None


class Blocklist:
    """The ``blocks`` and ``blocked_messages`` tables, with the inbound path's cache. One per
    process; safe for concurrent callers."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        ttl: float = DEFAULT_TTL,
        max_tenants: int = MAX_TENANTS,
        max_cached: int = MAX_CACHED,
        timeout: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pool = pool
        self._ttl = ttl
        self._max_tenants = max(1, max_tenants)
        self._max_cached = max_cached
        self._timeout = timeout
        self._monotonic = monotonic
        self._standing: OrderedDict[str, _Standing] = OrderedDict()

    # --- the inbound path -----------------------------------------------------------------------

    async def has_blocks(self, tenant: str) -> bool:
        """Whether the tenant has any standing block (cached): when not, no sender is blocked
        and the caller need not gather the sender's keys."""
        standing = await self._load(tenant)
        return standing.blocks is None or bool(standing.blocks)

    async def match(self, tenant: str, keys: Iterable[Key]) -> int | None:
        """The id of a standing block matching one of ``keys``, or None."""
        wanted = list(keys)
        if not wanted:
            return None
        standing = await self._load(tenant)
        if standing.blocks is None:
            return await self._match_stored(tenant, wanted)
        now = time.time()
        for key in wanted:
            found = standing.blocks.get(key)
            if found is not None and (found[1] is None or found[1] > now):
                return found[0]
        return None

    def forget(self, tenant: str) -> None:
        """Drop the tenant's cached blocks (after a change through this process)."""
        self._standing.pop(tenant, None)

    async def _load(self, tenant: str) -> _Standing:
        cached = self._standing.get(tenant)
        if cached is not None and self._monotonic() - cached.loaded_at < self._ttl:
            self._standing.move_to_end(tenant)
            return cached
        loaded_at = self._monotonic()
        with translated_errors():
            rows = await self._pool.fetch(
                """SELECT block_id, kind, value, expires_at FROM blocks
                   WHERE tenant_id = $1 AND unblocked_at IS NULL
                     AND (expires_at IS NULL OR expires_at > now())
                   ORDER BY block_id LIMIT $2""",
                tenant,
                self._max_cached + 1,
                timeout=self._timeout,
            )
        blocks: dict[Key, tuple[int, float | None]] | None = None
        if len(rows) <= self._max_cached:
            blocks = {}
            for row in rows:
                expires = row["expires_at"]
                key = (Kind(row["kind"]), row["value"])
                blocks.setdefault(key, (row["block_id"], expires and expires.timestamp()))
        standing = _Standing(loaded_at, blocks)
        self._standing[tenant] = standing
        self._standing.move_to_end(tenant)
        while len(self._standing) > self._max_tenants:
            self._standing.popitem(last=False)
        return standing

    async def _match_stored(self, tenant: str, keys: Sequence[Key]) -> int | None:
        with translated_errors():
            found: int | None = await self._pool.fetchval(
                """SELECT b.block_id FROM blocks b
                   JOIN unnest($2::text[], $3::text[]) AS k(kind, value)
                     ON b.kind = k.kind AND b.value = k.value
                   WHERE b.tenant_id = $1 AND b.unblocked_at IS NULL
                     AND (b.expires_at IS NULL OR b.expires_at > now())
                   ORDER BY b.block_id LIMIT 1""",
                tenant,
                [str(kind) for kind, _ in keys],
                [value for _, value in keys],
                timeout=self._timeout,
            )
        return found

    async def sender_of(self, tenant: str, conversation_id: str) -> Sender | None:
        """The customer of a stored conversation, with their identity on its channel (one
        statement); None if there is no such conversation."""
        with translated_errors():
            row = await self._pool.fetchrow(
                """SELECT c.channel, c.customer_id, coalesce(i.external_id, '') AS external_id,
                          coalesce(u.phone, '') AS phone, coalesce(u.email, '') AS email
                   FROM conversations c
                   LEFT JOIN customers u
                     ON u.tenant_id = c.tenant_id AND u.customer_id = c.customer_id
                   LEFT JOIN LATERAL (
                       SELECT external_id FROM customer_identities
                       WHERE tenant_id = c.tenant_id AND channel = c.channel
                         AND customer_id = c.customer_id
                       LIMIT 1) i ON true
                   WHERE c.tenant_id = $1 AND c.conversation_id = $2""",
                tenant,
                conversation_id,
                timeout=self._timeout,
            )
        if row is None:
            return None
        return Sender(
            row["channel"], row["customer_id"], row["external_id"], row["phone"], row["email"]
        )

    async def keep_message(
        self,
        tenant: str,
        block_id: int,
        *,
        channel: str,
        body: m.MessageBody,
        external_id: str = "",
        customer_id: str | None = None,
        conversation_id: str | None = None,
    ) -> bool:
        """Keep what a blocked sender wrote; False when the provider's id was kept before."""
        attachments = [
            {"sha256": a.sha256, "name": a.name, "type": a.content_type, "size": a.size}
            for a in body.attachments
        ]
        with translated_errors():
            status = await self._pool.execute(
                """INSERT INTO blocked_messages (tenant_id, block_id, channel, external_id,
                       customer_id, conversation_id, content, attachments, provider_message_id)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9) ON CONFLICT DO NOTHING""",
                tenant,
                block_id,
                channel,
                external_id,
                customer_id,
                conversation_id,
                body.text,
                msgspec.json.encode(attachments).decode(),
                body.provider_message_id or None,
                timeout=self._timeout,
            )
        return str(status) == "INSERT 0 1"

    # --- the blocklist's own door ---------------------------------------------------------------

    async def create(
        self,
        tenant: str,
        kind: Kind,
        value: str,
        *,
        reason: str,
        created_by: str,
        expires_at: dt.datetime | None,
    ) -> Block | None:
        """A new block (value as ``normalized``), its creation logged; None when it names an
        unknown customer."""
        if len(reason) > MAX_REASON or "\x00" in reason:
            raise InvalidInput(f"a reason has at most {MAX_REASON} characters")
        value = normalized(kind, value)
        with translated_errors():
            async with self._pool.acquire() as conn, conn.transaction():
                await block_log.lock(conn, tenant)  # before any row: the sweep's order
                row = await conn.fetchrow(
                    f"""INSERT INTO blocks (tenant_id, kind, value, reason, created_by,
                            expires_at)
                        SELECT $1, $2, $3, $4, $5, $6
                        WHERE $2 <> 'customer' OR EXISTS (
                            SELECT 1 FROM customers WHERE tenant_id = $1 AND customer_id = $3)
                        RETURNING {_COLUMNS}""",
                    tenant,
                    str(kind),
                    value,
                    reason,
                    created_by,
                    expires_at,
                    timeout=self._timeout,
                )
                if row is not None:
                    created = _block(row)
                    await block_log.append(
                        conn,
                        tenant,
                        [(created.block_id, Change.CREATED, created.created_at, created_by)],
                    )
        self.forget(tenant)
        return None if row is None else _block(row)

    async def get(self, tenant: str, block_id: int) -> Block | None:
        with translated_errors():
            row = await self._pool.fetchrow(
                f"SELECT {_COLUMNS} FROM blocks WHERE tenant_id = $1 AND block_id = $2",
                tenant,
                block_id,
                timeout=self._timeout,
            )
        return None if row is None else _block(row)

    async def page(
        self,
        tenant: str,
        *,
        before: int | None,
        size: int,
        target: Key | None = None,
        active_only: bool = True,
    ) -> list[Block]:
        """Up to ``size`` blocks, newest first, with ids below ``before`` (None: from the
        newest); of one ``target`` (normalized) if given; standing ones only if
        ``active_only``."""
        with translated_errors():
            rows = await self._pool.fetch(
                f"""SELECT {_COLUMNS} FROM blocks
                    WHERE tenant_id = $1 AND ($2::bigint IS NULL OR block_id < $2)
                      AND ($3::text IS NULL OR (kind = $3 AND value = $4))
                      AND (NOT $5 OR (unblocked_at IS NULL
                                      AND (expires_at IS NULL OR expires_at > now())))
                    ORDER BY block_id DESC LIMIT $6""",
                tenant,
                before,
                None if target is None else str(target[0]),
                None if target is None else target[1],
                active_only,
                size,
                timeout=self._timeout,
            )
        return [_block(row) for row in rows]

    async def standing_for_customers(
        self, tenant: str, customers: Iterable[tuple[str, str | None, str | None]]
    ) -> dict[str, Block]:
        """The standing block on each of ``customers`` ((customer id, E.164 phone, e-mail)
        triples) that has one, by their id, phone or e-mail (the oldest if several), in one
        statement: customer id to block."""
        owners: list[str] = []
        kinds: list[str] = []
        values: list[str] = []
        for customer_id, phone, email in customers:
            for kind, value in (
                (Kind.CUSTOMER, customer_id),
                (Kind.PHONE, phone or ""),
                (Kind.EMAIL, (email or "").lower()),
            ):
                if value:
                    owners.append(customer_id)
                    kinds.append(str(kind))
                    values.append(value)
        if not owners:
            return {}
        columns = ", ".join(f"b.{c}" for c in _COLUMNS.split(", "))
        with translated_errors():
            rows = await self._pool.fetch(
                f"""SELECT DISTINCT ON (k.owner) k.owner, {columns} FROM blocks b
                    JOIN unnest($2::text[], $3::text[], $4::text[]) AS k(owner, kind, value)
                      ON b.kind = k.kind AND b.value = k.value
                    WHERE b.tenant_id = $1 AND b.unblocked_at IS NULL
                      AND (b.expires_at IS NULL OR b.expires_at > now())
                    ORDER BY k.owner, b.block_id""",
                tenant,
                owners,
                kinds,
                values,
                timeout=self._timeout,
            )
        return {row["owner"]: _block(row) for row in rows}

    async def unblock(self, tenant: str, block_id: int, *, by: str) -> Block | None:
        """End a block now, the unblocking logged (a block already ended stays as it was);
        None if there is none."""
        with translated_errors():
            async with self._pool.acquire() as conn, conn.transaction():
                await block_log.lock(conn, tenant)  # before the row's: the sweep's order
                ended = await conn.fetchrow(
                    f"""UPDATE blocks SET unblocked_at = now(), unblocked_by = $3
                        WHERE tenant_id = $1 AND block_id = $2 AND unblocked_at IS NULL
                          AND (expires_at IS NULL OR expires_at > now())
                        RETURNING {_COLUMNS}""",
                    tenant,
                    block_id,
                    by,
                    timeout=self._timeout,
                )
                if ended is not None:
                    block = _block(ended)
                    assert block.unblocked_at is not None
                    await block_log.append(
                        conn, tenant, [(block_id, Change.UNBLOCKED, block.unblocked_at, by)]
                    )
                    row = ended
                else:
                    row = await conn.fetchrow(
                        f"SELECT {_COLUMNS} FROM blocks WHERE tenant_id = $1 AND block_id = $2",
                        tenant,
                        block_id,
                        timeout=self._timeout,
                    )
        self.forget(tenant)
        return None if row is None else _block(row)
