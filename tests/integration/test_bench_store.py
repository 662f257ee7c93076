"""The ``bench store`` suite runs end to end and reports in the promised shape.

Durations are never asserted: speed is the benchmark's business, not a test's.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import asyncpg
from click.testing import CliRunner

from benchmarks.cli import bench
from benchmarks.store import StoreResult, speedups

CONTRACT = {
    "writers",
    "events_per_s",
    "appends_per_s",
    "p50_ms",
    "p99_ms",
    "events_per_commit",
    "group_commit",
}


def run(*args: str) -> dict[str, Any]:
    result = CliRunner().invoke(
        bench, ["store", "--quick", *args], env={"USHER_DATABASE_URL": None}
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert isinstance(document, dict)
    return document


def check(document: dict[str, Any], writers: list[int]) -> None:
    assert document["suite"] == "store"
    rows = document["results"]
    assert [(r["writers"], r["group_commit"]) for r in rows] == [
        (n, on) for n in writers for on in (True, False)
    ]
    for row in rows:
        assert row.keys() >= CONTRACT
        assert row["appends"] > 0
        assert row["events"] >= row["appends"]  # every command writes at least one event
        assert row["commits"] > 0
        assert row["events_per_s"] >= row["appends_per_s"] > 0
        assert 0 < row["p50_ms"] <= row["p99_ms"]
        assert row["events_per_commit"] >= row["appends_per_commit"] >= 1
        if not row["group_commit"]:
            assert row["appends_per_commit"] == 1  # a transaction per append
        assert row["appends_per_commit"] <= row["writers"]


async def bench_rows(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        count: int = await conn.fetchval(
            "SELECT (SELECT count(*) FROM tenants WHERE tenant_id LIKE 'bench-%')"
            " + (SELECT count(*) FROM events WHERE tenant_id LIKE 'bench-%')"
        )
    finally:
        await conn.close()
    return count


def test_quick_json_against_a_database_leaves_no_rows(database_url: str) -> None:
    document = run("--writers", "1,4", "--json", "--database-url", database_url)
    check(document, [1, 4])
    assert asyncio.run(bench_rows(database_url)) == 0


def test_quick_on_the_embedded_default_writes_the_out_file(tmp_path: Path) -> None:
    out = tmp_path / "bench" / "store.json"
    document = run("--writers", "3", "--json", "--out", str(out))
    check(document, [3])
    assert json.loads(out.read_text(encoding="utf-8")) == document


def test_the_table(database_url: str) -> None:
    result = CliRunner().invoke(
        bench, ["store", "--quick", "--writers", "2"], env={"USHER_DATABASE_URL": database_url}
    )
    assert result.exit_code == 0, result.output
    assert "appends/s" in result.output
    assert "group commit makes" in result.output
    assert "--quick: a smoke run" in result.output


def test_an_unreachable_database_is_one_line() -> None:
    result = CliRunner().invoke(
        bench, ["store", "--quick", "--database-url", "postgresql://postgres:pw@127.0.0.1:1/x"]
    )
    assert result.exit_code == 1
    assert result.output.startswith("Error: PostgreSQL: ")
    assert len(result.output.strip().splitlines()) == 1


def test_speedups_pair_the_rows() -> None:
    def row(writers: int, on: bool, appends_per_s: float) -> StoreResult:
        return StoreResult(writers, 0.0, appends_per_s, 0.0, 0.0, 1.0, on, 1.0, 1, 1, 1, 1.0)

    rows = [row(1, True, 100), row(1, False, 50), row(8, True, 900), row(64, False, 10)]
    assert speedups(rows) == [(1, 2.0)]
