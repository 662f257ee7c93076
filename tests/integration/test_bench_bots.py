"""The ``bench bots`` suite runs end to end and reports in the promised shape, leaving no rows.

Durations are never asserted: speed is the benchmark's business, not a test's.
"""

from __future__ import annotations

import asyncio
import json

import asyncpg
from click.testing import CliRunner

from benchmarks.cli import bench


async def bench_rows(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        count: int = await conn.fetchval(
            "SELECT (SELECT count(*) FROM tenants WHERE tenant_id LIKE 'bench-%')"
            " + (SELECT count(*) FROM bot_runs WHERE tenant_id LIKE 'bench-%')"
        )
    finally:
        await conn.close()
    return count


def test_quick_json_against_a_database(database_url: str, redis_url: str) -> None:
    result = CliRunner().invoke(
        bench,
        ["bots", "--quick", "--json", "--database-url", database_url, "--redis-url", redis_url],
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["suite"] == "bots"
    assert document.keys() >= {"replies_per_s", "p99_ms", "p50_ms", "messages", "lost"}
    assert document["replies_per_s"] > 0 and document["replies"] > 0
    assert document["messages"] > 0 and document["lost"] == 0
    assert 0 < document["p50_ms"] <= document["p99_ms"]
    assert [v["name"] for v in document["verdicts"]] == [
        "bot replies/s through one shard",
        "p99 ms message -> bot reply over gRPC at 20/s",
    ]
    assert asyncio.run(bench_rows(database_url)) == 0
