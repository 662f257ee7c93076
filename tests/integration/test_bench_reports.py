"""The ``bench reports`` suite runs end to end (a smoke size) and reports in the promised shape.

Durations are never asserted: speed is the benchmark's business, not a test's.
"""

from __future__ import annotations

import json

from click.testing import CliRunner

from benchmarks.cli import bench
from benchmarks.reports import ReportsConfig, report_queries

CONTRACT = {"suite", "conversations", "report_p95_ms", "projection_overhead"}


def test_quick_run_reports_every_figure(database_url: str) -> None:
    result = CliRunner().invoke(
        bench, ["reports", "--quick", "--json"], env={"USHER_DATABASE_URL": database_url}
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document.keys() >= CONTRACT
    assert document["suite"] == "reports"
    assert (document["conversations"], document["days"]) == (2_000, 31)
    assert set(document["report_p95_ms"]) == set(report_queries(ReportsConfig()))
    assert all(value > 0 for value in document["report_p95_ms"].values())
    assert isinstance(document["projection_overhead"], float)
    assert document["rollup_rows"] > 0
    assert document["events_folded"] > 2_000
