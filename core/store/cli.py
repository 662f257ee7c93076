"""``usher db``: apply the schema migrations and show where a database stands.

Both commands use ``--database-url`` (or ``USHER_DATABASE_URL``), else the embedded PostgreSQL
under ``--data-dir``. Printed URLs never carry a password. A database that cannot be reached, or
refuses, is reported in one line with exit code 1.
"""

from __future__ import annotations

import asyncio
import json
import warnings
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

import asyncpg
import click

from core.config import StoreSettings
from core.store import migrate as migrations
from core.store.connect import database_url, redact

CONNECT_TIMEOUT = 10.0
"""Seconds to wait for PostgreSQL to accept a connection."""

T = TypeVar("T")
Command = Callable[..., None]


@dataclass(frozen=True, slots=True)
class Outcome(Generic[T]):
    """What an action returned, and the database (redacted) it ran against."""

    database: str
    value: T


def _one_line(error: BaseException, secret: str | None) -> str:
    """The error as one line of text, without ``secret``."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text.replace(secret, "***") if secret else text


async def _on_database(
    settings: StoreSettings, action: Callable[[asyncpg.Connection], Awaitable[T]]
) -> Outcome[T]:
    """Run ``action`` on one connection to the configured (or embedded) database."""
    try:
        with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR on servers
            warnings.simplefilter("ignore", UserWarning)
            url, server = await database_url(settings)
    except Exception as exc:  # initdb / pg_ctl failures come in many types
        where = settings.data_dir.resolve() / "postgres"
        raise click.ClickException(
            f"cannot start the embedded PostgreSQL in {where}: {_one_line(exc, None)}"
        ) from exc
    secret = urlsplit(url).password
    try:
        try:
            conn = await asyncpg.connect(url, timeout=CONNECT_TIMEOUT)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise click.ClickException(
                f"cannot connect to PostgreSQL at {redact(url)}: {_one_line(exc, secret)}"
            ) from exc
        try:
            return Outcome(redact(url), await action(conn))
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise click.ClickException(
                f"PostgreSQL at {redact(url)} failed: {_one_line(exc, secret)}"
            ) from exc
        except ValueError as exc:  # a badly named or duplicated migration file
            raise click.ClickException(_one_line(exc, secret)) from exc
        finally:
            await conn.close()
    finally:
        if server is not None:
            await asyncio.to_thread(server.stop)


def _database_options(command: Command) -> Command:
    """The options every ``db`` command shares: where the database is, and ``--json``."""
    options = (
        click.option(
            "--database-url",
            envvar="USHER_DATABASE_URL",
            show_envvar=True,
            default=None,
            help="PostgreSQL URL [default: the embedded server under --data-dir].",
        ),
        click.option(
            "--data-dir",
            envvar="USHER_DATA_DIR",
            show_envvar=True,
            type=click.Path(file_okay=False, path_type=Path),
            default=Path(".usher-data"),
            show_default=True,
            help="Where the embedded PostgreSQL keeps its files.",
        ),
        click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead."),
    )
    for option in reversed(options):
        command = option(command)
    return command


def _run(
    database_url: str | None,
    data_dir: Path,
    action: Callable[[asyncpg.Connection], Awaitable[T]],
) -> Outcome[T]:
    settings = StoreSettings(data_dir=data_dir, database_url=database_url or None)
    return asyncio.run(_on_database(settings, action))


def _label(migration: migrations.Migration | migrations.Applied) -> str:
    return f"{migration.version:04d}_{migration.name}"


def _migration(migration: migrations.Migration) -> dict[str, Any]:
    return {"version": migration.version, "name": migration.name}


def _applied(applied: migrations.Applied) -> dict[str, Any]:
    return {
        "version": applied.version,
        "name": applied.name,
        "applied_at": applied.applied_at.isoformat(),
    }


def _listing(title: str, lines: Sequence[str]) -> None:
    click.echo(f"{title}:")
    for line in lines or ["(none)"]:
        click.echo(f"  {line}")


@click.group("db")
def db() -> None:
    """The PostgreSQL database: schema migrations."""


@db.command("migrate")
@_database_options
def migrate(database_url: str | None, data_dir: Path, as_json: bool) -> None:
    """Apply the pending migrations (safe to run from several processes at once)."""
    outcome = _run(database_url, data_dir, migrations.migrate)
    applied = outcome.value
    if as_json:
        document = {"database": outcome.database, "applied": [_migration(m) for m in applied]}
        click.echo(json.dumps(document))
        return
    click.echo(f"database: {outcome.database}")
    if not applied:
        click.echo("up to date: nothing to apply")
    for migration in applied:
        click.echo(f"applied {_label(migration)}")


@db.command("status")
@_database_options
def status(database_url: str | None, data_dir: Path, as_json: bool) -> None:
    """Show the database in use, the migrations applied to it and those pending."""
    outcome = _run(database_url, data_dir, migrations.status)
    state = outcome.value
    if as_json:
        document = {
            "database": outcome.database,
            "applied": [_applied(a) for a in state.applied],
            "pending": [_migration(m) for m in state.pending],
        }
        click.echo(json.dumps(document))
        return
    click.echo(f"database: {outcome.database}")
    width = max((len(_label(a)) for a in state.applied), default=0)
    _listing(
        "applied",
        [
            f"{_label(a):<{width}}  {a.applied_at.isoformat(sep=' ', timespec='seconds')}"
            for a in state.applied
        ],
    )
    _listing("pending", [_label(m) for m in state.pending])
