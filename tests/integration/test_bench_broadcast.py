"""The ``bench broadcast`` suite runs end to end at its smoke size (the real SMS gateway as a
child process, the fake provider as another) and reports in the promised shape: every recipient
sent, none twice.

Durations are never asserted: speed is the benchmark's business, not a test's.
"""

from __future__ import annotations

import json

from click.testing import CliRunner

from benchmarks.cli import bench

CONTRACT = {
    "suite",
    "recipients",
    "sends_per_s",
    "enqueue_to_provider_p50_ms",
    "enqueue_to_provider_p99_ms",
    "duplicates",
    "missing",
    "not_sent",
    "gateway_peak_rss_mib",
    "gateway_rss_growth_mib",
    "core_peak_rss_mib",
    "target_sends_per_s",
    "meets_target",
}


def test_quick_run_sends_each_recipient_once(database_url: str, redis_url: str) -> None:
    result = CliRunner().invoke(
        bench,
        ["broadcast", "--quick", "--json"],
        env={"USHER_DATABASE_URL": database_url, "USHER_REDIS_URL": redis_url},
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.output.strip().splitlines()[-1])
    assert document.keys() >= CONTRACT
    assert document["suite"] == "broadcast"
    assert document["recipients"] == 2_000
    assert (document["duplicates"], document["missing"], document["not_sent"]) == (0, 0, 0)
    assert document["sends_per_s"] > 0
    assert 0 < document["enqueue_to_provider_p50_ms"] <= document["enqueue_to_provider_p99_ms"]
    assert document["gateway_peak_rss_mib"] > 0
