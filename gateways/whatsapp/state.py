"""What the WhatsApp gateway remembers across restarts (SQLite in the data dir): per customer,
when they last wrote (the 24-hour customer service window) and their last message's wamid
(for the typing indicator), when a template last went out; per stored customer message, its
wamid (to mark it read when the agent reads it)."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

WINDOW = dt.timedelta(hours=24)
KEEP = dt.timedelta(days=30)
"""WhatsApp marks messages read for 30 days; older mappings are dropped."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS customers (
    tenant TEXT NOT NULL, channel TEXT NOT NULL, customer TEXT NOT NULL,
    last_inbound REAL NOT NULL, last_wamid TEXT NOT NULL, template_sent REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, channel, customer));
CREATE TABLE IF NOT EXISTS inbound (
    tenant TEXT NOT NULL, channel TEXT NOT NULL, message TEXT NOT NULL, wamid TEXT NOT NULL,
    stored REAL NOT NULL, PRIMARY KEY (tenant, channel, message));
"""


class State:
    """See the module docstring. Calls are short local writes, made from the event loop."""

    def __init__(self, path: Path, *, now: dt.datetime) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._db.execute("DELETE FROM inbound WHERE stored < ?", ((now - KEEP).timestamp(),))

    def close(self) -> None:
        self._db.close()

    def customer_wrote(
        self, tenant: str, channel: str, customer: str, wamid: str, at: dt.datetime
    ) -> None:
        """The customer sent ``wamid`` at ``at``; the window runs from their latest message."""
        self._db.execute(
            "INSERT INTO customers (tenant, channel, customer, last_inbound, last_wamid)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (tenant, channel, customer) DO UPDATE SET"
            " last_wamid = CASE WHEN excluded.last_inbound >= last_inbound"
            "   THEN excluded.last_wamid ELSE last_wamid END,"
            " last_inbound = max(last_inbound, excluded.last_inbound)",
            (tenant, channel, customer, at.timestamp(), wamid),
        )

    def _customer(self, tenant: str, channel: str, customer: str) -> tuple[float, str, float]:
        row = self._db.execute(
            "SELECT last_inbound, last_wamid, template_sent FROM customers"
            " WHERE tenant = ? AND channel = ? AND customer = ?",
            (tenant, channel, customer),
        ).fetchone()
        return (0.0, "", 0.0) if row is None else (float(row[0]), str(row[1]), float(row[2]))

    def window_open(self, tenant: str, channel: str, customer: str, now: dt.datetime) -> bool:
        """Whether free-form messages may go to the customer (they wrote in the last 24 h)."""
        last, _, _ = self._customer(tenant, channel, customer)
        return now.timestamp() - last < WINDOW.total_seconds()

    def last_wamid(self, tenant: str, channel: str, customer: str) -> str:
        return self._customer(tenant, channel, customer)[1]

    def template_pending(self, tenant: str, channel: str, customer: str) -> bool:
        """Whether a template went out since the customer last wrote (no answer yet)."""
        last, _, sent = self._customer(tenant, channel, customer)
        return sent > last

    def template_sent(self, tenant: str, channel: str, customer: str, now: dt.datetime) -> None:
        self._db.execute(
            "INSERT INTO customers VALUES (?, ?, ?, 0, '', ?) ON CONFLICT"
            " (tenant, channel, customer) DO UPDATE SET template_sent = excluded.template_sent",
            (tenant, channel, customer, now.timestamp()),
        )

    def stored(self, tenant: str, channel: str, message: str, wamid: str, now: dt.datetime) -> None:
        """Usher's ``message`` is the customer's ``wamid``."""
        self._db.execute(
            "INSERT OR REPLACE INTO inbound VALUES (?, ?, ?, ?, ?)",
            (tenant, channel, message, wamid, now.timestamp()),
        )

    def wamid_of(self, tenant: str, channel: str, message: str) -> str | None:
        row = self._db.execute(
            "SELECT wamid FROM inbound WHERE tenant = ? AND channel = ? AND message = ?",
            (tenant, channel, message),
        ).fetchone()
        return None if row is None else str(row[0])
