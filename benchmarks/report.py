"""Output shared by the benchmark suites: one JSON document per run, or a rich table.

Every suite reports a list of frozen dataclass results. ``to_document`` turns them into the
stable JSON shape ``{"suite": name, "results": [...]}`` (field order kept); ``render_table``
prints the same results for people, with the columns a suite chooses.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table


@dataclass(frozen=True, slots=True)
class Column:
    """One table column: the result field it shows, its header and how to format the value."""

    field: str
    header: str
    fmt: Callable[[Any], str] = str


def thousands(value: float) -> str:
    """``1234567.8`` -> ``1,234,568``."""
    return f"{value:,.0f}"


def micros(value: float) -> str:
    """Microseconds with one decimal."""
    return f"{value:,.1f}"


def to_document(suite: str, results: Sequence[object]) -> dict[str, Any]:
    """The JSON document of a run; ``results`` must be dataclass instances."""
    rows: list[dict[str, Any]] = []
    for result in results:
        if not dataclasses.is_dataclass(result) or isinstance(result, type):
            raise TypeError(f"not a dataclass instance: {result!r}")
        rows.append(dataclasses.asdict(result))
    return {"suite": suite, "results": rows}


def dumps(document: dict[str, Any]) -> str:
    """Compact, stable JSON on one line (what ``--json`` prints)."""
    return json.dumps(document, separators=(",", ":"))


def write_json(document: dict[str, Any], path: Path) -> None:
    """Write the document (indented, newline-terminated), creating parent directories."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def render_table(
    title: str,
    columns: Sequence[Column],
    results: Sequence[object],
    console: Console | None = None,
) -> None:
    """Print the results as a table, one row per result, right-aligned numbers."""
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False)
    for column in columns:
        table.add_column(column.header, justify="right", no_wrap=True)
    for result in results:
        table.add_row(*(column.fmt(getattr(result, column.field)) for column in columns))
    (console or Console()).print(table)
