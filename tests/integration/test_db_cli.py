"""``usher db migrate`` and ``usher db status``: what they print, ``--json``, no secrets, and a
one-line error with exit code 1 when the database cannot be reached."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from click.testing import CliRunner, Result

from core.cli import main
from core.store.migrate import available
from tests.integration.conftest import with_database

ROOT = Path(__file__).resolve().parents[2]
SECRET = "s3cret-pw"
UNREACHABLE = f"postgresql://postgres:{SECRET}@127.0.0.1:1/x"
LABELS = [f"{m.version:04d}_{m.name}" for m in available()]
CLEAN_ENV: dict[str, str | None] = {"USHER_DATABASE_URL": None, "USHER_DATA_DIR": None}


def with_password(url: str) -> tuple[str, str]:
    """``url`` carrying a password (trust authentication ignores it), and that password."""
    parts = urlsplit(url)
    if parts.password:
        return url, parts.password
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{parts.username or 'postgres'}:{SECRET}@{host}"
    return urlunsplit(parts._replace(netloc=netloc)), SECRET


@pytest.fixture
async def fresh_url(server_url: str) -> AsyncIterator[str]:
    """An empty database of its own (dropped after the test), its URL carrying a password."""
    name = f"usher_cli_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield with_password(with_database(server_url, name))[0]
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def usher(*args: str, env: dict[str, str | None] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env={**CLEAN_ENV, **(env or {})})


def ok(*args: str, env: dict[str, str | None] | None = None) -> str:
    result = usher(*args, env=env)
    assert result.exit_code == 0, result.output
    return result.output


def as_json(*args: str) -> dict[str, Any]:
    document = json.loads(ok(*args, "--json"))
    assert isinstance(document, dict)
    return document


def test_status_then_migrate_then_status(fresh_url: str) -> None:
    password = urlsplit(fresh_url).password
    assert password
    shown = fresh_url.replace(f":{password}@", ":***@")

    before = ok("db", "status", "--database-url", fresh_url)
    assert before.splitlines() == [
        f"database: {shown}",
        "applied:",
        "  (none)",
        "pending:",
        *(f"  {label}" for label in LABELS),
    ]

    migrated = ok("db", "migrate", "--database-url", fresh_url)
    assert migrated.splitlines() == [
        f"database: {shown}",
        *(f"applied {label}" for label in LABELS),
    ]
    again = ok("db", "migrate", "--database-url", fresh_url)
    assert again.splitlines() == [f"database: {shown}", "up to date: nothing to apply"]

    after = ok("db", "status", "--database-url", fresh_url).splitlines()
    assert after[:2] == [f"database: {shown}", "applied:"]
    assert [line.split()[0] for line in after[2 : 2 + len(LABELS)]] == LABELS
    assert after[2 + len(LABELS) :] == ["pending:", "  (none)"]
    for output in (before, migrated, again, "\n".join(after)):
        assert password not in output


def test_json_documents(fresh_url: str) -> None:
    password = urlsplit(fresh_url).password
    assert password
    versions = [(m.version, m.name) for m in available()]

    before = as_json("db", "status", "--database-url", fresh_url)
    assert before == {
        "database": fresh_url.replace(f":{password}@", ":***@"),
        "applied": [],
        "pending": [{"version": v, "name": n} for v, n in versions],
    }
    migrated = as_json("db", "migrate", "--database-url", fresh_url)
    assert migrated == {
        "database": before["database"],
        "applied": [{"version": v, "name": n} for v, n in versions],
    }
    assert as_json("db", "migrate", "--database-url", fresh_url)["applied"] == []

    after = as_json("db", "status", "--database-url", fresh_url)
    assert after.keys() == {"database", "applied", "pending"}
    assert [(a["version"], a["name"]) for a in after["applied"]] == versions
    for applied in after["applied"]:
        assert dt.datetime.fromisoformat(applied["applied_at"]).tzinfo is not None
    assert after["pending"] == []


def test_the_url_can_come_from_the_environment(fresh_url: str) -> None:
    password = urlsplit(fresh_url).password
    assert password
    document = json.loads(ok("db", "status", "--json", env={"USHER_DATABASE_URL": fresh_url}))
    assert document["database"] == fresh_url.replace(f":{password}@", ":***@")
    assert len(document["pending"]) == len(LABELS)


def test_an_unreachable_database_is_one_line_and_exit_code_1() -> None:
    for command in ("status", "migrate"):
        result = usher("db", command, "--database-url", UNREACHABLE)
        assert result.exit_code == 1
        lines = result.output.strip().splitlines()
        assert len(lines) == 1, result.output
        assert lines[0].startswith(
            "Error: cannot connect to PostgreSQL at postgresql://postgres:***@127.0.0.1:1/x: "
        )
        assert SECRET not in result.output


def test_the_real_command_prints_no_traceback() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("USHER_")}
    done = subprocess.run(
        [sys.executable, "-m", "core.cli", "db", "status", "--database-url", UNREACHABLE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.startswith("Error: cannot connect to PostgreSQL at ")
    assert len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr
    assert SECRET not in done.stderr


def test_a_missing_database_is_reported(server_url: str) -> None:
    url = with_database(server_url, f"usher_missing_{uuid.uuid4().hex[:8]}")
    result = usher("db", "status", "--database-url", url)
    assert result.exit_code == 1
    assert "does not exist" in result.output
    assert len(result.output.strip().splitlines()) == 1


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A data directory outside pytest's temporary tree: as root, pgserver runs PostgreSQL as
    another user, and a concurrent pytest session makes that tree private again (0700)."""
    with tempfile.TemporaryDirectory(prefix="usher-test-", ignore_cleanup_errors=True) as root:
        yield Path(root) / "data"


def test_without_a_url_the_embedded_server_under_the_data_dir(data_dir: Path) -> None:
    env: dict[str, str | None] = {"USHER_DATA_DIR": str(data_dir)}
    before = json.loads(ok("db", "status", "--json", env=env))
    assert before["applied"] == []
    assert str(data_dir.resolve() / "postgres") in before["database"]
    assert len(ok("db", "migrate", "--data-dir", str(data_dir)).splitlines()) == 1 + len(LABELS)
    after = json.loads(ok("db", "status", "--json", env=env))
    assert [a["name"] for a in after["applied"]] == [m.name for m in available()]
    assert (data_dir / "postgres" / "PG_VERSION").exists()
