"""The web chat gateway's own state, in SQLite in the data dir (local to the gateway, durable
across its restarts): each visitor's recent history (what a reconnecting widget replays), which
conversation belongs to which visitor, and returning visitors. Satisfaction ratings are the
core's (``RateConversation``, ``ListRatings``).

History is bounded per visitor: the newest ``HISTORY_LIMIT`` entries no older than
``HISTORY_DAYS`` days; older ones are trimmed as new ones arrive.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HISTORY_LIMIT = 200
HISTORY_DAYS = 7

_SCHEMA = """
CREATE TABLE IF NOT EXISTS history (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant TEXT NOT NULL, channel TEXT NOT NULL, visitor TEXT NOT NULL,
    event_id INTEGER, payload TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS history_visitor ON history (tenant, channel, visitor, seq);
CREATE UNIQUE INDEX IF NOT EXISTS history_event ON history (tenant, channel, visitor, event_id)
    WHERE event_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS conversations (
    tenant TEXT NOT NULL, channel TEXT NOT NULL, conversation TEXT NOT NULL,
    visitor TEXT NOT NULL, state TEXT NOT NULL, offline INTEGER NOT NULL,
    at REAL NOT NULL, PRIMARY KEY (tenant, channel, conversation));
CREATE INDEX IF NOT EXISTS conversations_visitor ON conversations (tenant, channel, visitor, at);
CREATE TABLE IF NOT EXISTS visitors (
    tenant TEXT NOT NULL, channel TEXT NOT NULL, visitor TEXT NOT NULL,
    first_seen REAL NOT NULL, last_seen REAL NOT NULL, visits INTEGER NOT NULL,
    PRIMARY KEY (tenant, channel, visitor));
"""


@dataclass(frozen=True, slots=True)
class Seen:
    """A visitor as the gateway remembers them across visits."""

    first_seen: dt.datetime
    last_seen: dt.datetime
    visits: int


def _time(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


class WebChatStore:
    """See the module docstring. Calls are short local writes, made from the event loop."""

    def __init__(
        self, path: Path, *, history_limit: int = HISTORY_LIMIT, history_days: int = HISTORY_DAYS
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._limit = history_limit
        self._keep_seconds = history_days * 86400

    def close(self) -> None:
        self._db.close()

    def append(
        self,
        tenant: str,
        channel: str,
        visitor: str,
        payload: dict[str, Any],
        *,
        event_id: int | None = None,
        now: float,
    ) -> int | None:
        """Add to the visitor's history; its sequence number, or None when ``event_id`` was
        already recorded (the core's stream is at least once)."""
        cursor = self._db.execute(
            "INSERT OR IGNORE INTO history (tenant, channel, visitor, event_id, payload, at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (tenant, channel, visitor, event_id, json.dumps(payload), now),
        )
        if cursor.rowcount != 1:
            return None
        seq = int(cursor.lastrowid or 0)
        self._db.execute(
            "DELETE FROM history WHERE tenant = ?1 AND channel = ?2 AND visitor = ?3"
            " AND (at < ?4 OR seq <= (SELECT seq FROM history WHERE tenant = ?1"
            " AND channel = ?2 AND visitor = ?3 ORDER BY seq DESC LIMIT 1 OFFSET ?5))",
            (tenant, channel, visitor, now - self._keep_seconds, self._limit),
        )
        return seq

    def history(
        self, tenant: str, channel: str, visitor: str, *, after: int = 0
    ) -> list[dict[str, Any]]:
        """The visitor's kept history after sequence ``after``, oldest first, each with its
        ``seq``."""
        rows = self._db.execute(
            "SELECT seq, payload FROM history WHERE tenant = ? AND channel = ? AND visitor = ?"
            " AND seq > ? ORDER BY seq",
            (tenant, channel, visitor, after),
        ).fetchall()
        return [{**json.loads(payload), "seq": seq} for seq, payload in rows]

    def visit(self, tenant: str, channel: str, visitor: str, *, now: float) -> Seen:
        """Count a visit (a widget connecting); what is known of the visitor afterwards."""
        self._db.execute(
            "INSERT INTO visitors VALUES (?, ?, ?, ?, ?, 1) ON CONFLICT (tenant, channel, visitor)"
            " DO UPDATE SET last_seen = excluded.last_seen, visits = visits + 1",
            (tenant, channel, visitor, now, now),
        )
        return self.seen(tenant, channel, visitor) or Seen(_time(now), _time(now), 1)

    def seen(self, tenant: str, channel: str, visitor: str) -> Seen | None:
        row = self._db.execute(
            "SELECT first_seen, last_seen, visits FROM visitors"
            " WHERE tenant = ? AND channel = ? AND visitor = ?",
            (tenant, channel, visitor),
        ).fetchone()
        return None if row is None else Seen(_time(row[0]), _time(row[1]), int(row[2]))

    def touch(self, tenant: str, channel: str, visitor: str, *, now: float) -> None:
        self._db.execute(
            "UPDATE visitors SET last_seen = ? WHERE tenant = ? AND channel = ? AND visitor = ?",
            (now, tenant, channel, visitor),
        )

    def own(
        self,
        tenant: str,
        channel: str,
        visitor: str,
        conversation: str,
        *,
        now: float,
        offline: bool = False,
    ) -> None:
        """``conversation`` is the visitor's; ``offline`` when it carries a left message."""
        self._db.execute(
            "INSERT INTO conversations VALUES (?, ?, ?, ?, '', ?, ?)"
            " ON CONFLICT (tenant, channel, conversation) DO UPDATE SET"
            " offline = max(offline, excluded.offline)",
            (tenant, channel, conversation, visitor, int(offline), now),
        )

    def set_state(self, tenant: str, channel: str, conversation: str, state: str) -> None:
        """The conversation's last known state (``queued``, ``active``, ``closed``...)."""
        self._db.execute(
            "UPDATE conversations SET state = ? WHERE tenant = ? AND channel = ?"
            " AND conversation = ?",
            (state, tenant, channel, conversation),
        )

    def owner(self, tenant: str, channel: str, conversation: str) -> str | None:
        row = self._db.execute(
            "SELECT visitor FROM conversations WHERE tenant = ? AND channel = ?"
            " AND conversation = ?",
            (tenant, channel, conversation),
        ).fetchone()
        return None if row is None else str(row[0])

    def is_offline(self, tenant: str, channel: str, conversation: str) -> bool:
        row = self._db.execute(
            "SELECT offline FROM conversations WHERE tenant = ? AND channel = ?"
            " AND conversation = ?",
            (tenant, channel, conversation),
        ).fetchone()
        return bool(row and row[0])

    def open_conversation(self, tenant: str, channel: str, visitor: str) -> tuple[str, str] | None:
        """(name, last known state) of the visitor's newest conversation not known to have
        ended; the state is empty when none was seen yet."""
        row = self._db.execute(
            "SELECT conversation, state FROM conversations WHERE tenant = ? AND channel = ?"
            " AND visitor = ? AND state NOT IN ('closed', 'abandoned') ORDER BY at DESC LIMIT 1",
            (tenant, channel, visitor),
        ).fetchone()
        return None if row is None else (str(row[0]), str(row[1]))
