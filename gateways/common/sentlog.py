"""What the gateway sent, for receipts: provider message id -> Usher message, and which
receipts were already passed on (providers repeat status callbacks). SQLite in the data dir:
local to the gateway, durable across its restarts."""

from __future__ import annotations

import sqlite3
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sent (
    tenant TEXT NOT NULL, channel TEXT NOT NULL, provider_id TEXT NOT NULL,
    message TEXT NOT NULL, PRIMARY KEY (tenant, channel, provider_id));
CREATE TABLE IF NOT EXISTS receipts (
    tenant TEXT NOT NULL, channel TEXT NOT NULL, provider_id TEXT NOT NULL, status TEXT NOT NULL,
    PRIMARY KEY (tenant, channel, provider_id, status));
CREATE TABLE IF NOT EXISTS cursors (
    tenant TEXT NOT NULL, channel TEXT NOT NULL, event_id INTEGER NOT NULL,
    PRIMARY KEY (tenant, channel));
"""


class SentLog:
    """See the module docstring. Calls are short local writes, made from the event loop."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def remember(self, tenant: str, channel: str, provider_id: str, message: str) -> None:
        """``message`` (``conversations/{c}/messages/{m}``) went out as ``provider_id``."""
        self._db.execute(
            "INSERT OR REPLACE INTO sent VALUES (?, ?, ?, ?)",
            (tenant, channel, provider_id, message),
        )

    def message_for(self, tenant: str, channel: str, provider_id: str) -> str | None:
        row = self._db.execute(
            "SELECT message FROM sent WHERE tenant = ? AND channel = ? AND provider_id = ?",
            (tenant, channel, provider_id),
        ).fetchone()
        return None if row is None else str(row[0])

    def first_receipt(self, tenant: str, channel: str, provider_id: str, status: str) -> bool:
        """True the first time this (provider id, status) pair is seen, False on repeats."""
        cursor = self._db.execute(
            "INSERT OR IGNORE INTO receipts VALUES (?, ?, ?, ?)",
            (tenant, channel, provider_id, status),
        )
        return cursor.rowcount == 1

    def cursor(self, tenant: str, channel: str) -> int:
        """The last outbound event id delivered (0: none yet)."""
        row = self._db.execute(
            "SELECT event_id FROM cursors WHERE tenant = ? AND channel = ?", (tenant, channel)
        ).fetchone()
        return 0 if row is None else int(row[0])

    def advance(self, tenant: str, channel: str, event_id: int) -> None:
        self._db.execute(
            "INSERT INTO cursors VALUES (?, ?, ?) ON CONFLICT (tenant, channel)"
            " DO UPDATE SET event_id = excluded.event_id",
            (tenant, channel, event_id),
        )
