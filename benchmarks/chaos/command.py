"""``usher bench chaos``: the command (registered in ``benchmarks.cli``)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import sys
from pathlib import Path
from typing import Any

import asyncpg
import click
from rich.console import Console

from benchmarks import report
from benchmarks.chaos import faults
from benchmarks.chaos.suite import (
    TARGET_RECOVERY_P99_S,
    ChaosConfig,
    ChaosResult,
    FaultResult,
    document,
    run_chaos,
    smoke,
)

FAULT_COLUMNS = (
    report.Column("kind", "fault"),
    report.Column("target", "target"),
    report.Column("at_s", "at s", lambda v: f"{v:,.1f}"),
    report.Column("held_s", "held s", lambda v: f"{v:,.2f}"),
    report.Column("recovery_s", "recovery s", lambda v: "never" if v is None else f"{v:,.2f}"),
    report.Column("failed_probes", "probes failed", report.thousands),
)


def _say(message: str) -> None:
    if sys.stderr.isatty():
        click.echo(f"bench chaos: {message}", err=True)


@click.command("chaos")
@click.option("--shard-kills", type=click.IntRange(min=0), default=None, help="[6; 1 with --quick]")
@click.option("--shard-interval", type=click.FloatRange(min=0.5), default=None, help="Seconds [5].")
@click.option("--door-kills", type=click.IntRange(min=0), default=None, help="[1]")
@click.option("--postgres-stops", type=click.IntRange(min=0), default=None, help="[1]")
@click.option(
    "--postgres-stop-seconds", type=click.FloatRange(min=0), default=None, help="[10; 3 quick]"
)
@click.option("--redis-stops", type=click.IntRange(min=0), default=None, help="[1]")
@click.option(
    "--redis-stop-seconds", type=click.FloatRange(min=0), default=None, help="[30; 3 quick]"
)
@click.option(
    "--kills-throughout",
    is_flag=True,
    help="Kill a shard every --shard-interval over the whole run, during the other faults.",
)
@click.option("--gap", type=click.FloatRange(min=0), default=None, help="Seconds between phases.")
@click.option("--shards", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--doors", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--tenants", type=click.IntRange(min=1), default=None, help="[2]")
@click.option("--agents", type=click.IntRange(min=1), default=None, help="Per tenant [6].")
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Conversations a second per tenant [4].",
)
@click.option(
    "--database-url",
    envvar="USHER_DATABASE_URL",
    show_envvar=True,
    default=None,
    help="A PostgreSQL the suite does not own (with --redis-url): it is never signalled; the "
    "service reaches it through a proxy that stalls [default: an embedded one, SIGSTOPped].",
)
@click.option(
    "--redis-url",
    envvar="USHER_REDIS_URL",
    show_envvar=True,
    default=None,
    help="A Redis the suite does not own (with --database-url), cut through a proxy "
    "[default: an embedded one, stopped and started].",
)
@click.option("--quick", is_flag=True, help="One fault of each kind, short: a check, no timing.")
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="Also write the JSON document to this file.",
)
def chaos(
    shard_kills: int | None,
    shard_interval: float | None,
    door_kills: int | None,
    postgres_stops: int | None,
    postgres_stop_seconds: float | None,
    redis_stops: int | None,
    redis_stop_seconds: float | None,
    kills_throughout: bool,
    gap: float | None,
    shards: int,
    doors: int,
    tenants: int | None,
    agents: int | None,
    rate: float | None,
    database_url: str | None,
    redis_url: str | None,
    quick: bool,
    seed: int,
    as_json: bool,
    out: Path | None,
) -> None:
    """A steady load through the SDK while shards, front doors, PostgreSQL and Redis are
    faulted on a schedule; then an audit: acknowledged conversations and messages lost or
    duplicated, conversations owned twice, agents over capacity, acknowledged calls refused
    afterwards (all must be 0), and each fault's recovery time. Exits 1 when one is not 0.

    How it is done is described in benchmarks/chaos/suite.py and its modules.
    """
    if (database_url is None) != (redis_url is None):
        raise click.UsageError("give both --database-url and --redis-url, or neither")
    config = ChaosConfig(shards=shards, doors=doors, database_url=database_url, redis_url=redis_url)
    config = dataclasses.replace(config, load=dataclasses.replace(config.load, seed=seed))
    if quick:
        config = smoke(config)
    schedule: dict[str, Any] = {
        "shard_kills": shard_kills,
        "shard_interval_s": shard_interval,
        "door_kills": door_kills,
        "postgres_stops": postgres_stops,
        "postgres_stop_s": postgres_stop_seconds,
        "redis_stops": redis_stops,
        "redis_stop_s": redis_stop_seconds,
        "gap_s": gap,
        "kills_throughout": kills_throughout or None,
    }
    load: dict[str, Any] = {"tenants": tenants, "agents": agents, "rate": rate}
    config = dataclasses.replace(
        config,
        schedule=dataclasses.replace(
            config.schedule, **{k: v for k, v in schedule.items() if v is not None}
        ),
        load=dataclasses.replace(config.load, **{k: v for k, v in load.items() if v is not None}),
    )
    try:
        # Ray's driver prints worker deaths (the shard kills) on stdout: keep stdout for the
        # report alone.
        with contextlib.redirect_stdout(sys.stderr):
            result = asyncio.run(run_chaos(config, progress=_say))
    except (ValueError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise click.ClickException(f"chaos: {' '.join(str(exc).split())}") from exc
    body = document(result)
    if out is not None:
        report.write_json(body, out)
    if as_json:
        click.echo(report.dumps(body))
    else:
        _render(result, quick)
    if not result.clean:
        sys.exit(1)


def _render(result: ChaosResult, quick: bool) -> None:
    console = Console() if sys.stdout.isatty() else Console(width=140)
    title = (
        f"bench chaos: {result.setup['shards']} shards, {result.setup['doors']} front doors,"
        f" {result.seconds:g} s of load; {result.setup['stores']}"
    )
    rows: list[FaultResult] = list(result.faults)
    report.render_table(title, FAULT_COLUMNS, rows, console)
    console.print(
        f"  acknowledged: {result.acknowledged_conversations:,} conversations,"
        f" {result.acknowledged_messages:,} messages ({result.calls_acknowledged:,} calls);"
        f" {result.events_checked:,} events replayed (peak load {result.peak_load_ratio:.0%} of"
        f" capacity); {result.rebuilds_compared} live states compared with a rebuild; API"
        f" replays {result.replays}"
    )
    for name in (
        "lost",
        "duplicated",
        "double_owned",
        "over_capacity",
        "acknowledged_then_refused",
        "invariant_violations",
        "rebuild_mismatches",
    ):
        value = getattr(result, name)
        mark = "[green]ok[/]    " if value == 0 else "[red]BROKEN[/]"
        console.print(f"  {mark} {name}: {value}")
        for example in result.examples.get(name, []):
            console.print(f"           {example}")
    p99 = result.recovery_p99_s
    if p99 is None:
        console.print(f"  [red]{result.unrecovered} fault(s) never recovered[/]")
    else:
        mark = "[green]met[/]   " if p99 < TARGET_RECOVERY_P99_S else "[red]MISSED[/]"
        console.print(f"  {mark} recovery p99: {p99:g} s (target < {TARGET_RECOVERY_P99_S:g})")
    if result.unknown_outcomes:
        console.print(f"  given up with the outcome unknown: {result.unknown_outcomes}")
    if result.load_errors:
        console.print(f"  load errors (not acknowledged): {result.load_errors}")
    if quick:
        console.print("  --quick: a check of the invariants, not a measurement")


__all__ = ["chaos", "faults"]
