"""Connecting to PostgreSQL and Redis: the configured servers, or embedded ones by default.

After connecting, the code path is the same whichever servers answer.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import redis.asyncio as aioredis

from core.config import StoreSettings
from core.store.embedded import EmbeddedPostgres, EmbeddedRedis
from core.store.migrate import migrate


@dataclass
class Connections:
    pg: asyncpg.Pool
    redis: aioredis.Redis
    database_url: str
    """Where PostgreSQL is, without secrets."""
    redis_url: str
    _embedded: list[EmbeddedPostgres | EmbeddedRedis] = field(default_factory=list)

    async def close(self) -> None:
        await self.pg.close()
        await self.redis.aclose()
        for server in reversed(self._embedded):
            await asyncio.to_thread(server.stop)
        self._embedded.clear()


async def release_reset(conn: asyncpg.Connection) -> None:
    """What a connection needs before it goes back to the pool: only the rollback of a
    transaction left open. asyncpg's default reset costs a round trip on every release
    (unlock advisory locks, close cursors, UNLISTEN, RESET ALL); Usher takes none of those on
    pooled connections (its advisory lock is transaction-scoped)."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


async def create_pool(url: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    """The pool every Usher process uses (see ``release_reset``)."""
    return await asyncpg.create_pool(url, min_size=min_size, max_size=max_size, reset=release_reset)


def redact(url: str) -> str:
    """The URL without its password (user, host and database stay: they help debugging)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


async def database_url(settings: StoreSettings) -> tuple[str, EmbeddedPostgres | None]:
    if settings.database_url:
        return settings.database_url, None
    server = EmbeddedPostgres(settings.data_dir)
    return await asyncio.to_thread(server.start), server


async def connect(settings: StoreSettings, *, apply_migrations: bool = True) -> Connections:
    """Pools for PostgreSQL and Redis, starting the embedded servers where no URL is set."""
    embedded: list[EmbeddedPostgres | EmbeddedRedis] = []
    pg_url, pg_server = await database_url(settings)
    if pg_server is not None:
        embedded.append(pg_server)
    redis_url = settings.redis_url
    if not redis_url:
        redis_server = EmbeddedRedis(settings.data_dir)
        redis_url = await asyncio.to_thread(redis_server.start)
        embedded.append(redis_server)
    pool = await create_pool(pg_url, max_size=10)
    if apply_migrations:
        async with pool.acquire() as conn:
            await migrate(conn)
    client = aioredis.Redis.from_url(redis_url)
    return Connections(pool, client, redact(pg_url), redact(redis_url), embedded)
