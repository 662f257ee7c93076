"""Customer files: reading a CSV or XLSX import into rows of text, and writing the template and
exports (CSV chunks; XLSX through openpyxl's write-only workbook, which spools rows to disk, so
memory stays flat however many customers are written).

Columns: the built-in ``BASE_COLUMNS`` then one per custom field, headed by its key. In cells,
tags and multiple choices are separated by ``;``; booleans are ``true``/``false``.
"""

from __future__ import annotations

import csv
import io
import tempfile
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from typing import Final

from openpyxl import Workbook, load_workbook
from openpyxl.utils.exceptions import InvalidFileException

from core.store.customer_fields import BASE_COLUMNS, FieldDef, Violations, format_value
from core.store.customer_records import StoredCustomer

FORMATS: Final = ("csv", "xlsx")
MEDIA_TYPES: Final = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
MAX_ROWS: Final = 100_000
MAX_COLUMNS: Final = 300
CHUNK: Final = 64 * 1024


def columns(defs: Iterable[FieldDef]) -> list[str]:
    return [*BASE_COLUMNS, *(d.key for d in defs)]


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _bounded(rows: Iterable[Sequence[object]]) -> list[list[str]]:
    """Non-blank rows as text, refusing (not reading on) past ``MAX_ROWS`` data rows or
    ``MAX_COLUMNS`` columns: a small compressed workbook can unpack to far more."""
    out: list[list[str]] = []
    for row in rows:
        if len(row) > MAX_COLUMNS:
            cells = [_cell(c) for c in row[MAX_COLUMNS:]]
            if any(cells):
                raise Violations({"content": f"at most {MAX_COLUMNS} columns"})
            row = row[:MAX_COLUMNS]
        cells = [_cell(c) for c in row]
        while cells and not cells[-1]:
            cells.pop()
        if not cells:
            continue
        out.append(cells)
        if len(out) > MAX_ROWS + 1:
            raise Violations({"content": f"at most {MAX_ROWS} rows per file"})
    return out


def read_table(content: bytes, fmt: str) -> list[list[str]]:
    """The file's rows as text (header first, blank rows dropped); ``Violations`` naming
    ``content`` when it is not a readable file of that format, or too big."""
    try:
        if fmt == "csv":
            text = content.decode("utf-8-sig")
            rows = _bounded(csv.reader(io.StringIO(text, newline="")))
        else:
            book = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
            try:
                rows = _bounded(book.worksheets[0].iter_rows(values_only=True))
            finally:
                book.close()
    except (
        UnicodeDecodeError,
        csv.Error,
        zipfile.BadZipFile,
        InvalidFileException,
        KeyError,
        ValueError,
        OSError,
    ):
        raise Violations({"content": f"not a readable {fmt.upper()} file"}) from None
    except IndexError:
        raise Violations({"content": "the workbook has no sheet"}) from None
    if not rows:
        raise Violations({"content": "no header row"})
    return rows


def customer_row(c: StoredCustomer, defs: Iterable[FieldDef]) -> list[str]:
    d = c.data
    base = [
        d.external_id or "",
        d.display_name,
        d.phone or "",
        d.email or "",
        d.company,
        d.address,
        d.language,
        d.region,
        d.avatar_uri,
        ";".join(d.tags),
        d.owner or "",
        d.visibility,
    ]
    extra = [format_value(d.fields[f.key]) if f.key in d.fields else "" for f in defs]
    return base + extra


def csv_bytes(rows: Iterable[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return out.getvalue().encode("utf-8")


class XlsxSpool:
    """An XLSX workbook written a row at a time (openpyxl's write-only mode spools rows to a
    temporary file), then read back in chunks."""

    def __init__(self, title: str = "customers") -> None:
        self._book = Workbook(write_only=True)
        self._sheet = self._book.create_sheet(title)

    def append(self, row: list[str]) -> None:
        self._sheet.append(row)

    def chunks(self) -> Iterator[bytes]:
        with tempfile.TemporaryFile() as spool:
            self._book.save(spool)
            spool.seek(0)
            while chunk := spool.read(CHUNK):
                yield chunk


def template(fmt: str, defs: Iterable[FieldDef]) -> bytes:
    header = [columns(defs)]
    if fmt == "csv":
        return b"\xef\xbb\xbf" + csv_bytes(header)  # a BOM, so spreadsheets read UTF-8
    book = XlsxSpool()
    for row in header:
        book.append(row)
    return b"".join(book.chunks())
