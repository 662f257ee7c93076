"""A report's charts: what each one plots (``charts``, plain data) and the picture (``render``).

Three charts per report, read at a glance:

- ``volume``: a time series over the report's periods — conversations started, answered and
  abandoned (for the agents report: assigned, handled, offers missed), summed over its groups;
- ``outcomes``: stacked bars of how conversations ended — resolved, spam, ignored, left a
  message, abandoned — per period for the overview, per agent, queue or channel otherwise;
- ``first_response``: the first-response histogram over the whole range, in the reports'
  buckets (≤ 5 s, 5–15, 15–30, 30–60, 60–180, > 180 s).

``charts`` is pure (tests check the data, not pixels); ``render`` draws one as PNG or SVG with
matplotlib's Agg canvas (no display, no pyplot state), deterministically for SVG (its ids
come from ``svg.hashsalt``, fixed here).
"""

from __future__ import annotations

import io
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from core.reports import figures as fg
from core.reports.query import Kind
from core.reports.series import Report, Row


class ChartKind(StrEnum):
    VOLUME = "volume"
    OUTCOMES = "outcomes"
    FIRST_RESPONSE = "first_response"


class Style(StrEnum):
    LINES = "lines"
    STACKED = "stacked"
    BARS = "bars"


class ImageFormat(StrEnum):
    PNG = "png"
    SVG = "svg"


CONTENT_TYPES: Final = {ImageFormat.PNG: "image/png", ImageFormat.SVG: "image/svg+xml"}


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    values: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class Chart:
    """What one chart shows: its x labels and one series per line, bar segment or bar."""

    kind: ChartKind
    title: str
    style: Style
    x_labels: tuple[str, ...]
    series: tuple[Series, ...]
    y_label: str = "conversations"


BUCKET_LABELS: Final = ("≤5 s", "5–15 s", "15–30 s", "30–60 s", "60–180 s", ">180 s")
_OUTCOMES: Final = (
    ("resolved", "resolved"),
    ("spam", "spam"),
    ("ignored", "ignored"),
    ("left a message", "left_message"),
    ("abandoned", "abandoned"),
)
_AGENT_OUTCOMES: Final = (("resolved", "resolved"), ("spam", "spam"), ("ignored", "ignored"))
_VOLUME: Final = (("started", "started"), ("answered", "answered"), ("abandoned", "abandoned"))
_AGENT_VOLUME: Final = (
    ("assigned", "assigned"),
    ("handled", "handled"),
    ("offers missed", "offers_missed"),
)
COLOURS: Final = ("#2b6cb0", "#38a169", "#dd6b20", "#805ad5", "#e53e3e", "#718096")


def _per_period(report: Report) -> list[fg.Figures]:
    """Each period's figures, summed over the report's groups."""
    rows: list[list[Sequence[int]]] = [[] for _ in report.periods]
    for row in report.rows:
        if row.period is not None:
            rows[row.period].append(row.figures.values)
    return [fg.add(r) for r in rows]


def _name(report: Report, row: Row) -> str:
    return report.names.get(row.key, row.key) or "(none)"


def charts(report: Report) -> dict[ChartKind, Chart]:
    """The report's three charts, as data."""
    kind = report.query.kind
    what = kind.value
    periods = tuple(p.label for p in report.periods)
    per_period = _per_period(report)
    volume = _AGENT_VOLUME if kind is Kind.AGENTS else _VOLUME
    outcomes = _AGENT_OUTCOMES if kind is Kind.AGENTS else _OUTCOMES
    if kind is Kind.OVERVIEW:
        bars_x, bars = periods, per_period
    else:
        groups = [t for t in report.totals if t.figures.counts_conversations]
        bars_x, bars = tuple(_name(report, t) for t in groups), [t.figures for t in groups]
    buckets = report.total.response_buckets
    return {
        ChartKind.VOLUME: Chart(
            ChartKind.VOLUME,
            f"{what}: conversations per period ({report.time_zone})",
            Style.LINES,
            periods,
            tuple(Series(label, tuple(float(f[m]) for f in per_period)) for label, m in volume),
        ),
        ChartKind.OUTCOMES: Chart(
            ChartKind.OUTCOMES,
            f"{what}: how conversations ended",
            Style.STACKED,
            bars_x,
            tuple(Series(label, tuple(float(f[m]) for f in bars)) for label, m in outcomes),
        ),
        ChartKind.FIRST_RESPONSE: Chart(
            ChartKind.FIRST_RESPONSE,
            f"{what}: first response times",
            Style.BARS,
            BUCKET_LABELS,
            (Series("first responses", tuple(float(v) for v in buckets.values())),),
            y_label="first responses",
        ),
    }


_LOCK = threading.Lock()
"""matplotlib's font cache and text layout are shared: one figure drawn at a time."""


def render(chart: Chart, image: ImageFormat) -> bytes:
    """The chart as PNG or SVG bytes (an SVG is the same for the same chart)."""
    with _LOCK:
        figure = Figure(figsize=(9, 4.5), dpi=100, layout="constrained")
        FigureCanvasAgg(figure)
        axes = figure.add_subplot()
        positions = list(range(len(chart.x_labels)))
        if chart.style is Style.LINES:
            for i, s in enumerate(chart.series):
                axes.plot(positions, s.values, marker="o", label=s.name, color=COLOURS[i])
        elif chart.style is Style.STACKED:
            below = [0.0] * len(positions)
            for i, s in enumerate(chart.series):
                axes.bar(positions, s.values, bottom=below, label=s.name, color=COLOURS[i])
                below = [b + v for b, v in zip(below, s.values, strict=True)]
        else:
            (s,) = chart.series
            axes.bar(positions, s.values, color=COLOURS[0])
            for x, v in zip(positions, s.values, strict=True):
                axes.annotate(f"{v:g}", (x, v), ha="center", va="bottom", fontsize=9)
        axes.set_title(chart.title)
        axes.set_ylabel(chart.y_label)
        axes.set_xticks(positions, chart.x_labels, rotation=30 if len(positions) > 8 else 0)
        if len(positions) > 24:  # hours of a day or more: every few labels
            step = len(positions) // 12
            for i, label in enumerate(axes.get_xticklabels()):
                label.set_visible(i % step == 0)
        axes.yaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_ylim(bottom=0)
        axes.grid(axis="y", alpha=0.3)
        axes.spines[["top", "right"]].set_visible(False)
        if chart.style is not Style.BARS:
            axes.legend(loc="upper left", frameon=False, fontsize=9)
        out = io.BytesIO()
        matplotlib.rcParams["svg.hashsalt"] = "usher-reports"
        metadata = {"Date": None} if image is ImageFormat.SVG else {}
        figure.savefig(out, format=image.value, metadata=metadata)
        return out.getvalue()
