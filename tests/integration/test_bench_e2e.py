"""The ``bench e2e`` suite runs end to end (``usher serve`` as a child process on the session's
PostgreSQL and Redis, its own Ray) and reports in the promised shape; the open-loop harness, the
no-op baseline, the memory figures and the process groups work on their own.

Durations are never asserted: speed is the benchmark's business, not a test's.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from benchmarks import e2e, loadgen, procstat
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
    "rpcs_per_s",
    "rpc_ratio",
    "frontdoor_cpu_ms_per_conversation",
    "peak_routed_per_s",
    "peak_share",
    "memory",
}
MEMORY_GROUPS = {"frontdoor", "shards", "ray", "postgres", "redis", "server"}


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
    last = document["steps"][-1]
    assert last["routed_per_s"] == document["routed_per_s"]
    # every routed conversation took at least a start and an accept
    assert document["rpcs_per_s"] >= 2 * document["routed_per_s"] > 0
    assert last["rpcs_per_s"] == document["rpcs_per_s"]
    assert isinstance(last["kept_up"], bool)
    assert document["rpc_ratio"] > document["ratio_to_baseline"] > 0
    assert document["frontdoor_cpu_ms_per_conversation"] > 0
    assert document["peak_routed_per_s"] is None and document["peak_share"] is None  # no ramp
    memory = document["memory"]
    assert memory["samples"] >= 2 and memory["growth_after_s"] == 0  # too short to settle
    groups = memory["groups"]
    assert groups.keys() == MEMORY_GROUPS
    assert groups["frontdoor"]["processes"] >= 1
    assert groups["shards"]["processes"] == 1
    assert groups["ray"]["processes"] >= 1
    assert groups["postgres"]["processes"] == groups["redis"]["processes"] == 0  # by URL
    server = groups["server"]
    own = ("frontdoor", "shards", "ray")
    assert server["processes"] == sum(groups[g]["processes"] for g in own)
    assert server["end_mib"] == document["server_memory"]["end_mib"] > 0
    titles = {(p["group"], p["title"].split(".")[0]) for p in memory["processes"]}
    assert {("shards", e2e.SHARD_TITLE), ("frontdoor", "usher serve")} <= titles
    assert json.loads(out.read_text(encoding="utf-8")) == document


async def test_the_open_loop_keeps_its_rate_and_counts() -> None:
    done: list[int] = []
    start = time.perf_counter() + 0.01
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
    # Poisson luck: fewer arrived than offered, and all of them completed
    unlucky = loadgen.Step(100, 92, 1, 2, 3, 0, 0, 0, 1.0, arrived_per_s=92)
    assert unlucky.kept_up


def step(arrived: float, routed: float, errors: int = 0, unrouted: int = 0) -> e2e.E2EStep:
    return e2e.E2EStep(
        offered_per_s=100, routed_per_s=routed, arrived_per_s=arrived, rpcs_per_s=4 * routed,
        enqueue_to_offer_p50_ms=1, enqueue_to_offer_p99_ms=2, enqueue_to_offer_p999_ms=3,
        accept_to_assigned_p50_ms=1, accept_to_assigned_p99_ms=2, errors=errors,
        unrouted=unrouted, frontdoor_cpu=0.5, frontdoor_cpu_ms_per_conversation=5.0,
        ray_cpu=0.1, shards_cpu=0.1, store_cpu=0.1, loadgen_cpu=0.1, lag_p99_ms=0, seconds=10,
    )  # fmt: skip


def test_a_step_kept_up_with_what_arrived() -> None:
    assert step(arrived=92, routed=90).kept_up  # fewer than offered arrived: all were routed
    assert not step(arrived=110, routed=100).kept_up  # more arrived than it routed
    assert not step(arrived=100, routed=100, unrouted=1).kept_up
    assert step(arrived=100, routed=100, errors=10).kept_up  # 1 % of 1,000 arrivals
    assert not step(arrived=100, routed=100, errors=11).kept_up


def test_routed_is_counted_after_the_latency() -> None:
    arrivals = [i / 100 for i in range(1000)]  # 100 a second for 10 s
    steady = e2e.Books(loadgen.Window(start=0.0, end=10.0))
    steady.routed = [(t, t + 0.5) for t in arrivals]  # each routed 0.5 s after it arrived
    assert steady.count_routed() == 1000 == steady.window.completed
    behind = e2e.Books(loadgen.Window(start=0.0, end=10.0))
    behind.routed = [(t, 0.2 + i / 80) for i, t in enumerate(arrivals)]  # 80 a second at most
    assert 790 <= behind.count_routed() <= 810


def sample(at: float, rss: dict[str, dict[int, float]]) -> e2e.Sample:
    return e2e.Sample(
        at=at,
        rss={g: {pid: int(mib * 2**20) for pid, mib in pids.items()} for g, pids in rss.items()},
        titles={pid: f"p{pid}" for pids in rss.values() for pid in pids},
    )


def test_memory_growth_leaves_out_the_first_minute() -> None:
    # the front door grows 60 MiB in its first minute, then 1 MiB a minute; a shard is flat;
    # a Ray worker comes and goes
    samples = [
        sample(
            t,
            {
                "frontdoor": {1: 100 + (t if t <= 60 else 60 + (t - 60) / 60)},
                "shards": {2: 200.0},
                "ray": {3: 50.0} | ({4: 10.0} if 100 <= t < 200 else {}),
            },
        )
        for t in range(0, 301, 10)
    ]
    report = e2e.memory_report(samples, 10.0)
    assert report.samples == 31 and report.growth_after_s == e2e.SETTLE_S
    groups = report.groups
    assert groups["frontdoor"].growth_mib_per_min == 1.0
    assert (groups["frontdoor"].start_mib, groups["frontdoor"].end_mib) == (100.0, 164.0)
    assert groups["shards"].growth_mib_per_min == 0.0 and groups["shards"].processes == 1
    assert groups["postgres"].processes == 0 and groups["postgres"].end_mib == 0.0
    assert groups["server"].start_mib == 350.0 and groups["server"].processes == 3
    worker = next(p for p in report.processes if p.pid == 4)
    assert (worker.group, worker.start_mib, worker.max_mib, worker.end_mib) == ("ray", 0, 10, 0)
    assert [p.title for p in report.processes] == ["p1", "p2", "p3", "p4"]

    short = e2e.memory_report(samples[:5], 10.0)  # 40 s: fitted over all of it
    assert short.growth_after_s == 0.0 and short.groups["frontdoor"].growth_mib_per_min == 60.0


def test_process_titles_and_ray_processes() -> None:
    serve = "/v/bin/python -m core.cli serve --host 127.0.0.1 --port 5"
    worker = "/v/bin/python -m core.cli serve --workers 1 --worker-of 9 --worker-index 1"
    raylet = "/v/lib/python3.11/site-packages/ray/core/src/ray/raylet/raylet --x=1 --y=2"
    assert [e2e._title(c) for c in (serve, worker, raylet)] == [
        "usher serve",
        "usher serve worker 1",
        "raylet --x=1",
    ]
    assert procstat.is_ray(raylet) and procstat.is_ray("ray::RouterShard.submit")
    assert not procstat.is_ray(serve) and not procstat.is_ray(worker)


def test_process_figures_of_this_process() -> None:
    import os

    me = os.getpid()
    assert me in procstat.tree(me)
    assert procstat.cpu_ticks([me]) >= 0
    assert procstat.rss_bytes([me]) > 0
    assert procstat.rss_each([me, -1]).keys() == {me}
    assert "python" in procstat.cmdline(me) and procstat.cmdline(-1) == ""
    assert me in procstat.children()[os.getppid()]
    assert procstat.cores(procstat.TICKS_PER_S, 2.0) == 0.5
