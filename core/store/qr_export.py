"""The tenant's QR codes as a CSV or XLSX file, with their counts (``QrCodeService.ExportQrCodes``).

One row per code, newest first, read a page at a time: its code, name, campaign, place, dates
(ISO 8601, UTC), state, target kind, where it leads, its tracking link, scans, unique scans and
conversations (``core.store.qr_scans.totals``), and when it was created.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Final

import asyncpg

from core.qr import targets
from core.store import customer_files as files
from core.store import qr_scans
from core.store.qr_codes import Listed, QrCodes, StoredQrCode

PAGE: Final = 500
HEADER: Final = [
    "code",
    "name",
    "campaign",
    "place",
    "start",
    "end",
    "state",
    "target",
    "target_url",
    "tracking_url",
    "scans",
    "unique_scans",
    "conversations",
    "created",
]


def _when(value: dt.datetime | None) -> str:
    return "" if value is None else value.astimezone(dt.UTC).isoformat()


def row(
    code: StoredQrCode, counts: qr_scans.Counts, tracking_url: str, now: dt.datetime
) -> list[str]:
    """One code's cells, in ``HEADER``'s order."""
    return [
        code.code,
        code.draft.display_name,
        code.draft.campaign,
        code.draft.place,
        _when(code.draft.start_at),
        _when(code.draft.end_at),
        code.state(now).value,
        targets.kind_of(code.draft.target),
        code.target_url,
        tracking_url,
        str(counts.scans),
        str(counts.unique_scans),
        str(counts.conversations),
        _when(code.created_at),
    ]


async def chunks(
    pool: asyncpg.Pool,
    tenant: str,
    *,
    listed: Listed,
    fmt: str,
    tracking_base: str,
    now: dt.datetime,
) -> AsyncIterator[bytes]:
    """The file in chunks (``fmt``: ``csv`` or ``xlsx``); tracking links are
    ``{tracking_base}/q/{code}``."""
    store = QrCodes(pool)
    book = files.XlsxSpool("qr codes") if fmt == "xlsx" else None
    if book is None:
        yield b"\xef\xbb\xbf" + files.csv_bytes([HEADER])  # a BOM: spreadsheets read UTF-8
    else:
        book.append(HEADER)
    after: tuple[dt.datetime, str] | None = None
    while True:
        page = await store.page(tenant, listed=listed, campaign="", after=after, size=PAGE, now=now)
        counts = await qr_scans.totals(pool, tenant, [c.code for c in page])
        rows = [row(c, counts[c.code], f"{tracking_base}/q/{c.code}", now) for c in page]
        if book is None:
            if rows:
                yield files.csv_bytes(rows)
        else:
            for cells in rows:
                book.append(cells)
        if len(page) < PAGE:
            break
        after = page[-1].created_at, page[-1].code
    if book is not None:
        for chunk in book.chunks():
            yield chunk
