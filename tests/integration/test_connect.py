"""``connect``: embedded servers by default, reused across runs; the same path for real URLs."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from core.config import StoreSettings
from core.store.connect import connect, redact


async def test_embedded_servers_start_migrate_and_are_reused_across_runs() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="usher-connect-"))
    try:
        first = await connect(StoreSettings(data_dir=data_dir))
        await first.pg.execute("INSERT INTO tenants (tenant_id) VALUES ('kept')")
        assert await first.redis.ping()
        await first.close()

        again = await connect(StoreSettings(data_dir=data_dir))
        assert await again.pg.fetchval("SELECT tenant_id FROM tenants") == "kept"
        assert (data_dir / "postgres").is_dir()
        await again.close()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


async def test_configured_urls_are_used_as_given(database_url: str, redis_url: str) -> None:
    connections = await connect(StoreSettings(database_url=database_url, redis_url=redis_url))
    try:
        assert await connections.pg.fetchval("SELECT 1") == 1
        assert await connections.redis.ping()
        assert connections.database_url == redact(database_url)
    finally:
        await connections.close()


def test_redact_hides_only_the_password() -> None:
    assert redact("postgresql://u:s3cret@db:5432/x") == "postgresql://u:***@db:5432/x"
    assert redact("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
