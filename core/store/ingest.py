"""Idempotent message ingestion, and customers resolved from their channel identities.

A message carrying its provider's id (WhatsApp ``wamid``, LINE ``webhookEventId``, Twilio
``MessageSid``, e-mail ``Message-ID``) is stored once per tenant and channel: Redis ``SET NX EX``
filters repeats cheaply, the unique index ``messages_provider_id`` decides. A repeat returns the
original's message id with ``duplicate=True`` and writes nothing. When Redis fails (or is not
given), PostgreSQL alone deduplicates; Redis is tried again ``redis_retry_after`` seconds later.

Input is checked against the schema's limits before anything is written; the constraints are the
backstop, and their violations surface as the same typed errors.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, Literal, TypeVar, get_args

import asyncpg
import redis.asyncio as aioredis
import redis.exceptions

from core.store.errors import (
    PG_CONNECTION_ERRORS,
    InvalidInput,
    StoreUnavailable,
    translated_errors,
)
from core.store.validation import (
    require_aware,
    require_name,
    require_phone,
    require_tenant,
    require_text,
)

log = logging.getLogger(__name__)

T = TypeVar("T")


# --- values ------------------------------------------------------------------------------------

Sender = Literal["customer", "agent", "bot", "system"]
SENDERS: Final[tuple[str, ...]] = get_args(Sender)
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file already stored elsewhere, named by its content hash."""

    sha256: str
    name: str
    type: str
    size: int
    uri: str = ""
    """Where the gateway serves it (https, or an object-store URI); empty when not known."""


@dataclass(frozen=True, slots=True, kw_only=True)
class NewMessage:
    """A message to store. The customer's are inbound; agent, bot and system ones are outbound.

    ``provider_message_id`` (optional for outbound ones) makes the write idempotent.
    ``created_at`` defaults to the database's clock. The conversation need not exist yet.
    """

    tenant: str
    conversation_id: str
    channel: str
    sender: Sender
    content: str = ""
    agent_id: str | None = None
    provider_message_id: str | None = None
    attachments: tuple[Attachment, ...] = ()
    created_at: dt.datetime | None = None

    @property
    def direction(self) -> Literal["inbound", "outbound"]:
        return "inbound" if self.sender == "customer" else "outbound"


@dataclass(frozen=True, slots=True)
class Ingested:
    message_id: int
    duplicate: bool
    """True: this provider id was stored before; ``message_id`` is the original's."""
    created_at: dt.datetime | None = None
    """When the new message was stored (None for a duplicate)."""


MAX_CONTENT: Final = 65536
MAX_PROVIDER_ID: Final = 256


def validate_message(m: NewMessage) -> None:
    """``InvalidInput`` unless ``m`` fits the schema and its sender/agent rules."""
    require_name("tenant", m.tenant)
    require_name("channel", m.channel)
    require_text("conversation_id", m.conversation_id, min_len=1, max_len=200)
    if m.sender not in SENDERS:
        raise InvalidInput(f"sender must be one of {', '.join(SENDERS)}, got {m.sender!r}")
    require_text("content", m.content, max_len=MAX_CONTENT)
    if m.sender == "agent" and m.agent_id is None:
        raise InvalidInput("an agent message names its agent")
    if m.agent_id is not None:
        if m.sender != "agent":
            raise InvalidInput(f"a {m.sender} message has no agent_id")
        require_text("agent_id", m.agent_id, min_len=1, max_len=100)
    if m.provider_message_id is not None:
        require_text(
            "provider_message_id", m.provider_message_id, min_len=1, max_len=MAX_PROVIDER_ID
        )
    for a in m.attachments:
        if not isinstance(a, Attachment):
            raise InvalidInput("attachments must be Attachment values")
        if not isinstance(a.sha256, str) or _SHA256.fullmatch(a.sha256) is None:
            raise InvalidInput("an attachment's sha256 must be 64 lowercase hex digits")
        require_text("attachment name", a.name, max_len=255)
        require_text("attachment type", a.type, max_len=255)
        require_text("attachment uri", a.uri, max_len=2048)
        if not isinstance(a.size, int) or isinstance(a.size, bool) or a.size < 0:
            raise InvalidInput("an attachment's size must be a whole number >= 0")
    if m.created_at is not None:
        require_aware("created_at", m.created_at)


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


def _attachments_json(attachments: tuple[Attachment, ...]) -> str:
    return json.dumps(
        [
            {"sha256": a.sha256, "name": a.name, "type": a.type, "size": a.size, "uri": a.uri}
            for a in attachments
        ],
        ensure_ascii=False,
    )


# --- the ingestor ------------------------------------------------------------------------------

_PENDING: Final = b"pending"
"""The dedupe key's value until the message id is known: repeats go on to PostgreSQL."""
_PENDING_TTL: Final = 60
"""Seconds a placeholder lives: a failed write (say, an unknown tenant) leaves litter briefly."""

_INSERT = """
WITH tenant AS (SELECT 1 FROM tenants WHERE tenant_id = $1 FOR KEY SHARE)
INSERT INTO messages (tenant_id, conversation_id, channel, direction, sender, agent_id, content,
                      attachments, provider_message_id, created_at)
SELECT $1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9, COALESCE($10, now()) FROM tenant
ON CONFLICT (tenant_id, channel, provider_message_id) WHERE provider_message_id IS NOT NULL
DO NOTHING
RETURNING message_id, created_at"""
"""One statement: the tenant held (``FOR KEY SHARE``) and the message stored, or no row when
the tenant is unknown or the provider id is taken."""

_ORIGINAL = """
SELECT message_id FROM messages
WHERE tenant_id = $1 AND channel = $2 AND provider_message_id = $3"""


class _Unavailable:
    pass


_REDIS_DOWN: Final = _Unavailable()
_REDIS_ERRORS: Final = (redis.exceptions.RedisError, OSError, TimeoutError)


class Ingestor:
    """Stores messages and resolves customers. One per process; safe for concurrent callers.

    ``redis`` (a client that does not decode responses) may be None: PostgreSQL alone then
    deduplicates. Each Redis call is bounded by ``redis_timeout`` seconds.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        redis: aioredis.Redis | None,
        *,
        prefix: str = "usher:",
        dedupe_ttl: float = 24 * 3600,
        timeout: float = 5.0,
        redis_timeout: float = 0.5,
        redis_retry_after: float = 1.0,
    ) -> None:
        self._pool = pool
        self._redis = redis
        self._prefix = prefix
        self._ttl = max(1, int(dedupe_ttl))
        self._timeout = timeout
        self._redis_timeout = redis_timeout
        self._retry_after = redis_retry_after
        self._redis_down_until: float | None = None
        """While set, Redis failed recently: skip it until this loop time."""
        self._probing = False

    def dedupe_key(self, tenant: str, channel: str, provider_message_id: str) -> str:
        return f"{self._prefix}dedupe:{tenant}:{channel}:{provider_message_id}"

    async def ingest(self, message: NewMessage) -> Ingested:
        """Store ``message`` once; a repeat of its provider id returns the original's id."""
        validate_message(message)
        provider_id = message.provider_message_id
        if provider_id is None:
            return await self._insert(message)
        key = self.dedupe_key(message.tenant, message.channel, provider_id)
        seen = await self._seen(key)
        if seen is not None:
            original = await self._original(message, provider_id, fallback=seen)
            if original is not None:
                return Ingested(original, duplicate=True)
            # Redis remembered a message PostgreSQL does not have (a restored database, or a
            # Redis shared with another deployment): PostgreSQL is the arbiter, so store it.
            await self._redis_call(lambda r: r.delete(key))
        result = await self._insert(message)
        await self._redis_call(lambda r: r.set(key, str(result.message_id), ex=self._ttl))
        return result

    async def _original(
        self, message: NewMessage, provider_id: str, *, fallback: int
    ) -> int | None:
        """The stored message with this provider id; ``fallback`` (Redis's answer) while
        PostgreSQL is unavailable, so redeliveries are still recognised during an outage."""
        try:
            async with self._pool.acquire(timeout=self._timeout) as conn:
                found: int | None = await conn.fetchval(
                    _ORIGINAL, message.tenant, message.channel, provider_id, timeout=self._timeout
                )
        except PG_CONNECTION_ERRORS:
            return fallback
        return found

    async def resolve_customer(
        self,
        tenant: str,
        channel: str,
        external_id: str,
        *,
        name: str = "",
        phone: str | None = None,
        email: str | None = None,
    ) -> str:
        """The customer id behind a channel identity (wa_id, LINE userId, ...), created once.

        A new customer gets the details given; for an existing one, the details given replace
        the stored ones (an empty name and absent phone or e-mail change nothing). Identities
        are not merged across channels, even when the phone numbers agree. A known customer
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
            return known
        # The same identity always proposes the same id, so racing creators agree.
        proposed = str(uuid.uuid5(uuid.NAMESPACE_URL, f"usher:{tenant}/{channel}/{external_id}"))
        find = """SELECT customer_id FROM customer_identities
                  WHERE tenant_id = $1 AND channel = $2 AND external_id = $3"""
        with translated_errors():
            async with self._pool.acquire(timeout=self._timeout) as conn, conn.transaction():
                await require_tenant(conn, tenant, self._timeout)
                found: str | None = await conn.fetchval(
                    find, tenant, channel, external_id, timeout=self._timeout
                )
                if found is not None:
                    return found
                await conn.execute(
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
                    find, tenant, channel, external_id, timeout=self._timeout
                )
                return customer_id

    # --- PostgreSQL ----------------------------------------------------------------------------

    async def _insert(self, m: NewMessage) -> Ingested:
        args = (
            m.tenant,
            m.conversation_id,
            m.channel,
            m.direction,
            m.sender,
            m.agent_id,
            m.content,
            _attachments_json(m.attachments),
            m.provider_message_id,
            m.created_at,
        )
        with translated_errors():
            async with self._pool.acquire(timeout=self._timeout) as conn:
                row = await conn.fetchrow(_INSERT, *args, timeout=self._timeout)
                if row is not None:
                    return Ingested(row["message_id"], False, row["created_at"])
                # Taken (the insert waited for the holder's commit, so this statement sees
                # it), or an unknown tenant.
                original: int | None = None
                if m.provider_message_id is not None:
                    original = await conn.fetchval(
                        _ORIGINAL, m.tenant, m.channel, m.provider_message_id, timeout=self._timeout
                    )
                if original is None:
                    async with conn.transaction():
                        await require_tenant(conn, m.tenant, self._timeout)
        if original is None:  # the original was deleted between the two statements
            raise StoreUnavailable("the original message vanished while deduplicating; retry")
        return Ingested(original, duplicate=True)

    # --- Redis ---------------------------------------------------------------------------------

    async def _seen(self, key: str) -> int | None:
        """The original's id if Redis knows the key; None sends the message on to PostgreSQL
        (first sighting, a write still in flight, or Redis unavailable)."""
        claimed = await self._redis_call(
            lambda r: r.set(key, _PENDING, nx=True, ex=min(self._ttl, _PENDING_TTL))
        )
        if claimed is _REDIS_DOWN or claimed:
            return None
        value = await self._redis_call(lambda r: r.get(key))
        if isinstance(value, str):
            value = value.encode()
        if isinstance(value, bytes) and value.isdigit():
            return int(value)
        return None

    async def _redis_call(self, op: Callable[[aioredis.Redis], Awaitable[T]]) -> T | _Unavailable:
        """``op``'s result, or ``_REDIS_DOWN`` if Redis failed. After a failure Redis is skipped
        for ``redis_retry_after`` seconds, then one call at a time probes it."""
        if self._redis is None:
            return _REDIS_DOWN
        loop = asyncio.get_running_loop()
        down_until = self._redis_down_until
        if down_until is not None:
            if self._probing or loop.time() < down_until:
                return _REDIS_DOWN
            self._probing = True
        try:
            async with asyncio.timeout(self._redis_timeout):
                result = await op(self._redis)
        except _REDIS_ERRORS as exc:
            if down_until is None:
                log.warning("Redis is unavailable, deduplicating in PostgreSQL alone: %r", exc)
            self._redis_down_until = loop.time() + self._retry_after
            return _REDIS_DOWN
        finally:
            if down_until is not None:
                self._probing = False
        if down_until is not None:
            log.warning("Redis is back: deduplicating with it again")
            self._redis_down_until = None
        return result
