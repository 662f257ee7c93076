"""The ``bench actor`` suite runs end to end on the session's Ray and database, and reports in
the promised shape.

Durations are never asserted: speed is the benchmark's business, not a test's.
"""

from __future__ import annotations

import dataclasses

import asyncpg
import pytest

from benchmarks import actor
from benchmarks.actor import ActorConfig, ActorResult

CONTRACT = {"suite", "batched_per_s", "unbatched_per_s", "p50_us", "p99_us"}
ROW_CONTRACT = {
    "mode",
    "commands_per_s",
    "p50_us",
    "p99_us",
    "commands_per_call",
    "shard_cpu",
    "shard_cpu_s_per_1k_commands",
    "commits",
    "events_per_commit",
}


def row(batched: bool, per_s: float) -> ActorResult:
    return ActorResult(
        "batched" if batched else "unbatched", batched, 64, 8, 1, per_s, 1.0, 2.0, 1.0, 1, 1,
        0.0, 0.0, 0.0, 1.0,
    )  # fmt: skip


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


async def test_quick_rows_on_a_real_shard(local_ray: None, database_url: str) -> None:
    base = actor.smoke(ActorConfig(batched=False, in_flight=16, agents=8, capacity=4))
    configs = [base, dataclasses.replace(base, batched=True, max_batch=8)]

    runs = await actor.run_actor(configs, database_url)

    results = [run.result for run in runs]
    assert [r.batched for r in results] == [False, True]
    for r, run in zip(results, runs, strict=True):
        assert r.commands > 0 and r.commands_per_s > 0
        assert 0 < r.p50_us <= r.p99_us
        assert len(run.latencies_us) == r.commands
        assert r.driver_cpu >= 0 and r.db_cpu >= -1
        assert r.shard_cpu_s_per_1k_commands >= 0  # the shard's pid is known on this Ray
        assert r.commits > 0 and r.events_per_commit >= 1  # its event log's counters too
    assert results[0].commands_per_call == 1.0
    # commands and calls are counted over the same window, whose edges cut a call or two
    assert 1.0 <= results[1].commands_per_call <= 8.0 * 1.25
    document = actor.document(results)
    assert document.keys() >= CONTRACT
    assert document["suite"] == "actor"
    assert document["batched_per_s"] > 0 and document["unbatched_per_s"] > 0
    assert [r["mode"] for r in document["results"]] == ["unbatched", "batched"]
    for r in document["results"]:
        assert r.keys() >= ROW_CONTRACT
    assert await bench_rows(database_url) == 0  # a given database keeps none of the rows


def test_the_summary_takes_the_best_batched_row() -> None:
    summary = actor.summarize([row(False, 100.0), row(True, 300.0), row(True, 900.0)])
    assert (summary.batched_per_s, summary.unbatched_per_s, summary.speedup) == (900, 100, 9)
    verdicts = actor.check_targets(summary)
    assert [v.ok for v in verdicts] == [False, True]


def test_the_summary_needs_both_kinds_of_row() -> None:
    with pytest.raises(ValueError):
        actor.summarize([row(True, 1.0)])
