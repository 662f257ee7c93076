"""Which conversation each Message-ID belongs to, and what a reply must carry: SQLite in the
gateway's data dir, durable across restarts.

Every mail received or sent is recorded with its conversation, so a customer's reply (its
``In-Reply-To``/``References``) finds the conversation again. Per conversation the customer's
last mail is kept: the agent's answers reply to it (``In-Reply-To``, ``References``, subject).
Per sender too, written before the mail reaches the core: the welcome the core sends the moment
a conversation starts can race the conversation's own record, and still finds its thread.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS email_messages (
    tenant TEXT NOT NULL, channel TEXT NOT NULL, message_id TEXT NOT NULL,
    conversation TEXT NOT NULL, inbound INTEGER NOT NULL,
    PRIMARY KEY (tenant, channel, message_id));
CREATE TABLE IF NOT EXISTS email_threads (
    tenant TEXT NOT NULL, channel TEXT NOT NULL, conversation TEXT NOT NULL,
    subject TEXT NOT NULL, last_message_id TEXT NOT NULL, last_references TEXT NOT NULL,
    PRIMARY KEY (tenant, channel, conversation));
CREATE TABLE IF NOT EXISTS email_senders (
    tenant TEXT NOT NULL, channel TEXT NOT NULL, sender TEXT NOT NULL,
    subject TEXT NOT NULL, last_message_id TEXT NOT NULL, last_references TEXT NOT NULL,
    PRIMARY KEY (tenant, channel, sender));
"""


@dataclass(frozen=True, slots=True)
class Thread:
    """The customer's last mail in a conversation."""

    subject: str
    message_id: str
    references: tuple[str, ...]

    @property
    def reply_references(self) -> tuple[str, ...]:
        """``References`` of an answer to that mail (RFC 5322 3.6.4): its own plus its id."""
        return (*self.references, self.message_id)


class Threads:
    """See the module docstring. Calls are short local writes, made from the event loop."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def received(self, tenant: str, channel: str, message_id: str) -> bool:
        """True when this customer mail was already stored."""
        row = self._db.execute(
            "SELECT 1 FROM email_messages WHERE tenant = ? AND channel = ? AND message_id = ?"
            " AND inbound = 1",
            (tenant, channel, message_id),
        ).fetchone()
        return row is not None

    def conversation_of(self, tenant: str, channel: str, message_ids: Sequence[str]) -> str | None:
        """The conversation of the first of ``message_ids`` known here, or None."""
        for message_id in message_ids:
            row = self._db.execute(
                "SELECT conversation FROM email_messages"
                " WHERE tenant = ? AND channel = ? AND message_id = ?",
                (tenant, channel, message_id),
            ).fetchone()
            if row is not None:
                return str(row[0])
        return None

    def note_sender(
        self,
        tenant: str,
        channel: str,
        sender: str,
        *,
        message_id: str,
        subject: str,
        references: Sequence[str],
    ) -> None:
        """The sender's latest mail, noted before it is posted (see the module docstring)."""
        self._db.execute(
            "INSERT OR REPLACE INTO email_senders VALUES (?, ?, ?, ?, ?, ?)",
            (tenant, channel, sender, subject, message_id, " ".join(references)),
        )

    def record_inbound(
        self,
        tenant: str,
        channel: str,
        conversation: str,
        *,
        message_id: str,
        subject: str,
        references: Sequence[str],
    ) -> None:
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute(
                "INSERT OR REPLACE INTO email_messages VALUES (?, ?, ?, ?, 1)",
                (tenant, channel, message_id, conversation),
            )
            self._db.execute(
                "INSERT OR REPLACE INTO email_threads VALUES (?, ?, ?, ?, ?, ?)",
                (tenant, channel, conversation, subject, message_id, " ".join(references)),
            )

    def record_outbound(
        self, tenant: str, channel: str, conversation: str, message_id: str
    ) -> None:
        self._db.execute(
            "INSERT OR IGNORE INTO email_messages VALUES (?, ?, ?, ?, 0)",
            (tenant, channel, message_id, conversation),
        )

    def thread(self, tenant: str, channel: str, conversation: str, customer: str) -> Thread | None:
        """The customer's last mail in ``conversation``; else ``customer``'s last mail."""
        row = (
            self._db.execute(
                "SELECT subject, last_message_id, last_references FROM email_threads"
                " WHERE tenant = ? AND channel = ? AND conversation = ?",
                (tenant, channel, conversation),
            ).fetchone()
            or self._db.execute(
                "SELECT subject, last_message_id, last_references FROM email_senders"
                " WHERE tenant = ? AND channel = ? AND sender = ?",
                (tenant, channel, customer),
            ).fetchone()
        )
        if row is None:
            return None
        return Thread(str(row[0]), str(row[1]), tuple(str(row[2]).split()))
