"""A conversation's notes (``conversation_notes``), with their files (``core.store.note_files``).

Notes are not routing state: the front door writes them here, beside the shard, for a stored
conversation. They read oldest first, a page continuing after the last note of the previous.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import asyncpg

from core.store import note_files
from core.store.customer_fields import Missing, Violations
from core.store.errors import translated_errors
from core.store.note_files import NoteFile

MAX_TEXT: Final = 10_000


@dataclass(frozen=True, slots=True)
class ConversationNote:
    note_id: int
    conversation_id: str
    author: str
    body: str
    created_at: dt.datetime
    files: tuple[NoteFile, ...] = ()


def check(body: str, files: Sequence[NoteFile]) -> dict[str, str]:
    """What is wrong with a note (``text``, ``attachments[i].<field>``), empty when nothing."""
    found = note_files.check(files)
    if len(body) > MAX_TEXT or "\x00" in body:
        found["text"] = f"at most {MAX_TEXT:,} characters, no NUL"
    elif not body and not files:
        found["text"] = "a note needs text or an attachment"
    return found


class ConversationNotes:
    """Every tenant's conversation notes, over ``pool``."""

    def __init__(self, pool: asyncpg.Pool, *, timeout: float = 10.0) -> None:
        self._pool = pool
        self._timeout = timeout

    async def add(
        self,
        tenant: str,
        conversation_id: str,
        author: str,
        body: str,
        files: Sequence[NoteFile] = (),
    ) -> ConversationNote:
        """A note on a stored conversation; ``Violations`` (see ``check``), ``Missing``."""
        problems = check(body, files)
        if problems:
            raise Violations(problems)
        with translated_errors():
            row = await self._pool.fetchrow(
                """INSERT INTO conversation_notes
                       (tenant_id, conversation_id, author, body, attachments)
                   SELECT tenant_id, conversation_id, $3, $4, $5::jsonb FROM conversations
                   WHERE tenant_id = $1 AND conversation_id = $2
                   RETURNING note_id, created_at""",
                tenant,
                conversation_id,
                author,
                body,
                note_files.dumps(files),
                timeout=self._timeout,
            )
        if row is None:
            raise Missing("conversation", f"conversations/{conversation_id}")
        return ConversationNote(
            row["note_id"], conversation_id, author, body, row["created_at"], tuple(files)
        )

    async def page(
        self, tenant: str, conversation_id: str, after: int, limit: int
    ) -> list[ConversationNote]:
        """Up to ``limit`` notes oldest first, after note ``after`` (0: from the first)."""
        with translated_errors():
            rows = await self._pool.fetch(
                """SELECT note_id, author, body, created_at, attachments::text AS attachments
                   FROM conversation_notes
                   WHERE tenant_id = $1 AND conversation_id = $2 AND note_id > $3
                   ORDER BY note_id LIMIT $4""",
                tenant,
                conversation_id,
                after,
                limit,
                timeout=self._timeout,
            )
        return [
            ConversationNote(
                r["note_id"],
                conversation_id,
                r["author"],
                r["body"],
                r["created_at"],
                note_files.loads(r["attachments"]),
            )
            for r in rows
        ]
