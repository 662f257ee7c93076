"""A report as a table, and that table as CSV or XLSX byte chunks.

``table`` flattens a ``Report``: one row per period and group, then one ``total`` row per group
over the whole range; columns are the period (label, start and end in the tenant's zone), the
group (agent, queue or channel and its display name), every figure of
``core.reports.figures.as_dict`` (durations in seconds), and for agents their attendance
(first sign-in, last online, seconds per status and per custom status). The agent report's
XLSX has a second sheet, ``logins``.

CSV is UTF-8 with a byte-order mark, text cells a spreadsheet would run as formulas prefixed
with ``'``; XLSX goes through openpyxl's write-only mode into a spooled temporary file, read
back in chunks (as ``core.store.records_export`` does for conversations).
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import tempfile
from collections.abc import AsyncIterator, Iterator
from typing import Any, Final

from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

from core.reports import figures as fg
from core.reports.calendar import zone
from core.reports.query import Kind
from core.reports.series import Report, Row

CHUNK: Final = 64 * 1024
SPOOL_IN_MEMORY: Final = 4 * 1024 * 1024
_BOM: Final = "\ufeff"
_FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")
TOTAL: Final = "total"

Cell = str | int | float | None

_STATUSES: Final = ("online", "away", "break")
LOGIN_COLUMNS: Final = ("agent", "display_name", "sign_in", "sign_out", "client_address")


def _local(at: dt.datetime | None, report: Report) -> str:
    return "" if at is None else at.astimezone(zone(report.time_zone)).isoformat()


def _custom_names(report: Report) -> list[str]:
    return sorted(
        {
            name
            for r in (*report.rows, *report.totals)
            if r.attendance
            for name in r.attendance.custom
        }
    )


def header(report: Report) -> list[str]:
    kind = report.query.kind
    columns = ["period", "period_start", "period_end"]
    if kind is not Kind.OVERVIEW:
        columns.append(kind.value.removesuffix("s"))
        if kind in (Kind.AGENTS, Kind.QUEUES):
            columns.append("display_name")
    columns.extend(fg.as_dict(fg.ZERO))
    if kind is Kind.AGENTS:
        columns += ["first_sign_in", "last_online", *(f"{s}_s" for s in _STATUSES)]
        columns += [f"custom:{name}_s" for name in _custom_names(report)]
    return columns


def _row(report: Report, row: Row, customs: list[str]) -> list[Cell]:
    kind = report.query.kind
    if row.period is None:
        cells: list[Cell] = [TOTAL, _local(report.start, report), _local(report.end, report)]
    else:
        p = report.periods[row.period]
        cells = [p.label, _local(p.start, report), _local(p.end, report)]
    if kind is not Kind.OVERVIEW:
        cells.append(row.key)
        if kind in (Kind.AGENTS, Kind.QUEUES):
            cells.append(report.names.get(row.key, ""))
    cells.extend(fg.as_dict(row.figures).values())
    if kind is Kind.AGENTS:
        a = row.attendance
        cells.append(_local(a.first_sign_in if a else None, report))
        cells.append(_local(a.last_online if a else None, report))
        cells.extend(round(a.seconds.get(s, 0.0), 3) if a else 0 for s in _STATUSES)
        cells.extend(round(a.custom.get(n, 0.0), 3) if a else 0 for n in customs)
    return cells


def table(report: Report) -> tuple[list[str], Iterator[list[Cell]]]:
    """The header and the rows (periods, then the totals)."""
    customs = _custom_names(report)

    def rows() -> Iterator[list[Cell]]:
        for row in report.rows:
            yield _row(report, row, customs)
        for row in report.totals:
            yield _row(report, row, customs)

    return header(report), rows()


def logins_table(report: Report) -> Iterator[list[Cell]]:
    for login in report.logins:
        yield [
            login.agent_id,
            report.names.get(login.agent_id, ""),
            _local(login.sign_in, report),
            _local(login.sign_out, report),
            login.client_address,
        ]


def document(report: Report) -> dict[str, Any]:
    """The report as one JSON-ready document (``usher report --json``): the range, and each
    row and total as the table's cells by column name."""
    columns, rows = table(report)
    return {
        "kind": report.query.kind.value,
        "time_zone": report.time_zone,
        "start": _local(report.start, report),
        "end": _local(report.end, report),
        "group_by": report.query.grouping.value,
        "rows": [dict(zip(columns, row, strict=True)) for row in rows],
        "logins": [dict(zip(LOGIN_COLUMNS, row, strict=True)) for row in logins_table(report)],
    }


def _text(cell: Cell) -> str:
    if cell is None:
        return ""
    if isinstance(cell, str):
        return "'" + cell if cell.startswith(_FORMULA_STARTS) else cell
    if isinstance(cell, float):
        return f"{cell:.6g}" if abs(cell) < 1e15 else repr(cell)
    return str(cell)


def _drain(out: io.StringIO) -> bytes:
    data = out.getvalue().encode()
    out.seek(0)
    out.truncate()
    return data


async def csv_chunks(report: Report) -> AsyncIterator[bytes]:
    """The CSV file, about ``CHUNK`` bytes at a time."""
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    out.write(_BOM)
    columns, rows = table(report)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_text(c) for c in row])
        if out.tell() >= CHUNK:
            yield _drain(out)
    if out.tell():
        yield _drain(out)


def _xlsx(row: list[Cell]) -> list[Cell]:
    return [ILLEGAL_CHARACTERS_RE.sub("", _text(c)) if isinstance(c, str) else c for c in row]


async def xlsx_chunks(report: Report) -> AsyncIterator[bytes]:
    """The XLSX workbook: sheet ``report`` (and ``logins`` for the agent report)."""
    book = Workbook(write_only=True)
    sheet = book.create_sheet("report")
    columns, rows = table(report)
    sheet.append(columns)
    for row in rows:
        sheet.append(_xlsx(row))
    if report.query.kind is Kind.AGENTS:
        logins = book.create_sheet("logins")
        logins.append(list(LOGIN_COLUMNS))
        for row in logins_table(report):
            logins.append(_xlsx(row))
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
        await asyncio.to_thread(book.save, spool)
        spool.seek(0)
        while chunk := await asyncio.to_thread(spool.read, CHUNK):
            yield chunk
