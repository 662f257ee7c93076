"""``usher report``: the ReportService's reports on the command line, and rebuilding rollups.

Like ``usher admin``, it works straight on the database (``--database-url`` or
``USHER_DATABASE_URL``, else the embedded PostgreSQL under ``--data-dir``), with the schema
migrated first. ``--from`` and ``--to`` take a date (that day's midnight in the tenant's zone)
or a date and time (with an offset, that instant; without, the tenant's local time); ``--to``
is exclusive. A table is printed, or ``--json`` one document; ``--csv FILE`` and ``--xlsx FILE``
write the same files as ReportService.ExportReport.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import click
from rich import box
from rich.console import Console
from rich.table import Table

from core.admin_cli import _data_dir, _database_url, _on_database
from core.reports import charts, export
from core.reports.calendar import Grouping, zone
from core.reports.cli_extras import bots_command, visitors_command
from core.reports.figures import Distribution
from core.reports.query import BadQuery, Filter, Kind, ReportQuery
from core.reports.series import Report, run
from core.store import report_reads, rollups


def _when(text: str, tz: dt.tzinfo, option: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        message = f"{text!r} is not a date or date and time"
        raise click.BadParameter(message, param_hint=option) from None
    return value if value.tzinfo is not None else value.replace(tzinfo=tz)


def _seconds(value: float | None) -> str:
    if value is None:
        return "–"
    if value < 120:
        return f"{value:.1f}s"
    if value < 7200:
        return f"{value / 60:.1f}m"
    return f"{value / 3600:.1f}h"


def _spread(d: Distribution) -> str:
    return f"{_seconds(d.p50)} / {_seconds(d.p95)}"


def _share(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def _rating(r: Any) -> str:
    average = r.figures.rating_average
    return "–" if average is None else f"{average:.2f} ({r.figures['ratings']})"


def _conversation_columns() -> list[tuple[str, Callable[[Any], str]]]:
    return [
        ("started", lambda r: str(r.figures["started"])),
        ("bot only", lambda r: str(r.figures["bot_only"])),
        ("handed", lambda r: str(r.figures["handed"])),
        ("answered", lambda r: str(r.figures["answered"])),
        ("abandoned", lambda r: str(r.figures["abandoned"])),
        ("left msg", lambda r: str(r.figures["left_message"])),
        ("transfers", lambda r: str(r.figures.transfers)),
        (
            "resolved/spam/ignored",
            lambda r: "{}/{}/{}".format(
                r.figures["resolved"], r.figures["spam"], r.figures["ignored"]
            ),
        ),
        ("SL", lambda r: _share(r.figures.service_level)),
        ("≤5s", lambda r: str(r.figures.response_buckets["within_5s"])),
        ("1st resp p50/p95", lambda r: _spread(r.figures.first_response)),
        ("wait p50/p95", lambda r: _spread(r.figures.wait)),
        ("handle p50", lambda r: _seconds(r.figures.handle.p50)),
        ("rating (n)", _rating),
    ]


def _agent_columns() -> list[tuple[str, Callable[[Any], str]]]:
    def status(name: str) -> Callable[[Any], str]:
        return lambda r: _seconds(r.attendance.seconds.get(name)) if r.attendance else "–"

    return [
        ("handled", lambda r: str(r.figures["handled"])),
        ("msgs", lambda r: str(r.figures["agent_messages"])),
        ("1st resp p50", lambda r: _seconds(r.figures.first_response.p50)),
        ("handle p50", lambda r: _seconds(r.figures.handle.p50)),
        ("xfer in/out", lambda r: f"{r.figures['transfers_in']}/{r.figures['transfers_out']}"),
        ("missed", lambda r: str(r.figures["offers_missed"])),
        ("rating (n)", _rating),
        ("online", status("online")),
        ("away", status("away")),
        ("break", status("break")),
    ]


def _print(report: Report, tenant: str) -> None:
    kind = report.query.kind
    columns = _agent_columns() if kind is Kind.AGENTS else _conversation_columns()
    tz = zone(report.time_zone)
    title = (
        f"{kind.value} · {tenant} · {report.start.astimezone(tz):%Y-%m-%d %H:%M} – "
        f"{report.end.astimezone(tz):%Y-%m-%d %H:%M} {report.time_zone}"
    )
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("period")
    if kind is not Kind.OVERVIEW:
        table.add_column(kind.value.removesuffix("s"))
    for name, _ in columns:
        table.add_column(name, justify="right")
    for row in (*report.rows, *report.totals):
        period = "total" if row.period is None else report.periods[row.period].label
        cells = [period]
        if kind is not Kind.OVERVIEW:
            cells.append(report.names.get(row.key, row.key) or "(none)")
        cells += [show(row) for _, show in columns]
        table.add_row(*cells)
    if kind is Kind.OVERVIEW:
        table.add_row("total", *[show(_Total(report)) for _, show in columns])
    Console().print(table)


class _Total:
    """The overview's whole range, shown as a row."""

    def __init__(self, report: Report) -> None:
        self.figures = report.total
        self.attendance = None


async def _write(path: Path, chunks: AsyncIterator[bytes]) -> None:
    with path.open("wb") as out:
        async for chunk in chunks:
            out.write(chunk)


def plot(report: Report, directory: Path) -> list[Path]:
    """Write the report's charts into ``directory`` as ``{kind}-{chart}.png`` and ``.svg``."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for kind, chart in charts.charts(report).items():
        for image in charts.ImageFormat:
            path = directory / f"{report.query.kind.value}-{kind.value}.{image.value}"
            path.write_bytes(charts.render(chart, image))
            written.append(path)
    return written


@click.group("report")
def report() -> None:
    """Reports over a time range, and rebuilding their rollups from the event log."""


def _report_command(kind: Kind) -> click.Command:
    @click.option("--tenant", required=True)
    @click.option("--from", "start", required=True, help="A date or ISO date and time.")
    @click.option("--to", "end", required=True, help="Exclusive; a date or date and time.")
    @click.option(
        "--group-by",
        type=click.Choice([g.value for g in Grouping]),
        default=Grouping.DAY.value,
        show_default=True,
    )
    @click.option("--queue", "queues", multiple=True, help="A queue id (repeatable).")
    @click.option("--agent", "agents", multiple=True, help="An agent id (repeatable).")
    @click.option("--channel", "channels", multiple=True, help="A channel (repeatable).")
    @click.option("--department", default="", help="A department id.")
    @click.option("--tag", default="", help="A conversation tag.")
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead.")
    @click.option("--csv", "csv_file", type=click.Path(dir_okay=False, path_type=Path))
    @click.option("--xlsx", "xlsx_file", type=click.Path(dir_okay=False, path_type=Path))
    @click.option(
        "--plot",
        "plot_dir",
        type=click.Path(file_okay=False, path_type=Path),
        help="Write the report's charts there, as PNG and SVG.",
    )
    @_database_url
    @_data_dir
    def command(
        tenant: str,
        start: str,
        end: str,
        group_by: str,
        queues: tuple[str, ...],
        agents: tuple[str, ...],
        channels: tuple[str, ...],
        department: str,
        tag: str,
        as_json: bool,
        csv_file: Path | None,
        xlsx_file: Path | None,
        plot_dir: Path | None,
        database_url: str | None,
        data_dir: Path,
    ) -> None:
        async def action(conn: asyncpg.Connection) -> Report:
            name = await report_reads.time_zone(conn, tenant)
            if name is None:
                raise click.ClickException(f"no tenant {tenant!r}")
            tz = zone(name)
            query = ReportQuery(
                kind,
                _when(start, tz, "--from"),
                _when(end, tz, "--to"),
                Grouping(group_by),
                Filter(queues, agents, channels, department, tag),
            )
            try:
                found = await run(conn, tenant, query, with_logins=as_json or xlsx_file is not None)
            except BadQuery as exc:
                raise click.UsageError(str(exc)) from None
            if csv_file is not None:
                await _write(csv_file, export.csv_chunks(found))
            if xlsx_file is not None:
                await _write(xlsx_file, export.xlsx_chunks(found))
            return found

        found = _on_database(database_url, data_dir, action)
        if as_json:
            click.echo(json.dumps(export.document(found), ensure_ascii=False, indent=2))
        elif csv_file is None and xlsx_file is None and plot_dir is None:
            _print(found, tenant)
        for path in (csv_file, xlsx_file, *(plot(found, plot_dir) if plot_dir else ())):
            if path is not None:
                click.echo(f"wrote {path}", err=True)

    command.__doc__ = f"The {kind.value} report of a tenant over a range."
    return click.command(kind.value)(command)


for _kind in Kind:
    report.add_command(_report_command(_kind))
report.add_command(visitors_command)
report.add_command(bots_command)


@report.command("rebuild")
@click.option("--tenant", required=True)
@_database_url
@_data_dir
def rebuild(tenant: str, database_url: str | None, data_dir: Path) -> None:
    """Recompute TENANT's rollups from its event log (its shard's writes wait meanwhile)."""

    async def action(conn: asyncpg.Connection) -> rollups.Rebuilt:
        try:
            return await rollups.rebuild(conn, tenant)
        except LookupError as exc:
            raise click.ClickException(str(exc)) from None

    done = _on_database(database_url, data_dir, action)
    click.echo(
        f"tenant {tenant}: {done.events:,} events folded into {done.rows:,} rollup rows "
        f"({done.time_zone})"
    )
