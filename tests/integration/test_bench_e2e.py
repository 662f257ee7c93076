"""The ``bench e2e`` suite runs end to end (``usher serve`` as a child process on the session's
PostgreSQL and Redis, its own Ray) and reports in the promised shape; the open-loop harness and
the no-op baseline work on their own.

Durations are never asserted: speed is the benchmark's business, not a test's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from benchmarks import loadgen, procstat
from benchmarks.cli import bench

CONTRACT = {
    "suite",
    "duration_s",
    "routed_per_s",
    "enqueue_to_offer_ms",
    "accept_to_assigned_ms",
    "errors",
    "baseline_rps",
    "ratio_to_baseline",
}


def run(*args: str) -> dict[str, Any]:
    result = CliRunner().invoke(bench, ["e2e", "--quick", "--json", *args])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output.strip().splitlines()[-1])
    assert isinstance(document, dict)
    return document


def test_quick_json_on_given_urls(
    local_ray: None, database_url: str, redis_url: str, tmp_path: Path
) -> None:
    """On the session's Ray (the suite starts its shards there), PostgreSQL and Redis."""
    out = tmp_path / "e2e.json"
    document = run(
        *("--database-url", database_url, "--redis-url", redis_url, "--out", str(out)),
        *("--agents", "4", "--shards", "1"),
    )
    assert document.keys() >= CONTRACT
    assert document["suite"] == "e2e"
    assert document["duration_s"] > 0
    assert document["routed_per_s"] > 0
    for key in ("enqueue_to_offer_ms", "accept_to_assigned_ms"):
        p = document[key]
        assert 0 < p["p50"] <= p["p99"] <= p["p999"]
    assert document["errors"] >= 0
    assert document["baseline_rps"] > 0
    assert document["ratio_to_baseline"] > 0
    assert document["cpu_cores"]["server"] > 0
    assert document["cpu_cores"]["store"] == -1  # given by URL: not attributed
    assert document["steps"][-1]["routed_per_s"] == document["routed_per_s"]
    assert json.loads(out.read_text(encoding="utf-8")) == document


async def test_the_open_loop_keeps_its_rate_and_counts() -> None:
    done: list[int] = []
    start = loadgen.time.perf_counter() + 0.01
    window = loadgen.Window(start=start, end=start + 0.5)

    async def fire(i: int, intended: float) -> None:
        if i % 10 == 9:
            raise RuntimeError("a failure")
        window.completed += 1
        done.append(i)

    left = await loadgen.run_step(200.0, 0.5, fire, window, seed=3)
    assert left == 0
    assert window.arrivals > 0
    assert window.errors == window.error_kinds["RuntimeError"] == window.arrivals // 10
    assert window.completed == len(done)


async def test_the_no_op_baseline_answers() -> None:
    steps, latencies = await loadgen.baseline([100.0], 0.3, 2, seed=1)
    assert len(steps) == 1
    assert steps[0].completed_per_s > 0
    assert latencies and latencies == sorted(latencies)


def test_quantiles_and_peak() -> None:
    assert loadgen.quantile([], 0.5) == 0.0
    assert loadgen.quantile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.0
    assert loadgen.ramp_rates(10, 2, 3) == [10, 20, 40]
    kept = loadgen.Step(100, 99, 1, 2, 3, 0, 0, 0, 1.0)
    behind = loadgen.Step(200, 120, 1, 2, 3, 0, 0, 0, 1.0)
    assert kept.kept_up and not behind.kept_up
    assert loadgen.peak([kept, behind]) == 99


def test_process_figures_of_this_process() -> None:
    import os

    me = os.getpid()
    assert me in procstat.tree(me)
    assert procstat.cpu_ticks([me]) >= 0
    assert procstat.rss_bytes([me]) > 0
    assert procstat.cores(procstat.TICKS_PER_S, 2.0) == 0.5
