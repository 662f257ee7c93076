"""Customers resolved from their channel identities (wa_id, LINE userId, ...).

Customers are plain data, not routing state: the front door resolves a customer's id before it
submits the command that names them. Each process keeps a bounded cache of the identities it
has resolved, so a customer writing again with the same details costs no round trip; details
that differ go to PostgreSQL, which refreshes them.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

import asyncpg

from core.store.errors import InvalidInput, translated_errors
from core.store.validation import require_name, require_phone, require_tenant, require_text

_KNOWN_CUSTOMER_SQL = """
WITH known AS (
    SELECT customer_id FROM customer_identities
    WHERE tenant_id = $1 AND channel = $2 AND external_id = $3
), refreshed AS (
    UPDATE customers c SET
        name = CASE WHEN $4 = '' THEN c.name ELSE $4 END,
        phone = coalesce($5, c.phone),
        email = coalesce($6, c.email)
    FROM known
    WHERE c.tenant_id = $1 AND c.customer_id = known.customer_id
      AND (($4 <> '' AND $4 IS DISTINCT FROM c.name)
           OR ($5::text IS NOT NULL AND $5 IS DISTINCT FROM c.phone)
           OR ($6::text IS NOT NULL AND $6 IS DISTINCT FROM c.email))
)
SELECT customer_id FROM known"""
"""A known identity's customer id, refreshing the customer's details when new ones are given."""

_FIND_SQL = """
SELECT customer_id FROM customer_identities
WHERE tenant_id = $1 AND channel = $2 AND external_id = $3"""

CACHE_SIZE: Final = 100_000

_Identity = tuple[str, str, str]
"""(tenant, channel, external_id)."""


@dataclass(frozen=True, slots=True)
class _Known:
    """An identity's customer id and the details this process last stored for it."""

    customer_id: str
    name: str
    phone: str | None
    email: str | None

    def covers(self, name: str, phone: str | None, email: str | None) -> bool:
        """True when storing these details would change nothing this process knows of (an
        empty name and absent phone or e-mail change nothing)."""
        return (
            (not name or name == self.name)
            and (phone is None or phone == self.phone)
            and (email is None or email == self.email)
        )


class Customers:
    """Resolves channel identities to customer ids. One per process; safe for concurrent callers.

    The cache holds up to ``cache_size`` identities, least recently used out first. Only a merge
    reassigns an identity (``core.store.customer_records``), and it leaves the merged customer's
    row pointing at the survivor (``merged_into``), so a cached id that a merge made stale still
    reads as the right customer; purging a customer from the recycle bin deletes its identities,
    and a cached id then names a customer that is gone (readers show it without details). The
    details are as this process last stored them (another process may have stored newer ones
    since, and a later change of details here goes to PostgreSQL as usual).
    """

    def __init__(
        self, pool: asyncpg.Pool, *, timeout: float = 5.0, cache_size: int = CACHE_SIZE
    ) -> None:
        self._pool = pool
        self._timeout = timeout
        self._cache_size = max(0, cache_size)
        self._known: OrderedDict[_Identity, _Known] = OrderedDict()

    async def resolve(
        self,
        tenant: str,
        channel: str,
        external_id: str,
        *,
        name: str = "",
        phone: str | None = None,
        email: str | None = None,
    ) -> str:
        """The customer id behind a channel identity, created once.

        A new customer gets the details given; for an existing one, the details given replace
        the stored ones (an empty name and absent phone or e-mail change nothing). Identities
        are not merged across channels, even when the phone numbers agree. An identity this
        process resolved before, with no new details, costs no round trip; another known one
        costs one statement.
        """
        require_name("tenant", tenant)
        require_name("channel", channel)
        require_text("external_id", external_id, min_len=1, max_len=200)
        require_text("name", name, max_len=200)
        if phone is not None:
            require_phone(phone)
        if email is not None:
            require_text("email", email, min_len=3, max_len=320)
            if "@" not in email:
                raise InvalidInput(f"email {email!r} has no @")
        identity = (tenant, channel, external_id)
        cached = self._known.get(identity)
        if cached is not None and cached.covers(name, phone, email):
            self._known.move_to_end(identity)
            return cached.customer_id
        customer_id, stored = await self._stored(tenant, channel, external_id, name, phone, email)
        if not stored:  # a racing creator's details won: remember only the id
            name, phone, email = "", None, None
        if cached is not None and cached.customer_id == customer_id:
            name, phone, email = name or cached.name, phone or cached.phone, email or cached.email
        self._remember(identity, _Known(customer_id, name, phone, email))
        return customer_id

    def _remember(self, identity: _Identity, known: _Known) -> None:
        if self._cache_size == 0:
            return
        self._known[identity] = known
        self._known.move_to_end(identity)
        while len(self._known) > self._cache_size:
            self._known.popitem(last=False)

    async def _stored(
        self,
        tenant: str,
        channel: str,
        external_id: str,
        name: str,
        phone: str | None,
        email: str | None,
    ) -> tuple[str, bool]:
        """The identity's customer id from PostgreSQL, refreshed if known, else created; and
        whether the details given are stored (False: a racing creator's were stored instead)."""
        with translated_errors():
            known: str | None = await self._pool.fetchval(
                _KNOWN_CUSTOMER_SQL,
                tenant,
                channel,
                external_id,
                name,
                phone,
                email,
                timeout=self._timeout,
            )
        if known is not None:
            return known, True
        # The same identity always proposes the same id, so racing creators agree.
        proposed = str(uuid.uuid5(uuid.NAMESPACE_URL, f"usher:{tenant}/{channel}/{external_id}"))
        with translated_errors():
            async with self._pool.acquire(timeout=self._timeout) as conn, conn.transaction():
                await require_tenant(conn, tenant, self._timeout)
                found: str | None = await conn.fetchval(
                    _FIND_SQL, tenant, channel, external_id, timeout=self._timeout
                )
                if found is not None:
                    return found, False
                created = await conn.execute(
                    """INSERT INTO customers (tenant_id, customer_id, name, phone, email)
                       VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING""",
                    tenant,
                    proposed,
                    name,
                    phone,
                    email,
                    timeout=self._timeout,
                )
                await conn.execute(
                    """INSERT INTO customer_identities
                           (tenant_id, channel, external_id, customer_id)
                       VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING""",
                    tenant,
                    channel,
                    external_id,
                    proposed,
                    timeout=self._timeout,
                )
                # A racing creator's row is visible now: our insert waited for its commit.
                customer_id: str = await conn.fetchval(
                    _FIND_SQL, tenant, channel, external_id, timeout=self._timeout
                )
                return customer_id, created == "INSERT 0 1"
