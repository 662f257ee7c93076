"""What this gateway's broadcast sends came to, kept until the core has it.

SQLite in the gateway's data dir (WAL, ``synchronous=NORMAL``: a write survives the process
being killed, which is what a crash of the gateway is; a power cut may lose the last ones, and
then the provider's reconciliation covers them as it covers a gateway that never comes back).

- ``sender``: the gateway's stable id (made once per data dir): claims name it, so after a
  restart the core hands this gateway its own unfinished sends at once.
- ``finished`` is written within ``JOURNAL_EVERY`` of the provider's answer (the answers of that
  moment in one local write); the core hears of it in the next report, and ``forget`` drops it
  once the core has it. After a
  restart, what the journal holds and the core never acknowledged is reported first, and a
  send claimed again that the journal knows the answer of is not sent again. One it does not
  know (the process died while the provider had it, or before it was sent, or another gateway
  claimed it) is reconciled with the provider.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sends (
    tenant TEXT NOT NULL, channel TEXT NOT NULL, recipient TEXT NOT NULL,
    session TEXT NOT NULL, state TEXT NOT NULL, provider_id TEXT NOT NULL DEFAULT '',
    error TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (tenant, channel, recipient));
"""
State = Literal["sent", "failed"]


@dataclass(frozen=True, slots=True)
class Entry:
    recipient: str
    session: str
    state: State
    provider_id: str = ""
    error: str = ""


class BroadcastJournal:
    """See the module docstring. Calls are short local writes, made from the event loop."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        row = self._db.execute("SELECT value FROM meta WHERE key = 'sender'").fetchone()
        if row is None:
            self.sender = uuid.uuid4().hex
            self._db.execute("INSERT INTO meta VALUES ('sender', ?)", (self.sender,))
        else:
            self.sender = str(row[0])

    def close(self) -> None:
        self._db.close()

    def finished(self, tenant: str, channel: str, entries: Iterable[Entry]) -> None:
        """Answers the provider gave (one write for a batch of them)."""
        self._db.executemany(
            "INSERT OR REPLACE INTO sends VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (tenant, channel, e.recipient, e.session, e.state, e.provider_id, e.error)
                for e in entries
            ],
        )

    def entry(self, tenant: str, channel: str, recipient: str) -> Entry | None:
        row = self._db.execute(
            "SELECT recipient, session, state, provider_id, error FROM sends"
            " WHERE tenant = ? AND channel = ? AND recipient = ?",
            (tenant, channel, recipient),
        ).fetchone()
        return None if row is None else Entry(*row)

    def unreported(self, tenant: str, channel: str) -> list[Entry]:
        """Finished sends the core has not acknowledged (oldest first)."""
        rows = self._db.execute(
            "SELECT recipient, session, state, provider_id, error FROM sends"
            " WHERE tenant = ? AND channel = ? ORDER BY rowid",
            (tenant, channel),
        ).fetchall()
        return [Entry(*r) for r in rows]

    def forget(self, tenant: str, channel: str, recipients: Iterable[str]) -> None:
        """The core has these results: nothing more to keep."""
        self._db.executemany(
            "DELETE FROM sends WHERE tenant = ? AND channel = ? AND recipient = ?",
            [(tenant, channel, r) for r in recipients],
        )
