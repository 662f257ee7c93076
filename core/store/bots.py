"""The tenant's bots and their versions (tables ``bots`` and ``bot_versions``, migration 0017).

Not routing state: the front door writes these tables (``BotService``), and the engine will
hold the served versions as tenant configuration. A version is the bot's definition (name,
channels, triggers, flow) as JSON of ``core.bots.codec.SCHEMA_VERSION``.

Versions: a version never served is edited in place; once a version has been served
(``published``: the bot was activated with it, or it was written while the bot was active) an
edit adds the next version, so a conversation in flight keeps what it started with. Writes name
the version they were read at (``expected``): a bot changed meanwhile raises ``BotChanged``
(ABORTED), so two editors never overwrite each other unseen. An active bot cannot be deleted
(``BotActive``, FAILED_PRECONDITION).
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from dataclasses import dataclass
from typing import Final

import asyncpg

from core.bots import codec
from core.bots.flow import Bot, BotStatus
from core.store import quotas
from core.store.errors import StoreError, translated_errors

SECRET_BYTES: Final = 32


class BotChanged(StoreError):
    """The bot was changed (or its status was) since the caller read it."""

    code = "ABORTED"


class BotActive(StoreError):
    """The bot is active: pause it first."""

    code = "FAILED_PRECONDITION"


class BotIsDraft(StoreError):
    """A draft was never served: there is nothing to pause."""

    code = "FAILED_PRECONDITION"


@dataclass(frozen=True, slots=True)
class StoredBot:
    bot: Bot
    """The version, with the bot's status."""
    published: bool
    """This version has been served."""
    created_at: dt.datetime
    """When the bot was created."""
    updated_at: dt.datetime
    """When this version was last written."""
    webhook_secret: str


_COLUMNS: Final = (
    "b.bot_id, b.status, b.webhook_secret, b.created_at, v.version, v.schema_version,"
    " v.definition, v.published, v.updated_at"
)


def _stored(row: asyncpg.Record) -> StoredBot:
    document = row["definition"]
    bot = codec.bot_from_document(
        json.loads(document) if isinstance(document, str | bytes) else document,
        row["schema_version"],
        bot_id=row["bot_id"],
        version=row["version"],
        status=BotStatus(row["status"]),
    )
    return StoredBot(
        bot=bot,
        published=row["published"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        webhook_secret=row["webhook_secret"],
    )


def _definition(bot: Bot) -> str:
    return json.dumps(codec.bot_document(bot), ensure_ascii=False, separators=(",", ":"))


class Bots:
    """The ``bots`` and ``bot_versions`` tables of every tenant."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create(self, tenant: str, bot: Bot, *, by: str) -> StoredBot | None:
        """Store ``bot`` as a draft, version 1, with a new webhook secret; None if the id is
        taken; ``QuotaExceeded`` past the tenant's ``bots`` quota (nothing stored)."""
        secret = secrets.token_hex(SECRET_BYTES)
        with translated_errors():
            async with self._pool.acquire() as conn, conn.transaction():
                await quotas.reserve(conn, tenant, "bots", 1)
                created = await conn.fetchval(
                    "INSERT INTO bots (tenant_id, bot_id, status, version, webhook_secret,"
                    " created_by) VALUES ($1, $2, 'draft', 1, $3, $4)"
                    " ON CONFLICT DO NOTHING RETURNING true",
                    tenant,
                    bot.id,
                    secret,
                    by,
                )
                if created is None:
                    return None
                await conn.execute(
                    "INSERT INTO bot_versions (tenant_id, bot_id, version, schema_version,"
                    " definition, updated_by) VALUES ($1, $2, 1, $3, $4::jsonb, $5)",
                    tenant,
                    bot.id,
                    codec.SCHEMA_VERSION,
                    _definition(bot),
                    by,
                )
                return await self._read(conn, tenant, bot.id, None)

    async def get(self, tenant: str, bot_id: str, version: int | None = None) -> StoredBot | None:
        """The newest version, or ``version``; None if there is no such bot or version."""
        with translated_errors():
            async with self._pool.acquire() as conn:
                return await self._read(conn, tenant, bot_id, version)

    @staticmethod
    async def _read(
        conn: asyncpg.Connection, tenant: str, bot_id: str, version: int | None
    ) -> StoredBot | None:
        row = await conn.fetchrow(
            f"SELECT {_COLUMNS} FROM bots b JOIN bot_versions v USING (tenant_id, bot_id)"
            " WHERE b.tenant_id = $1 AND b.bot_id = $2"
            " AND v.version = coalesce($3::integer, b.version)",
            tenant,
            bot_id,
            version,
        )
        return None if row is None else _stored(row)

    async def page(self, tenant: str, after: str, size: int) -> list[StoredBot]:
        """Up to ``size`` bots (newest versions) whose id sorts after ``after``, by id."""
        with translated_errors():
            rows = await self._pool.fetch(
                f"SELECT {_COLUMNS} FROM bots b JOIN bot_versions v"
                " ON v.tenant_id = b.tenant_id AND v.bot_id = b.bot_id AND v.version = b.version"
                " WHERE b.tenant_id = $1 AND b.bot_id > $2 ORDER BY b.bot_id LIMIT $3",
                tenant,
                after,
                size,
            )
        return [_stored(r) for r in rows]

    async def active(self, tenant: str) -> list[Bot]:
        """The newest versions of the tenant's active bots: what the engine serves."""
        with translated_errors():
            rows = await self._pool.fetch(
                f"SELECT {_COLUMNS} FROM bots b JOIN bot_versions v"
                " ON v.tenant_id = b.tenant_id AND v.bot_id = b.bot_id AND v.version = b.version"
                " WHERE b.tenant_id = $1 AND b.status = 'active' ORDER BY b.bot_id",
                tenant,
            )
        return [_stored(r).bot for r in rows]

    async def save(self, tenant: str, bot: Bot, *, expected: int, by: str) -> StoredBot | None:
        """Write ``bot``'s definition over version ``expected`` (the newest, as the caller read
        it): in place if that version was never served, else as the next version (served at
        once if the bot is active). None if there is no such bot; ``BotChanged`` if its newest
        version is no longer ``expected``."""
        definition = _definition(bot)
        with translated_errors():
            async with self._pool.acquire() as conn, conn.transaction():
                row = await conn.fetchrow(
                    "SELECT b.status, b.version, v.published FROM bots b JOIN bot_versions v"
                    " ON v.tenant_id = b.tenant_id AND v.bot_id = b.bot_id"
                    " AND v.version = b.version WHERE b.tenant_id = $1 AND b.bot_id = $2"
                    " FOR UPDATE OF b",
                    tenant,
                    bot.id,
                )
                if row is None:
                    return None
                if row["version"] != expected:
                    raise BotChanged(f"bot {bot.id!r} changed meanwhile: read it again")
                if not row["published"]:
                    await conn.execute(
                        "UPDATE bot_versions SET definition = $4::jsonb, schema_version = $5,"
                        " updated_at = now(), updated_by = $6"
                        " WHERE tenant_id = $1 AND bot_id = $2 AND version = $3",
                        tenant,
                        bot.id,
                        expected,
                        definition,
                        codec.SCHEMA_VERSION,
                        by,
                    )
                else:
                    await conn.execute(
                        "INSERT INTO bot_versions (tenant_id, bot_id, version, schema_version,"
                        " definition, published, updated_by)"
                        " VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7)",
                        tenant,
                        bot.id,
                        expected + 1,
                        codec.SCHEMA_VERSION,
                        definition,
                        row["status"] == BotStatus.ACTIVE.value,
                        by,
                    )
                    await conn.execute(
                        "UPDATE bots SET version = $3 WHERE tenant_id = $1 AND bot_id = $2",
                        tenant,
                        bot.id,
                        expected + 1,
                    )
                return await self._read(conn, tenant, bot.id, None)

    async def activate(self, tenant: str, bot_id: str, *, expected: int) -> StoredBot | None:
        """Serve the bot's newest version ``expected`` (validated by the caller); None if there
        is no such bot; ``BotChanged`` if its newest version is no longer ``expected``."""
        with translated_errors():
            async with self._pool.acquire() as conn, conn.transaction():
                version = await conn.fetchval(
                    "SELECT version FROM bots WHERE tenant_id = $1 AND bot_id = $2 FOR UPDATE",
                    tenant,
                    bot_id,
                )
                if version is None:
                    return None
                if version != expected:
                    raise BotChanged(f"bot {bot_id!r} changed meanwhile: read it again")
                await conn.execute(
                    "UPDATE bots SET status = 'active' WHERE tenant_id = $1 AND bot_id = $2",
                    tenant,
                    bot_id,
                )
                await conn.execute(
                    "UPDATE bot_versions SET published = true"
                    " WHERE tenant_id = $1 AND bot_id = $2 AND version = $3",
                    tenant,
                    bot_id,
                    version,
                )
                return await self._read(conn, tenant, bot_id, None)

    async def pause(self, tenant: str, bot_id: str) -> StoredBot | None:
        """Stop serving the bot (a paused one stays paused); None if there is no such bot;
        ``BotIsDraft`` for a draft."""
        with translated_errors():
            async with self._pool.acquire() as conn, conn.transaction():
                status = await conn.fetchval(
                    "SELECT status FROM bots WHERE tenant_id = $1 AND bot_id = $2 FOR UPDATE",
                    tenant,
                    bot_id,
                )
                if status is None:
                    return None
                if status == BotStatus.DRAFT.value:
                    raise BotIsDraft(f"bot {bot_id!r} is a draft: it was never served")
                await conn.execute(
                    "UPDATE bots SET status = 'paused' WHERE tenant_id = $1 AND bot_id = $2",
                    tenant,
                    bot_id,
                )
                return await self._read(conn, tenant, bot_id, None)

    async def delete(self, tenant: str, bot_id: str) -> bool:
        """Delete the bot and its versions; False if there is no such bot; ``BotActive`` if it
        is active."""
        with translated_errors():
            async with self._pool.acquire() as conn, conn.transaction():
                status = await conn.fetchval(
                    "SELECT status FROM bots WHERE tenant_id = $1 AND bot_id = $2 FOR UPDATE",
                    tenant,
                    bot_id,
                )
                if status is None:
                    return False
                if status == BotStatus.ACTIVE.value:
                    raise BotActive(f"bot {bot_id!r} is active: pause it before deleting it")
                await conn.execute(
                    "DELETE FROM bots WHERE tenant_id = $1 AND bot_id = $2", tenant, bot_id
                )
                return True

    async def secret(self, tenant: str, bot_id: str) -> str | None:
        """The secret the bot's webhook requests are signed with."""
        with translated_errors():
            found: str | None = await self._pool.fetchval(
                "SELECT webhook_secret FROM bots WHERE tenant_id = $1 AND bot_id = $2",
                tenant,
                bot_id,
            )
        return found
