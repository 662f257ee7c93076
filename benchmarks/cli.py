"""``usher bench``: the benchmark suites (``core``: the engine alone; ``store``: the event log;
``actor``: one Ray shard, batched or not; ``e2e``: ``usher serve`` through the SDK;
``chaos``: faults under load, then an audit that nothing acknowledged was lost; ``fuzz``:
generated requests for every RPC, every answer clean and the store agreeing with the engine;
``kb``: knowledge-base search quality on tests/kb_eval; ``bots``: bot replies through one
shard and message -> bot reply latency over gRPC; ``records``: conversation lists,
searches and exports over a seeded tenant; ``reports``: reports over a year of rollups and the
rollups' cost to the projection; ``broadcast``: one broadcast through the SMS gateway and a
local fake provider).

Each suite prints a table, or with ``--json`` one JSON document on stdout; ``--out FILE`` also
writes the document to a file; ``--plot DIR`` (core, actor, e2e) writes PNG charts, with the
optional matplotlib. Progress goes to stderr, and only when stderr is a terminal.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import asyncpg
import click
from rich.console import Console

from benchmarks import actor as actor_suite
from benchmarks import e2e as e2e_suite
from benchmarks import plot, report
from benchmarks import store as store_suite
from benchmarks.bots import bots
from benchmarks.broadcast import broadcast
from benchmarks.chaos.command import chaos
from benchmarks.core import CoreConfig, Verdict, check_targets, run_core, smoke
from benchmarks.fuzz import fuzz
from benchmarks.kb import kb
from benchmarks.records import records
from benchmarks.reports import reports

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


def _ms(value: float) -> str:
    return f"{value:,.1f}"


def _cores(value: float) -> str:
    return f"{value:.2f}" if value >= 0 else "-"


ACTOR_COLUMNS = (
    report.Column("mode", "mode"),
    report.Column("max_batch", "batch ≤", report.thousands),
    report.Column("in_flight", "in flight", report.thousands),
    report.Column("commands_per_s", "commands/s", report.thousands),
    report.Column("p50_us", "p50 ms", lambda v: f"{v / 1e3:,.1f}"),
    report.Column("p99_us", "p99 ms", lambda v: f"{v / 1e3:,.1f}"),
    report.Column("commands_per_call", "per call", lambda v: f"{v:,.1f}"),
    report.Column("driver_cpu", "cores: driver", _cores),
    report.Column("shard_cpu", "shard", _cores),
    report.Column("db_cpu", "PG", _cores),
    report.Column(
        "shard_cpu_s_per_1k_commands", "shard CPU s/1k", lambda v: f"{v:.3f}" if v >= 0 else "-"
    ),
    report.Column("events_per_commit", "ev/commit", lambda v: f"{v:,.1f}" if v >= 0 else "-"),
)
E2E_COLUMNS = (  # rates a second; CPU in cores; latencies in ms
    report.Column("offered_per_s", "offered", report.thousands),
    report.Column("arrived_per_s", "arrived", report.thousands),
    report.Column("routed_per_s", "routed", report.thousands),
    report.Column("kept_up", "kept up", lambda v: "yes" if v else "no"),
    report.Column("rpcs_per_s", "rpcs", report.thousands),
    report.Column("enqueue_to_offer_p50_ms", "offer p50", _ms),
    report.Column("enqueue_to_offer_p99_ms", "p99", _ms),
    report.Column("accept_to_assigned_p99_ms", "accept p99", _ms),
    report.Column("errors", "errors", report.thousands),
    report.Column("frontdoor_cpu", "serve", _cores),
    report.Column("frontdoor_cpu_ms_per_conversation", "ms/conv", _ms),
    report.Column("ray_cpu", "Ray", _cores),
    report.Column("store_cpu", "store", _cores),
    report.Column("loadgen_cpu", "loadgen", _cores),
)
MEMORY_GROUP_COLUMNS = (
    report.Column("group", "group"),
    report.Column("processes", "processes", report.thousands),
    report.Column("start_mib", "start MiB", _ms),
    report.Column("end_mib", "end MiB", _ms),
    report.Column("max_mib", "peak MiB", _ms),
    report.Column("growth_mib_per_min", "MiB/min", lambda v: f"{v:+,.2f}"),
)
MEMORY_PROCESS_COLUMNS = (
    report.Column("group", "group"),
    report.Column("pid", "pid", str),
    report.Column("title", "process"),
    *MEMORY_GROUP_COLUMNS[2:],
)
BASELINE_COLUMNS = (
    report.Column("offered_per_s", "offered/s", report.thousands),
    report.Column("completed_per_s", "requests/s", report.thousands),
    report.Column("p50_ms", "p50 ms", lambda v: f"{v:,.2f}"),
    report.Column("p99_ms", "p99 ms", lambda v: f"{v:,.2f}"),
    report.Column("p999_ms", "p99.9 ms", lambda v: f"{v:,.2f}"),
    report.Column("errors", "errors", report.thousands),
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
    _emit_document(report.to_document(suite, results), as_json, out)


def _emit_document(document: dict[str, Any], as_json: bool, out: Path | None) -> None:
    if out is not None:
        report.write_json(document, out)
    if as_json:
        click.echo(report.dumps(document))


PLOT_OPTION = click.option(
    "--plot",
    "plot_dir",
    type=click.Path(file_okay=False, writable=True, path_type=Path),
    default=None,
    help="Also write PNG charts into this directory (needs matplotlib: the `plot` extra).",
)


def _wide_console() -> Console:
    """A terminal's own width; 140 columns when not a terminal (wide tables stay whole)."""
    return Console() if sys.stdout.isatty() else Console(width=140)


def _wrote(path: Path, as_json: bool) -> None:
    click.echo(f"wrote {path}", err=as_json)


def _verdicts(verdicts: Sequence[Verdict], console: Console) -> None:
    for verdict in verdicts:
        mark = "[green]met[/]   " if verdict.ok else "[red]MISSED[/]"
        console.print(
            f"  {mark} {verdict.name}: {_number(verdict.value)} (target {_number(verdict.limit)})"
        )


@click.group()
def bench() -> None:
    """Benchmark suites of the dispatch hot path."""


bench.add_command(chaos)
bench.add_command(fuzz)
bench.add_command(bots)
bench.add_command(kb)
bench.add_command(records)
bench.add_command(reports)
bench.add_command(broadcast)


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
@PLOT_OPTION
def core(
    agents: tuple[int, ...],
    skills: int,
    queues: int,
    decisions: int | None,
    quick: bool,
    seed: int,
    as_json: bool,
    out: Path | None,
    plot_dir: Path | None,
) -> None:
    """The routing engine alone, in process: decisions/s, latency per decision, memory.

    How it is measured (and what a "decision" is) is described in benchmarks/core.py.
    """
    if plot_dir is not None:
        plot.require()
    base = CoreConfig(agents=1, skills=skills, queues=queues, seed=seed)
    if quick:
        base = smoke(base)
    if decisions is not None:
        base = dataclasses.replace(base, decisions=decisions)
    say = _progress("core")
    results = [run_core(dataclasses.replace(base, agents=n), progress=say) for n in agents]
    _emit("core", results, as_json, out)
    if plot_dir is not None:
        points = [(r.agents, r.mean_us, r.p50_us, r.p99_us) for r in results]
        title = f"bench core: cost per decision ({skills:,} skills, {queues:,} queues)"
        _wrote(plot.cost_against_agents(points, plot_dir / "core-cost.png", title=title), as_json)
    if as_json:
        return
    console = Console()
    measured = min(r.decisions for r in results)
    title = f"bench core: {skills:,} skills, {queues:,} queues, {measured:,}+ decisions a row"
    report.render_table(title, SPEED_COLUMNS, results, console)
    report.render_table("memory", MEMORY_COLUMNS, results, console)
    if quick:
        console.print("  --quick: a smoke run, not a measurement")
    _verdicts(check_targets(results), console)


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


_DATABASE_URL = click.option(
    "--database-url",
    envvar="USHER_DATABASE_URL",
    show_envvar=True,
    default=None,
    help="PostgreSQL to use: pending migrations are applied [default: an embedded one in a "
    "temporary directory].",
)


@bench.command("actor")
@click.option(
    "--max-batch",
    default="64,256",
    show_default=True,
    callback=_counts,
    help="Batched rows: the most commands per actor call, one row each (plus one unbatched row).",
)
@click.option(
    "--in-flight",
    type=click.IntRange(min=1),
    default=256,
    show_default=True,
    help="Conversations driven concurrently (each one command at a time).",
)
@click.option(
    "--calls-in-flight",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Batched rows: actor calls in flight at once (2: as two front doors would).",
)
@click.option(
    "--seconds",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Measured seconds per row [default: 5; 0.5 with --quick].",
)
@click.option("--agents", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--capacity", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--queues", type=click.IntRange(min=1), default=4, show_default=True)
@_DATABASE_URL
@click.option("--quick", is_flag=True, help="Brief rows: a smoke run of a few seconds.")
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="Also write the JSON document to this file.",
)
@PLOT_OPTION
def actor(
    max_batch: tuple[int, ...],
    in_flight: int,
    calls_in_flight: int,
    seconds: float | None,
    agents: int,
    capacity: int,
    queues: int,
    database_url: str | None,
    quick: bool,
    seed: int,
    as_json: bool,
    out: Path | None,
    plot_dir: Path | None,
) -> None:
    """One RouterShard on a local Ray and a real PostgreSQL: commands/s and latency per command,
    batched through the front door's dispatcher versus one Ray call per command.

    How it is measured is described in benchmarks/actor.py.
    """
    if plot_dir is not None:
        plot.require()
    base = actor_suite.ActorConfig(
        batched=False,
        in_flight=in_flight,
        calls_in_flight=calls_in_flight,
        agents=agents,
        capacity=capacity,
        queues=queues,
        seed=seed,
    )
    if quick:
        base = actor_suite.smoke(base)
    if seconds is not None:
        base = dataclasses.replace(base, seconds=seconds, warmup_seconds=min(1.0, seconds / 5))
    configs = [base] + [dataclasses.replace(base, batched=True, max_batch=n) for n in max_batch]
    try:
        runs = asyncio.run(
            actor_suite.run_actor(configs, database_url, progress=_progress("actor"))
        )
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise click.ClickException(f"PostgreSQL: {' '.join(str(exc).split())}") from exc
    results = [run.result for run in runs]
    _emit_document(actor_suite.document(results), as_json, out)
    if plot_dir is not None:
        curves = {run.result.mode + f" ≤{run.result.max_batch}": run.latencies_us for run in runs}
        title = f"bench actor: latency per command, {in_flight} in flight"
        path = plot.latency_cdf(curves, plot_dir / "actor-latency-cdf.png", title=title, unit="µs")
        _wrote(path, as_json)
    if as_json:
        return
    console = _wide_console()
    title = f"bench actor: one RouterShard, {agents} agents, {base.seconds:g} s a row"
    report.render_table(title, ACTOR_COLUMNS, results, console)
    summary = actor_suite.summarize(results)
    console.print(
        f"  batching makes {summary.speedup:g}× the commands/s"
        f" ({summary.batched_per_s:,.0f} against {summary.unbatched_per_s:,.0f})"
    )
    if quick:
        console.print("  --quick: a smoke run, not a measurement")
    _verdicts(actor_suite.check_targets(summary), console)


@bench.command("e2e")
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    default=100.0,
    show_default=True,
    help="Conversations offered a second in the measured run (with --ramp: the share "
    "--peak-share of the peak found instead).",
)
@click.option(
    "--seconds",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Length of the measured run [default: 20; 2 with --quick].",
)
@click.option("--ramp", is_flag=True, help="First raise the rate step by step to find the peak.")
@click.option("--ramp-start", type=click.FloatRange(min=0, min_open=True), default=None)
@click.option("--ramp-factor", type=click.FloatRange(min=1, min_open=True), default=None)
@click.option("--ramp-steps", type=click.IntRange(min=1), default=None)
@click.option("--ramp-seconds", type=click.FloatRange(min=0, min_open=True), default=None)
@click.option(
    "--peak-share",
    type=click.FloatRange(min=0, max=1, min_open=True),
    default=0.8,
    show_default=True,
)
@click.option("--agents", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--skills", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--queues", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--capacity", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--gateways", type=click.IntRange(min=1), default=2, show_default=True)
@click.option(
    "--handle-ms",
    type=click.FloatRange(min=0),
    default=None,
    help="How long an agent keeps a conversation before ending it [default: 200].",
)
@click.option("--shards", type=click.IntRange(min=1), default=2, show_default=True)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Front-door processes: usher serve --workers N, if this usher serve has the option "
    "[default: not passed].",
)
@click.option(
    "--prestart-shards/--serve-starts-ray",
    default=False,
    show_default=True,
    help="Start Ray and the shard actors here and run usher serve with --ray-address (cluster "
    "mode), or let usher serve start its own Ray, as a user's does.",
)
@click.option("--baseline/--no-baseline", default=True, show_default=True)
@_DATABASE_URL
@click.option("--redis-url", envvar="USHER_REDIS_URL", show_envvar=True, default=None)
@click.option("--quick", is_flag=True, help="A smoke run of a few seconds, not a measurement.")
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="Also write the JSON document to this file.",
)
@PLOT_OPTION
def e2e(
    rate: float,
    seconds: float | None,
    ramp: bool,
    ramp_start: float | None,
    ramp_factor: float | None,
    ramp_steps: int | None,
    ramp_seconds: float | None,
    peak_share: float,
    agents: int,
    skills: int,
    queues: int,
    capacity: int,
    gateways: int,
    handle_ms: float | None,
    shards: int,
    workers: int | None,
    prestart_shards: bool,
    baseline: bool,
    database_url: str | None,
    redis_url: str | None,
    quick: bool,
    seed: int,
    as_json: bool,
    out: Path | None,
    plot_dir: Path | None,
) -> None:
    """The whole system: usher serve (Ray shards, PostgreSQL, Redis) driven through the Python
    SDK by simulated gateways and agents, open-loop; and a no-op gRPC server as the baseline.

    How it is measured is described in benchmarks/e2e.py.
    """
    if plot_dir is not None:
        plot.require()
    config = e2e_suite.E2EConfig(
        rate=rate,
        ramp=ramp,
        peak_share=peak_share,
        agents=agents,
        skills=skills,
        queues=queues,
        capacity=capacity,
        gateways=gateways,
        shards=shards,
        workers=workers,
        prestart_shards=prestart_shards,
        baseline=baseline,
        database_url=database_url,
        redis_url=redis_url,
        seed=seed,
    )
    if quick:
        config = e2e_suite.smoke(config)
    given: dict[str, Any] = {
        "seconds": seconds,
        "ramp_start": ramp_start,
        "ramp_factor": ramp_factor,
        "ramp_steps": ramp_steps,
        "ramp_seconds": ramp_seconds,
        "handle_ms": handle_ms,
    }
    config = dataclasses.replace(config, **{k: v for k, v in given.items() if v is not None})
    try:
        run = asyncio.run(e2e_suite.run_e2e(config, progress=_progress("e2e")))
    except (ValueError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise click.ClickException(f"e2e: {' '.join(str(exc).split())}") from exc
    result = run.result
    _emit_document(e2e_suite.document(result), as_json, out)
    if plot_dir is not None:
        curves = {
            "arrival → offer": run.enqueue_to_offer_ms,
            "accept → assigned": run.accept_to_assigned_ms,
            "no-op baseline": run.baseline_ms,
        }
        title = f"bench e2e: latency at {result.offered_per_s:,.0f} conversations/s offered"
        _wrote(plot.latency_cdf(curves, plot_dir / "e2e-latency-cdf.png", title=title), as_json)
        series = {
            "e2e routed": [
                (s.offered_per_s, s.routed_per_s, s.enqueue_to_offer_p99_ms) for s in result.steps
            ],
            "no-op baseline": [
                (s.offered_per_s, s.completed_per_s, s.p99_ms) for s in result.baseline_steps
            ],
        }
        path = plot.throughput_and_p99(
            series, plot_dir / "e2e-throughput.png", title="bench e2e against offered rate"
        )
        _wrote(path, as_json)
    if as_json:
        return
    console = _wide_console()
    title = (
        f"bench e2e: usher serve, {config.shards} shards, {config.agents} agents × "
        f"{config.capacity}, {config.gateways} gateways (a second; ms; CPU: cores, serve's"
        " ms/conversation)"
    )
    report.render_table(title, E2E_COLUMNS, result.steps, console)
    if result.baseline_steps:
        report.render_table(
            "no-op grpc.aio baseline", BASELINE_COLUMNS, result.baseline_steps, console
        )
    if result.peak_routed_per_s is not None:
        how = "a step that kept up" if result.peak_kept_up else "no step kept up: the best of any"
        if not result.ramp_fell_behind:
            how += "; no step fell behind, so at least this"
        console.print(f"  peak: {result.peak_routed_per_s:,.0f} routed/s ({how})")
    share = f"{result.peak_share:.0%} of peak, " if result.peak_share is not None else ""
    console.print(
        f"  measured run (last row; {share}{result.offered_per_s:,.0f}/s offered):"
        f" {result.routed_per_s:,.0f} routed/s, {result.rpcs_per_s:,.0f} rpcs/s for"
        f" {result.duration_s:g} s; errors {result.errors:,} {result.error_kinds or ''}"
    )
    offer, accept = result.enqueue_to_offer_ms, result.accept_to_assigned_ms
    console.print(
        f"  p50 / p99 / p99.9 ms: arrival→offer {offer.p50:,.1f} / {offer.p99:,.1f} /"
        f" {offer.p999:,.1f}; accept→assigned {accept.p50:,.1f} / {accept.p99:,.1f} /"
        f" {accept.p999:,.1f}"
    )
    console.print(
        f"  front door: {result.frontdoor_cpu_ms_per_conversation:,.1f} CPU ms per routed"
        f" conversation ({result.setup['frontdoor_processes']} process(es))"
    )
    if result.stale_offers:
        console.print(
            f"  {result.stale_offers:,} offers for conversations given up on, accepted and"
            f" ended ({result.stale_failures:,} failed)"
        )
    memory = result.memory
    after = memory.growth_after_s
    fitted = f"after {after:g} s" if after else "over all (short run)"
    title = f"memory: {memory.samples} samples {memory.interval_s:g} s apart; growth {fitted}"
    report.render_table(title, MEMORY_GROUP_COLUMNS, list(memory.groups.values()), console)
    own = [p for p in memory.processes if p.group in ("frontdoor", "shards")]
    report.render_table("front-door and shard processes", MEMORY_PROCESS_COLUMNS, own, console)
    if result.baseline_rps:
        console.print(
            f"  no-op baseline: {result.baseline_rps:,.0f} requests/s; routed/s is"
            f" {result.ratio_to_baseline:.1%} of it, rpcs/s {result.rpc_ratio:.1%}"
        )
    if quick:
        console.print("  --quick: a smoke run, not a measurement")
    _verdicts(e2e_suite.check_targets(result), console)
