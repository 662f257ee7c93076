"""The ``bench records`` suite runs end to end and reports in the promised shape.

Durations are never asserted: speed is the benchmark's business, not a test's.
"""

from __future__ import annotations

import json

from click.testing import CliRunner

from benchmarks.cli import bench

CONTRACT = {
    "suite",
    "customers",
    "conversations",
    "messages",
    "list_p95_ms",
    "search_p95_ms",
    "keyword_p95_ms",
    "export_rows_per_s",
    "export_peak_rss_mib",
    "imports",
    "import_rows_per_s",
}


def test_quick_run_reports_every_figure(database_url: str) -> None:
    result = CliRunner().invoke(
        bench, ["records", "--quick", "--json"], env={"USHER_DATABASE_URL": database_url}
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document.keys() >= CONTRACT
    assert document["suite"] == "records"
    assert (document["customers"], document["conversations"], document["messages"]) == (
        2_000,
        2_000,
        20_000,
    )
    for figure in ("list_p95_ms", "search_p95_ms", "keyword_p95_ms"):
        assert document[figure] > 0
    assert document["export_rows_per_s"] > 0
    assert document["export_peak_rss_mib"] > 0
    assert document["imports"] == 1_000
    assert isinstance(document["import_rows_per_s"], float)
    assert document["import_rows_per_s"] > 0


def test_the_table_names_the_figures(database_url: str) -> None:
    result = CliRunner().invoke(
        bench, ["records", "--quick"], env={"USHER_DATABASE_URL": database_url}
    )
    assert result.exit_code == 0, result.output
    assert "keyword p95 ms" in result.output
    assert "20,000" in result.output
    assert "import rows/s" in result.output
