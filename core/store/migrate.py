"""Versioned SQL migrations, applied in order under an advisory lock.

Files are ``migrations/NNNN_name.sql``. Several processes may start at once: each takes the same
transaction-scoped advisory lock, so one applies what is pending and the others then find
nothing left to do.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

MIGRATIONS = Path(__file__).parent / "migrations"
LOCK_KEY = 0x05_48_45_52  # "USHER"-ish; any constant shared by every Usher process
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    path: Path


@dataclass(frozen=True, slots=True)
class Applied:
    version: int
    name: str
    applied_at: dt.datetime


@dataclass(frozen=True, slots=True)
class Status:
    applied: tuple[Applied, ...]
    pending: tuple[Migration, ...]


def available(directory: Path = MIGRATIONS) -> list[Migration]:
    found = []
    for path in sorted(directory.glob("*.sql")):
        match = _NAME.match(path.name)
        if match is None:
            raise ValueError(f"migration file {path.name!r} is not named NNNN_name.sql")
        found.append(Migration(int(match[1]), match[2], path))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise ValueError("two migrations share a version number")
    return found


_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""


async def migrate(conn: asyncpg.Connection, directory: Path = MIGRATIONS) -> list[Migration]:
    """Apply every pending migration in one transaction; return those applied now."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", LOCK_KEY)
        await conn.execute(_LEDGER)
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        pending = [m for m in available(directory) if m.version not in done]
        for migration in pending:
            await conn.execute(migration.path.read_text(encoding="utf-8"))
            await conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                migration.version,
                migration.name,
            )
    return pending


async def status(conn: asyncpg.Connection, directory: Path = MIGRATIONS) -> Status:
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    rows = (
        await conn.fetch("SELECT version, name, applied_at FROM schema_migrations ORDER BY 1")
        if exists
        else []
    )
    applied = tuple(Applied(r["version"], r["name"], r["applied_at"]) for r in rows)
    done = {a.version for a in applied}
    pending = tuple(m for m in available(directory) if m.version not in done)
    return Status(applied, pending)
