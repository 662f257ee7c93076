"""``usher admin``: bootstrap tenants and credentials, and set tenants' quotas, straight in the
database: what the installation's administrator does, never a tenant.

The first admin token of a tenant has to come from somewhere: ``create-tenant`` adds the tenant
(its routing state is configured by its first AdminService write) and ``create-credential``
prints a new token, once. ``quota set`` / ``quota show`` set and read tenants' limits
(``core.store.quotas``). Both use ``--database-url`` (or ``USHER_DATABASE_URL``), else the
embedded PostgreSQL under ``--data-dir``, like ``usher db``; the schema is migrated first.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import asyncpg
import click

from core.config import StoreSettings
from core.store import credentials, quotas
from core.store.connect import database_url
from core.store.errors import StoreError, UnknownTenant
from core.store.migrate import migrate

T = TypeVar("T")

_database_url = click.option(
    "--database-url",
    envvar="USHER_DATABASE_URL",
    show_envvar=True,
    default=None,
    help="PostgreSQL URL [default: the embedded server under --data-dir].",
)
_data_dir = click.option(
    "--data-dir",
    envvar="USHER_DATA_DIR",
    show_envvar=True,
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".usher-data"),
    show_default=True,
    help="Where the embedded PostgreSQL keeps its files.",
)


def _on_database(
    url: str | None, data_dir: Path, action: Callable[[asyncpg.Connection], Awaitable[T]]
) -> T:
    async def run() -> T:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            found, server = await database_url(StoreSettings(data_dir, url or None))
        try:
            conn = await asyncpg.connect(found, timeout=10.0)
            try:
                await migrate(conn)
                return await action(conn)
            finally:
                await conn.close()
        finally:
            if server is not None:
                await asyncio.to_thread(server.stop)

    try:
        return asyncio.run(run())
    except asyncpg.ForeignKeyViolationError as exc:
        raise click.ClickException(
            "no such tenant: create it with `usher admin create-tenant`"
        ) from exc
    except asyncpg.CheckViolationError as exc:
        raise click.ClickException(f"refused by the schema: {exc.constraint_name}") from exc
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise click.ClickException(f"PostgreSQL failed: {exc}") from exc


@click.group("admin")
def admin() -> None:
    """Bootstrap tenants and API credentials (the AdminService does the rest)."""


@admin.command("create-tenant")
@click.argument("tenant")
@click.option("--display-name", default="", help="A name for people.")
@_database_url
@_data_dir
def create_tenant(tenant: str, display_name: str, database_url: str | None, data_dir: Path) -> None:
    """Create the tenant TENANT (1 to 64 of A-Za-z0-9_.-); an existing one is left as is."""

    async def action(conn: asyncpg.Connection) -> bool:
        status = await conn.execute(
            "INSERT INTO tenants (tenant_id, name) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            tenant,
            display_name,
        )
        return bool(status.endswith(" 1"))

    created = _on_database(database_url, data_dir, action)
    click.echo(f"tenant {tenant}: {'created' if created else 'already exists'}")


@admin.command("create-credential")
@click.option("--tenant", required=True, help="The tenant the token acts in.")
@click.option("--role", required=True, type=click.Choice(credentials.ROLES))
@click.option("--agent", default=None, help="For --role agent: the agent the token acts as.")
@_database_url
@_data_dir
def create_credential(
    tenant: str, role: str, agent: str | None, database_url: str | None, data_dir: Path
) -> None:
    """Create a credential and print its token: the only time it is shown."""
    if (role == "agent") != (agent is not None):
        raise click.UsageError("--agent is required with --role agent, and only with it")

    async def action(conn: asyncpg.Connection) -> tuple[credentials.Credential, str]:
        return await credentials.create(conn, tenant, role, agent)

    credential, token = _on_database(database_url, data_dir, action)
    click.echo(f"credential: credentials/{credential.credential_id} ({role}, tenant {tenant})")
    click.echo(f"token (shown once): {token}")


@admin.group("quota")
def quota() -> None:
    """Tenants' quotas: set by the installation's admin, read by tenants (QuotaService)."""


def _limit(value: str) -> int | None:
    if value == "unlimited":
        return None
    try:
        limit = int(value)
    except ValueError:
        raise click.BadParameter("a whole number 0 or more, or 'unlimited'") from None
    if limit < 0:
        raise click.BadParameter("a whole number 0 or more, or 'unlimited'")
    return limit


@quota.command("set")
@click.option("--tenant", required=True, help="The tenant.")
@click.option("--metric", required=True, type=click.Choice(quotas.METRICS), help="What to limit.")
@click.option("--limit", "limit", required=True, help="The most allowed, or 'unlimited'.")
@_database_url
@_data_dir
def quota_set(
    tenant: str, metric: str, limit: str, database_url: str | None, data_dir: Path
) -> None:
    """Set TENANT's limit of METRIC. Usage above a lower limit stays; additions are refused."""
    value = _limit(limit)

    async def action(conn: asyncpg.Connection) -> quotas.QuotaUsage:
        await quotas.set_limit(conn, tenant, metric, value)
        (found,) = await quotas.usage(conn, tenant, [metric])
        return found

    try:
        found = _on_database(database_url, data_dir, action)
    except UnknownTenant as exc:
        raise click.ClickException(
            "no such tenant: create it with `usher admin create-tenant`"
        ) from exc
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{tenant} {metric}: {found}")


@quota.command("show")
@click.option("--tenant", default=None, help="One tenant [every tenant with a limit].")
@_database_url
@_data_dir
def quota_show(tenant: str | None, database_url: str | None, data_dir: Path) -> None:
    """Print each tenant's usage against its limits, one metric a line ("16 / 1500")."""

    async def action(conn: asyncpg.Connection) -> list[tuple[str, list[quotas.QuotaUsage]]]:
        names = [tenant] if tenant else await quotas.tenants_with_limits(conn)
        return [(name, await quotas.usage(conn, name)) for name in names]

    found = _on_database(database_url, data_dir, action)
    if not found:
        click.echo("no tenant has a limit: every tenant is unlimited")
    for name, usages in found:
        for usage in usages:
            period = f" ({usage.period_start:%Y-%m})" if usage.period_start else ""
            click.echo(f"{name}\t{usage.metric}\t{usage}{period}")
