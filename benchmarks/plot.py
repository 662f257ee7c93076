"""``--plot DIR``: PNG charts of a benchmark run, with matplotlib (the optional ``plot`` extra).

matplotlib is imported only here and only when a chart is drawn; ``require()`` says early, as a
click error, when it is missing. Charts: latency CDFs (``actor``, ``e2e``), throughput and p99
against the offered rate (``e2e`` ramp and baseline), and the core's cost per decision against
the number of agents (``core``). Each function returns the paths it wrote.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click

MISSING = "--plot needs matplotlib: pip install 'usher[plot]' (or pip install matplotlib)"


def require() -> None:
    """Fail now, as a click error, if matplotlib cannot be imported."""
    try:
        _pyplot()
    except ImportError as exc:
        raise click.ClickException(MISSING) from exc


def _pyplot() -> Any:
    matplotlib = importlib.import_module("matplotlib")
    matplotlib.use("Agg")  # files only, never a window
    return importlib.import_module("matplotlib.pyplot")


def _save(figure: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    _pyplot().close(figure)
    return path


def latency_cdf(
    curves: Mapping[str, Sequence[float]], path: Path, *, title: str, unit: str = "ms"
) -> Path:
    """One CDF line per named curve (ascending latencies), log-scaled latency axis."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for name, values in curves.items():
        if not values:
            continue
        n = len(values)
        axes.plot(list(values), [(i + 1) / n for i in range(n)], label=f"{name} (n={n:,})")
    axes.set_xscale("log")
    axes.set_xlabel(f"latency ({unit})")
    axes.set_ylabel("share of requests at or below")
    axes.set_ylim(0, 1.0)
    axes.grid(True, which="both", alpha=0.3)
    axes.set_title(title)
    axes.legend(loc="lower right")
    return _save(figure, path)


def throughput_and_p99(
    series: Mapping[str, Sequence[tuple[float, float, float]]], path: Path, *, title: str
) -> Path:
    """For each named series of (offered/s, completed/s, p99 ms): completed and p99 against
    offered, side by side."""
    plt = _pyplot()
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    top = 0.0
    for name, points in series.items():
        if not points:
            continue
        offered = [p[0] for p in points]
        top = max(top, *offered)
        left.plot(offered, [p[1] for p in points], marker="o", label=name)
        right.plot(offered, [p[2] for p in points], marker="o", label=name)
    left.plot([0, top], [0, top], linestyle=":", color="grey", label="offered")
    left.set_xlabel("offered per second")
    left.set_ylabel("completed per second")
    left.set_title("throughput")
    right.set_xlabel("offered per second")
    right.set_ylabel("p99 latency (ms)")
    right.set_yscale("log")
    right.set_title("p99")
    for axes in (left, right):
        axes.grid(True, alpha=0.3)
        axes.legend()
    figure.suptitle(title)
    return _save(figure, path)


def cost_against_agents(
    points: Sequence[tuple[int, float, float, float]], path: Path, *, title: str
) -> Path:
    """(agents, mean µs, p50 µs, p99 µs) per row: the cost of a decision as agents grow."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(7, 4.5))
    agents = [p[0] for p in points]
    for index, label in ((1, "mean"), (2, "p50"), (3, "p99")):
        axes.plot(agents, [p[index] for p in points], marker="o", label=label)
    axes.set_xscale("log")
    axes.set_xlabel("agents")
    axes.set_ylabel("µs per decision")
    axes.grid(True, which="both", alpha=0.3)
    axes.set_title(title)
    axes.legend()
    return _save(figure, path)
