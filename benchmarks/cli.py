"""``usher bench``: the benchmark suites (``core``: the engine alone; ``store``: the event log).

Each suite prints a table, or with ``--json`` one JSON document on stdout; ``--out FILE`` also
writes the document to a file. Progress goes to stderr, and only when stderr is a terminal.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import asyncpg
import click
from rich.console import Console

from benchmarks import report
from benchmarks import store as store_suite
from benchmarks.core import CoreConfig, check_targets, run_core, smoke

SPEED_COLUMNS = (
    report.Column("agents", "agents", report.thousands),
    report.Column("decisions_per_s", "decisions/s", report.thousands),
    report.Column("mean_us", "mean µs", report.micros),
    report.Column("p50_us", "p50 µs", report.micros),
    report.Column("p99_us", "p99 µs", report.micros),
    report.Column("cycle_per_s", "cycles/s", report.thousands),
    report.Column("occupancy", "busy", lambda v: f"{v:.0%}"),
    report.Column("waiting", "waiting", report.thousands),
)
STORE_COLUMNS = (
    report.Column("writers", "writers", report.thousands),
    report.Column("group_commit", "grouped", lambda v: "yes" if v else "no"),
    report.Column("appends_per_s", "appends/s", report.thousands),
    report.Column("events_per_s", "events/s", report.thousands),
    report.Column("p50_ms", "p50 ms", lambda v: f"{v:,.2f}"),
    report.Column("p99_ms", "p99 ms", lambda v: f"{v:,.2f}"),
    report.Column("events_per_commit", "events/tx", lambda v: f"{v:,.1f}"),
    report.Column("appends_per_commit", "appends/tx", lambda v: f"{v:,.1f}"),
)
MEMORY_COLUMNS = (
    report.Column("agents", "agents", report.thousands),
    report.Column("bytes_per_agent", "bytes/agent", report.thousands),
    report.Column("bytes_per_waiting_conversation", "bytes/waiting conv.", report.thousands),
    report.Column("bytes_kept_per_ended_conversation", "bytes kept/ended conv.", report.thousands),
)


def _counts(_ctx: click.Context, _param: click.Parameter, value: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(part.replace("_", "")) for part in value.split(",") if part.strip())
    except ValueError:
        raise click.BadParameter("a comma-separated list of integers, e.g. 100,1000") from None
    if not counts or any(n <= 0 for n in counts):
        raise click.BadParameter("give at least one positive count")
    return counts


def _progress(suite: str) -> Callable[[str], None]:
    """Report progress on stderr, and only when it is a terminal."""

    def say(message: str) -> None:
        if sys.stderr.isatty():
            click.echo(f"bench {suite}: {message}", err=True)

    return say


def _emit(suite: str, results: Sequence[object], as_json: bool, out: Path | None) -> None:
    document = report.to_document(suite, results)
    if out is not None:
        report.write_json(document, out)
    if as_json:
        click.echo(report.dumps(document))


@click.group()
def bench() -> None:
    """Benchmark suites of the dispatch hot path."""


@bench.command("core")
@click.option(
    "--agents",
    default="100,1000,10000,100000",
    show_default=True,
    callback=_counts,
    help="Agent counts, one tenant (and one table row) each.",
)
@click.option("--skills", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--queues", type=click.IntRange(min=1), default=500, show_default=True)
@click.option(
    "--decisions",
    type=click.IntRange(min=1),
    default=None,
    help="Decisions measured per row [default: 100,000; 2,000 with --quick].",
)
@click.option("--quick", is_flag=True, help="Small counts: a smoke run of a few seconds.")
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="Also write the JSON document to this file.",
)
def core(
    agents: tuple[int, ...],
    skills: int,
    queues: int,
    decisions: int | None,
    quick: bool,
    seed: int,
    as_json: bool,
    out: Path | None,
) -> None:
    """The routing engine alone, in process: decisions/s, latency per decision, memory.

    How it is measured (and what a "decision" is) is described in benchmarks/core.py.
    """
    base = CoreConfig(agents=1, skills=skills, queues=queues, seed=seed)
    if quick:
        base = smoke(base)
    if decisions is not None:
        base = dataclasses.replace(base, decisions=decisions)
    say = _progress("core")
    results = [run_core(dataclasses.replace(base, agents=n), progress=say) for n in agents]
    _emit("core", results, as_json, out)
    if as_json:
        return
    console = Console()
    measured = min(r.decisions for r in results)
    title = f"bench core: {skills:,} skills, {queues:,} queues, {measured:,}+ decisions a row"
    report.render_table(title, SPEED_COLUMNS, results, console)
    report.render_table("memory", MEMORY_COLUMNS, results, console)
    if quick:
        console.print("  --quick: a smoke run, not a measurement")
    for verdict in check_targets(results):
        mark = "[green]met[/]   " if verdict.ok else "[red]MISSED[/]"
        console.print(
            f"  {mark} {verdict.name}: {_number(verdict.value)} (target {_number(verdict.limit)})"
        )


@bench.command("store")
@click.option(
    "--writers",
    default="1,8,64",
    show_default=True,
    callback=_counts,
    help="Concurrent writers (one tenant each), two table rows each: group commit on and off.",
)
@click.option(
    "--seconds",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Measured seconds per row [default: 5; 0.3 with --quick].",
)
@click.option("--agents", type=click.IntRange(min=1), default=12, show_default=True)
@click.option("--queues", type=click.IntRange(min=1), default=4, show_default=True)
@click.option(
    "--database-url",
    envvar="USHER_DATABASE_URL",
    show_envvar=True,
    default=None,
    help="PostgreSQL to measure: pending migrations are applied, the benchmark's rows deleted "
    "afterwards [default: an embedded one in a temporary directory].",
)
@click.option("--quick", is_flag=True, help="Brief rows: a smoke run of a few seconds.")
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="Also write the JSON document to this file.",
)
def store(
    writers: tuple[int, ...],
    seconds: float | None,
    agents: int,
    queues: int,
    database_url: str | None,
    quick: bool,
    seed: int,
    as_json: bool,
    out: Path | None,
) -> None:
    """The event log on PostgreSQL: appends/s, events/s and append latency, with group commit
    and with a transaction per append.

    How it is measured is described in benchmarks/store.py.
    """
    base = store_suite.StoreConfig(writers=1, agents=agents, queues=queues, seed=seed)
    if quick:
        base = store_suite.smoke(base)
    if seconds is not None:
        base = dataclasses.replace(base, seconds=seconds, warmup_seconds=min(1.0, seconds / 5))
    configs = [
        dataclasses.replace(base, writers=n, group_commit=on)
        for n in writers
        for on in (True, False)
    ]
    try:
        results = asyncio.run(
            store_suite.run_store(configs, database_url, progress=_progress("store"))
        )
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise click.ClickException(f"PostgreSQL: {' '.join(str(exc).split())}") from exc
    _emit("store", results, as_json, out)
    if as_json:
        return
    console = Console()
    title = f"bench store: {agents} agents, {queues} queues a tenant, {base.seconds:g} s a row"
    report.render_table(title, STORE_COLUMNS, results, console)
    if quick:
        console.print("  --quick: a smoke run, not a measurement")
    for n, ratio in store_suite.speedups(results):
        console.print(f"  {n:,} writers: group commit makes {ratio:g}× the appends/s")


def _number(value: float) -> str:
    return f"{value:,.2f}".rstrip("0").rstrip(".")
