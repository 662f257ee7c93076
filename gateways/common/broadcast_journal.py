"""What this gateway did with the broadcast sends it claimed, kept until the core has it.

SQLite in the gateway's data dir (WAL, ``synchronous=NORMAL``: a write survives the process
being killed, which is what a crash of the gateway is; a power cut may lose the last ones, and
then the provider reconciliation covers them as it covers a gateway that never comes back).

- ``sender``: the gateway's stable id (made once per data dir): claims name it, so after a
  restart the core hands this gateway its own unfinished sends at once.
- ``claimed`` is written when sends are claimed, ``attempting`` just before one goes to the
  provider and ``finished`` as soon as the provider answered; the core hears of it later, in a
  batch (``unreported``, then ``forget`` once it has). After a restart, results not yet
  reported are reported first; a send claimed again that this journal saw claimed but never
  attempted is sent without further ado; one it saw attempted without an answer (the process
  died during the call), or never saw at all (another gateway claimed it and is gone), is
  reconciled with the provider.
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
State = Literal["claimed", "attempting", "sent", "failed"]


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

    def claimed(self, tenant: str, channel: str, recipients: Iterable[str], session: str) -> None:
        """Sends claimed now (an earlier entry of the same send stays: it knows more)."""
        self._db.executemany(
            "INSERT OR IGNORE INTO sends VALUES (?, ?, ?, ?, 'claimed', '', '')",
            [(tenant, channel, r, session) for r in recipients],
        )

    def attempting(self, tenant: str, channel: str, recipient: str, session: str) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO sends VALUES (?, ?, ?, ?, 'attempting', '', '')",
            (tenant, channel, recipient, session),
        )

    def finished(
        self,
        tenant: str,
        channel: str,
        recipient: str,
        session: str,
        state: Literal["sent", "failed"],
        provider_id: str = "",
        error: str = "",
    ) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO sends VALUES (?, ?, ?, ?, ?, ?, ?)",
            (tenant, channel, recipient, session, state, provider_id, error),
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
            " WHERE tenant = ? AND channel = ? AND state IN ('sent', 'failed') ORDER BY rowid",
            (tenant, channel),
        ).fetchall()
        return [Entry(*r) for r in rows]

    def prune(self, tenant: str, channel: str) -> int:
        """Drop claims and attempts without an answer once the core has nothing of the channel
        left for this sender (a claim came back empty): whatever they were, they are settled."""
        cursor = self._db.execute(
            "DELETE FROM sends WHERE tenant = ? AND channel = ?"
            " AND state IN ('claimed', 'attempting')",
            (tenant, channel),
        )
        return cursor.rowcount

    def forget(self, tenant: str, channel: str, recipients: Iterable[str]) -> None:
        """The core has these results: nothing more to keep."""
        self._db.executemany(
            "DELETE FROM sends WHERE tenant = ? AND channel = ? AND recipient = ?",
            [(tenant, channel, r) for r in recipients],
        )
