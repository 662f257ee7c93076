"""``core.housekeeping``: the recycle bin purge that ``usher serve`` runs in the background."""

from __future__ import annotations

import asyncio
import signal
import sys
import uuid

import asyncpg

from core import housekeeping

WAIT = 60.0  # a safety net against hangs, never an assertion about speed


async def _bin(pool: asyncpg.Pool, tenant: str) -> None:
    """Customers: ``old`` deleted 400 days ago, ``recent`` deleted now, ``live`` not deleted."""
    await pool.execute("INSERT INTO tenants (tenant_id) VALUES ($1)", tenant)
    for customer, deleted in (
        ("old", "now() - interval '400 days'"),
        ("recent", "now()"),
        ("live", "NULL"),
    ):
        await pool.execute(
            "INSERT INTO customers (tenant_id, customer_id, name, deleted_at)"
            f" VALUES ($1, $2, $3, {deleted})",
            tenant,
            customer,
            customer,
        )


async def _left(pool: asyncpg.Pool, tenant: str) -> set[str]:
    rows = await pool.fetch("SELECT customer_id FROM customers WHERE tenant_id = $1", tenant)
    return {r["customer_id"] for r in rows}


async def _purged(pool: asyncpg.Pool, tenant: str) -> None:
    async with asyncio.timeout(WAIT):
        while "old" in await _left(pool, tenant):
            await asyncio.sleep(0.1)


async def test_purge_once_removes_only_customers_deleted_past_the_retention(
    pool: asyncpg.Pool,
) -> None:
    await _bin(pool, "acme")
    assert await housekeeping.purge_once(pool) == 1
    assert await _left(pool, "acme") == {"recent", "live"}
    assert await housekeeping.purge_once(pool) == 0


async def test_the_background_task_purges_at_start_and_survives_a_failed_round(
    pool: asyncpg.Pool, database_url: str
) -> None:
    broken = await asyncpg.create_pool(database_url, min_size=0, max_size=1)
    await broken.close()
    failing = housekeeping.start(broken, every=0.01)
    await asyncio.sleep(0.1)  # several failed rounds
    assert not failing.done(), "a failed round stopped the loop"
    failing.cancel()

    await _bin(pool, "acme")
    task = housekeeping.start(pool)
    try:
        await _purged(pool, "acme")
    finally:
        task.cancel()
    assert await _left(pool, "acme") == {"recent", "live"}


async def test_usher_serve_runs_the_purge(
    pool: asyncpg.Pool, database_url: str, redis_url: str
) -> None:
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    await _bin(pool, tenant)
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "core.cli", "serve", "--local", "--port", "0"),
        *("--http-port", "-1", "--database-url", database_url, "--redis-url", redis_url),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await _purged(pool, tenant)
        assert await _left(pool, tenant) == {"recent", "live"}
        process.send_signal(signal.SIGTERM)
        assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
