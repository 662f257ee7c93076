from __future__ import annotations

import asyncpg
import redis.asyncio as aioredis


async def test_the_database_is_migrated(pool: asyncpg.Pool) -> None:
    assert await pool.fetchval("SELECT count(*) FROM schema_migrations") >= 1


async def test_redis_answers(redis: aioredis.Redis, key_prefix: str) -> None:
    assert await redis.set(key_prefix + "k", "v", nx=True, ex=10)
    assert not await redis.set(key_prefix + "k", "v", nx=True, ex=10)
