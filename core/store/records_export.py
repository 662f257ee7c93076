"""Exports of conversation records as CSV or XLSX byte chunks, in bounded memory.

CSV is written row by row and handed out in chunks of about ``CHUNK`` bytes (UTF-8 with a
byte-order mark, cells a spreadsheet would run as formulas prefixed with ``'``). XLSX goes
through openpyxl's write-only mode (rows stream to its temporary files) and is saved into a
spooled temporary file (in memory up to ``SPOOL_IN_MEMORY``, then on disk), read back in chunks.
"""

from __future__ import annotations

import asyncio
import csv
import io
import tempfile
from collections.abc import AsyncIterator, Callable
from typing import Final

from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

from core.store.records import (
    CONVERSATION_COLUMNS,
    TRANSCRIPT_COLUMNS,
    ConversationRecord,
    MessageRecord,
    _cells,
    conversation_row,
    message_row,
)

CHUNK: Final = 64 * 1024
SPOOL_IN_MEMORY: Final = 4 * 1024 * 1024
_BOM: Final = "\ufeff"

Conversations = AsyncIterator[ConversationRecord]
Messages = Callable[[], AsyncIterator[MessageRecord]]
"""Opens the transcript rows (a second pass over the same search), or None for none."""


async def csv_chunks(
    conversations: Conversations, messages: Messages | None
) -> AsyncIterator[bytes]:
    """The CSV file: the conversations, then (with ``messages``) a blank line and the
    transcript section with its own header."""
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    out.write(_BOM)
    writer.writerow(CONVERSATION_COLUMNS)
    async for record in conversations:
        writer.writerow(_cells(conversation_row(record), True))
        if out.tell() >= CHUNK:
            yield _drain(out)
    if messages is not None:
        out.write("\r\n")
        writer.writerow(TRANSCRIPT_COLUMNS)
        async for message in messages():
            writer.writerow(_cells(message_row(message), True))
            if out.tell() >= CHUNK:
                yield _drain(out)
    if out.tell():
        yield _drain(out)


def _xlsx(row: list[str]) -> list[str]:
    """Cells openpyxl accepts as text: no control characters, no formulas."""
    return [ILLEGAL_CHARACTERS_RE.sub("", c) for c in _cells(row, True)]


def _drain(out: io.StringIO) -> bytes:
    data = out.getvalue().encode()
    out.seek(0)
    out.truncate()
    return data


async def xlsx_chunks(
    conversations: Conversations, messages: Messages | None
) -> AsyncIterator[bytes]:
    """The XLSX workbook: sheet ``conversations``, and ``messages`` with ``messages``."""
    book = Workbook(write_only=True)
    sheet = book.create_sheet("conversations")
    sheet.append(list(CONVERSATION_COLUMNS))
    async for record in conversations:
        sheet.append(_xlsx(conversation_row(record)))
    if messages is not None:
        transcript = book.create_sheet("messages")
        transcript.append(list(TRANSCRIPT_COLUMNS))
        async for message in messages():
            transcript.append(_xlsx(message_row(message)))
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
        await asyncio.to_thread(book.save, spool)
        spool.seek(0)
        while chunk := await asyncio.to_thread(spool.read, CHUNK):
            yield chunk
