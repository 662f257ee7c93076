"""Migrations: applied exactly once however many processes start at the same moment, all or
nothing, and only from properly named files."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from core.store.migrate import LOCK_KEY, available, migrate, status
from tests.integration.conftest import with_database

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = 3


@pytest.fixture
async def empty_database(server_url: str) -> AsyncIterator[str]:
    """A database of its own with nothing in it, dropped after the test."""
    name = f"usher_migrate_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield with_database(server_url, name)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def write(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, sql in files.items():
        (directory / name).write_text(sql, encoding="utf-8")
    return directory


async def ledger(url: str) -> list[tuple[int, str]]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT version, name FROM schema_migrations ORDER BY version")
    finally:
        await conn.close()
    return [(r["version"], r["name"]) for r in rows]


async def lock_waiters(conn: asyncpg.Connection) -> int:
    """Sessions of this database waiting for an advisory lock."""
    count: int = await conn.fetchval(
        """SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database
           WHERE l.locktype = 'advisory' AND NOT l.granted AND d.datname = current_database()"""
    )
    return count


async def test_processes_migrating_at_once_apply_each_migration_once(empty_database: str) -> None:
    expected = [(m.version, m.name) for m in available()]
    conn = await asyncpg.connect(empty_database)
    try:
        before = await status(conn)
        assert before.applied == ()
        assert [(m.version, m.name) for m in before.pending] == expected
        assert not await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")

        # Hold the migration lock until every process is queued on it, then let them race.
        holder = await asyncpg.connect(empty_database)
        env = {k: v for k, v in os.environ.items() if not k.startswith("USHER_")}
        command = ("-m", "core.cli", "db", "migrate", "--json", "--database-url", empty_database)
        try:
            async with holder.transaction():
                await holder.execute("SELECT pg_advisory_xact_lock($1)", LOCK_KEY)
                processes = [
                    await asyncio.create_subprocess_exec(
                        sys.executable,
                        *command,
                        cwd=ROOT,
                        env=env,
                        stdout=asyncio.subprocess.PIPE,
                        stderr=asyncio.subprocess.PIPE,
                    )
                    for _ in range(PROCESSES)
                ]
                for _ in range(600):
                    if await lock_waiters(conn) == PROCESSES:
                        break
                    if any(p.returncode is not None for p in processes):
                        break
                    await asyncio.sleep(0.05)
                queued = await lock_waiters(conn)
            outputs = await asyncio.wait_for(
                asyncio.gather(*(p.communicate() for p in processes)), timeout=60
            )
        finally:
            await holder.close()

        for process, (_, stderr) in zip(processes, outputs, strict=True):
            assert process.returncode == 0, stderr.decode()
        assert queued == PROCESSES, "the processes did not all wait for the lock"
        reports = [json.loads(stdout) for stdout, _ in outputs]
        applied = sorted((m["version"], m["name"]) for r in reports for m in r["applied"])
        assert applied == expected  # each migration applied by exactly one process
        assert sorted(len(r["applied"]) for r in reports) == [0] * (PROCESSES - 1) + [len(expected)]

        assert await ledger(empty_database) == expected
        after = await status(conn)
        assert [(a.version, a.name) for a in after.applied] == expected
        assert after.pending == ()
        assert len({a.applied_at for a in after.applied}) == 1  # one transaction
        assert await conn.fetchval("SELECT to_regclass('events') IS NOT NULL")
    finally:
        await conn.close()


async def test_connections_migrating_at_once_apply_new_migrations_once(
    empty_database: str, tmp_path: Path
) -> None:
    """In process, on separate connections, with a migration slow enough to overlap them all;
    then a migration added later is applied once too."""
    directory = write(
        tmp_path / "migrations",
        {
            "0001_first.sql": "CREATE TABLE first (x int); SELECT pg_sleep(0.3);",
            "0002_second.sql": "CREATE TABLE second (x int);",
        },
    )
    conns = [await asyncpg.connect(empty_database) for _ in range(4)]
    try:
        runs = await asyncio.gather(*(migrate(conn, directory) for conn in conns))
        assert sorted(m.version for run in runs for m in run) == [1, 2]
        assert sorted(len(run) for run in runs) == [0, 0, 0, 2]

        write(directory, {"0003_third.sql": "ALTER TABLE second ADD COLUMN y int;"})
        runs = await asyncio.gather(*(migrate(conn, directory) for conn in conns))
        assert [m.name for run in runs for m in run] == ["third"]

        state = await status(conns[0], directory)
        assert [(a.version, a.name) for a in state.applied] == [
            (1, "first"),
            (2, "second"),
            (3, "third"),
        ]
        assert state.pending == ()
    finally:
        for conn in conns:
            await conn.close()


async def test_a_failing_migration_applies_nothing(empty_database: str, tmp_path: Path) -> None:
    directory = write(
        tmp_path / "migrations",
        {"0001_good.sql": "CREATE TABLE good (x int);", "0002_bad.sql": "CREATE TABLE (;"},
    )
    conn = await asyncpg.connect(empty_database)
    try:
        with pytest.raises(asyncpg.PostgresSyntaxError):
            await migrate(conn, directory)
        state = await status(conn, directory)
        assert state.applied == ()
        assert [m.name for m in state.pending] == ["good", "bad"]
        assert not await conn.fetchval("SELECT to_regclass('good') IS NOT NULL")
    finally:
        await conn.close()


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"1_initial.sql": ""}, "not named NNNN_name.sql"),
        ({"0001-initial.sql": ""}, "not named NNNN_name.sql"),
        ({"0001_Initial.sql": ""}, "not named NNNN_name.sql"),
        ({"0001_initial.SQL.sql": ""}, "not named NNNN_name.sql"),
        ({"0001_a.sql": "", "0001_b.sql": ""}, "share a version"),
    ],
)
async def test_badly_named_migrations_are_refused(
    empty_database: str, tmp_path: Path, files: dict[str, str], message: str
) -> None:
    directory = write(tmp_path / "migrations", {"0002_fine.sql": "CREATE TABLE fine (x int);"})
    write(directory, files)
    with pytest.raises(ValueError, match=message):
        available(directory)
    conn = await asyncpg.connect(empty_database)
    try:
        with pytest.raises(ValueError, match=message):
            await migrate(conn, directory)
        assert not await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
        assert not await conn.fetchval("SELECT to_regclass('fine') IS NOT NULL")
    finally:
        await conn.close()


def test_the_shipped_migrations_are_well_named() -> None:
    found = available()
    assert found
    assert [m.version for m in found] == sorted({m.version for m in found})
