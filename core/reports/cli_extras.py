"""``usher report visitors`` and ``usher report bots``: the visitor and bot reports
(``core.store.visits``, ``core.store.bot_report``) straight on the database, as a table or
JSON. Dates are in the tenant's zone, as the other reports' are."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Any

import asyncpg
import click
from rich.console import Console
from rich.table import Table

from core.admin_cli import _data_dir, _database_url, _on_database
from core.reports.calendar import zone
from core.reports.query import MAX_RANGE
from core.store import bot_report, report_reads, visits


def _when(text: str, tz: dt.tzinfo, option: str) -> dt.datetime:
    try:
        at = dt.datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a date", param_hint=option) from None
    return at if at.tzinfo else at.replace(tzinfo=tz)


async def _range(
    conn: asyncpg.Connection, tenant: str, start: str, end: str
) -> tuple[dt.datetime, dt.datetime]:
    name = await report_reads.time_zone(conn, tenant)
    if name is None:
        raise click.ClickException(f"no tenant {tenant!r}")
    tz = zone(name)
    since, until = _when(start, tz, "--from"), _when(end, tz, "--to")
    if not since < until <= since + MAX_RANGE:
        raise click.UsageError("--to must follow --from, by at most two years")
    return since, until


def _show(title: str, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(v) for v in row))
    Console().print(table)


_OPTIONS = (
    click.option("--tenant", required=True),
    click.option("--from", "start", required=True, help="A date or ISO date and time."),
    click.option("--to", "end", required=True, help="Exclusive; a date or date and time."),
    click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead."),
    _database_url,
    _data_dir,
)


def _with_options(f: Any) -> Any:
    for option in reversed(_OPTIONS):
        f = option(f)
    return f


@click.command("visitors")
@click.option("--channel", default="", help="Only this channel's conversations.")
@click.option("--limit", default=100, type=click.IntRange(1, 1000), show_default=True)
@_with_options
def visitors_command(
    tenant: str,
    start: str,
    end: str,
    as_json: bool,
    database_url: str | None,
    data_dir: Path,
    channel: str,
    limit: int,
) -> None:
    """Web chat visitors' conversations per page path, referrer host and region."""

    async def action(conn: asyncpg.Connection) -> visits.VisitorReport:
        since, until = await _range(conn, tenant, start, end)
        return await visits.report(conn, tenant, since, until, channel=channel, limit=limit)

    found = _on_database(database_url, data_dir, action)
    if as_json:
        document = {"rows": [dataclasses.asdict(r) for r in found.rows], "started": found.started}
        click.echo(json.dumps(document, ensure_ascii=False, indent=2))
        return
    _show(
        f"visitors of {tenant}: {found.started:,} conversations",
        ["page", "referrer", "region", "started"],
        [(r.page or "-", r.referrer_host or "-", r.region or "-", r.started) for r in found.rows],
    )


@click.command("bots")
@_with_options
def bots_command(
    tenant: str, start: str, end: str, as_json: bool, database_url: str | None, data_dir: Path
) -> None:
    """Every bot's flows: started, finished in the bot, handed off, could not answer."""

    async def action(conn: asyncpg.Connection) -> tuple[bot_report.BotFigures, ...]:
        since, until = await _range(conn, tenant, start, end)
        return await bot_report.report(conn, tenant, since, until)

    found = _on_database(database_url, data_dir, action)
    if as_json:
        click.echo(json.dumps([dataclasses.asdict(r) for r in found], indent=2))
        return
    _show(
        f"bots of {tenant}",
        ["bot", "started", "conversations", "finished in bot", "handed off", "could not answer"],
        [
            (
                r.bot_id,
                r.started,
                r.conversations,
                r.finished_in_bot,
                r.handed_off,
                r.could_not_answer,
            )
            for r in found
        ],
    )
