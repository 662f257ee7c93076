"""The ``bench core`` suite runs end to end and reports in the promised shape.

Durations are never asserted: speed is the benchmark's business, not a test's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from benchmarks.cli import bench
from benchmarks.report import to_document

CONTRACT = {
    "agents",
    "skills",
    "queues",
    "decisions_per_s",
    "p50_us",
    "p99_us",
    "bytes_per_agent",
    "bytes_per_waiting_conversation",
}


def run(*args: str) -> dict[str, Any]:
    result = CliRunner().invoke(bench, ["core", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert isinstance(document, dict)
    return document


def test_quick_json_has_the_contract_shape_and_decides(tmp_path: Path) -> None:
    out = tmp_path / "bench" / "core.json"
    document = run("--agents", "100,1000", "--quick", "--json", "--out", str(out))

    assert document["suite"] == "core"
    results = document["results"]
    assert isinstance(results, list)
    assert [r["agents"] for r in results] == [100, 1000]
    for row in results:
        assert row.keys() >= CONTRACT
        assert (row["skills"], row["queues"]) == (200, 500)
        assert row["decisions"] > 0
        assert row["decisions_per_s"] > 0
        assert 0 < row["p50_us"] <= row["p99_us"]
        assert row["bytes_per_agent"] > 0
        assert row["bytes_per_waiting_conversation"] > 0
        assert row["cycle_per_s"] > 0
    assert json.loads(out.read_text()) == document


def test_table_output_names_the_targets() -> None:
    args = ["core", "--agents", "50", "--skills", "10", "--queues", "10", "--quick"]
    result = CliRunner().invoke(bench, [*args, "--decisions", "100"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "decisions/s" in result.output
    assert "bytes per agent at 50" in result.output


def test_bad_agent_counts_are_refused() -> None:
    result = CliRunner().invoke(bench, ["core", "--agents", "10,x"])
    assert result.exit_code != 0
    assert "comma-separated" in result.output


def test_the_seed_and_sizes_are_honoured() -> None:
    args = ("--agents", "60", "--skills", "12", "--queues", "20", "--decisions", "200")
    (row,) = run(*args, "--quick", "--seed", "7", "--json")["results"]
    assert (row["agents"], row["skills"], row["queues"]) == (60, 12, 20)
    assert row["decisions"] >= 200


def test_documents_are_built_from_dataclasses_only() -> None:
    with pytest.raises(TypeError):
        to_document("core", [{"agents": 1}])
