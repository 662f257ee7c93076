"""Bulk import and export of customers.

``import_customers`` reads a CSV or XLSX file (``core.store.customer_files``), matches each row
to a live customer by a key column (external id, phone, e-mail or a unique custom field),
checks every row as the API checks a write (built-in details, custom field values, unique
values against the store and within the file, an ``owner`` that is an agent of the tenant, the
tenant's limit), and then, unless it is a dry run, writes every row in ONE transaction: a file
with any problem writes nothing (``ImportRejected``, carrying every row's problems; past the
limit, ``QuotaExceeded``). A dry run reports instead: every row's problems, and the limit as a
problem of the whole file (``ImportReport.file_problems``).

The clear rule: a row sets every column the file has, so an empty cell clears that value of a
matched customer (``visibility`` back to ``public``) and a column the file lacks leaves it as it
is. The row's result depends only on the file, so importing the same file twice changes nothing
the second time (rows equal to their customer are counted ``unchanged`` and not written).
``owner`` is checked against the tenant's agents when it changes (a row keeping a customer's
owner passes even if that agent was removed since).

``export_chunks`` streams the customers a query selects as a CSV or XLSX file, reading them a
page at a time.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import asyncpg

from core.store import customer_files as files
from core.store.customer_fields import (
    BASE_COLUMNS,
    Conflict,
    FieldDef,
    FieldValue,
    Violations,
    check_values,
    definitions,
    parse_text,
    unique_text,
)
from core.store.customer_records import (
    SELECT,
    CustomerData,
    CustomerQuery,
    CustomerStore,
    check_details,
    check_quota,
    dump_fields,
    stored_of,
)
from core.store.errors import translated_errors
from core.store.quotas import QuotaExceeded
from core.store.validation import require_tenant

KEYS: Final = ("external_id", "phone", "email", "field")
EXPORT_PAGE: Final = 1_000
_KEY_COLUMN: Final = {
    "external_id": "c.external_ref",
    "phone": "c.phone",
    "email": "lower(c.email)",
}


@dataclass(frozen=True, slots=True)
class ImportReport:
    rows: int
    created: int
    updated: int
    unchanged: int
    problems: Mapping[int, Mapping[str, str]]
    """File row number (the header is 1) -> column -> what is wrong."""
    committed: bool
    file_problems: Mapping[str, str] = field(default_factory=dict)
    """A dry run's problems of the whole file: ``quota`` -> what the limit refuses."""


class ImportRejected(Violations):
    """Rows with problems in a real import: nothing was written."""

    def __init__(self, report: ImportReport) -> None:
        super().__init__(
            {
                f"rows[{row}].{column}": problem
                for row, found in report.problems.items()
                for column, problem in found.items()
            }
        )
        self.report = report


@dataclass(slots=True)
class _Row:
    number: int
    cells: dict[str, str]
    problems: dict[str, str]
    key: str = ""
    customer_id: str = ""
    old: CustomerData | None = None
    new: CustomerData | None = None


def _header(header: Sequence[str], defs: Mapping[str, FieldDef]) -> list[str]:
    known = set(BASE_COLUMNS) | set(defs)
    names = [h.removeprefix("fields.") if h.removeprefix("fields.") in defs else h for h in header]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise Violations({"content": f"unknown column {unknown[0][:64]!r}"})
    if len(set(names)) != len(names):
        raise Violations({"content": "a column appears twice"})
    return names


_CLEARED: Final[Mapping[str, Any]] = {
    "phone": None,
    "email": None,
    "external_id": None,
    "owner": None,
    "tags": (),
    "visibility": "public",
}
"""What an empty cell sets (the other built-in columns: empty text)."""


def _apply(
    cells: Mapping[str, str], base: CustomerData, defs: Mapping[str, FieldDef]
) -> tuple[CustomerData, dict[str, str]]:
    """``base`` with the row's cells written over it (an empty one clears its value), and the
    cells' parse problems."""
    problems: dict[str, str] = {}
    changes: dict[str, Any] = {}
    values: dict[str, FieldValue] = dict(base.fields)
    for column, text in cells.items():
        if not text:
            if column in defs:
                values.pop(column, None)
            else:
                changes[column] = _CLEARED.get(column, "")
            continue
        if column in defs:
            try:
                values[column] = parse_text(defs[column], text)
            except ValueError:
                problems[f"fields.{column}"] = f"not a {defs[column].type} value"
        elif column == "tags":
            changes["tags"] = tuple(t.strip() for t in text.split(";") if t.strip())
        elif column == "visibility":
            changes["visibility"] = text.lower()
        elif column == "owner":
            changes["owner"] = text.removeprefix("agents/")
        else:
            changes[column] = text
    return dataclasses.replace(base, fields=values, **changes), problems


async def import_customers(
    pool: asyncpg.Pool,
    tenant: str,
    content: bytes,
    fmt: str,
    *,
    key: str = "external_id",
    key_field: str = "",
    dry_run: bool = False,
) -> ImportReport:
    """Import a file (see the module docstring). ``Violations`` for a malformed file or a bad
    key; ``ImportRejected`` for row problems in a real import; ``QuotaExceeded``; a unique
    value a concurrent writer took meanwhile is ``Conflict``, and nothing is written."""
    table = files.read_table(content, fmt)
    with translated_errors():
        async with pool.acquire() as conn, conn.transaction():
            await require_tenant(conn, tenant, 10.0)
            defs = await definitions(conn, tenant)
            header = _header(table[0], defs)
            key_column = await _key_column(key, key_field, defs)
            if key_column not in header:
                raise Violations({"content": f"the key column {key_column!r} is missing"})
            rows = [
                _Row(
                    n,
                    dict(zip(header, cells + [""] * (len(header) - len(cells)), strict=False)),
                    {},
                )
                for n, cells in enumerate(table[1:], start=2)
            ]
            await _match(conn, tenant, rows, key, key_column, defs)
            for row in rows:
                if row.problems:
                    continue
                base = row.old or CustomerData()
                row.new, parse_problems = _apply(row.cells, base, defs)
                row.problems.update(parse_problems)
                row.problems.update(check_details(row.new))
                row.problems.update(
                    check_values(
                        defs,
                        row.new.fields,
                        row.old.fields if row.old else {},
                        creating=row.old is None,
                    )
                )
            await _check_unique(conn, tenant, rows, defs)
            await _check_owners(conn, tenant, rows)
            created = [r for r in rows if not r.problems and r.old is None]
            changed = [r for r in rows if not r.problems and r.old is not None and r.new != r.old]
            report = ImportReport(
                rows=len(rows),
                created=len(created),
                updated=len(changed),
                unchanged=sum(1 for r in rows if not r.problems and r.new == r.old),
                problems={r.number: r.problems for r in rows if r.problems},
                committed=False,
            )
            try:
                await check_quota(conn, tenant, "customers", len(created))
            except QuotaExceeded as exc:
                if not dry_run:
                    raise
                over = (
                    f"the {len(created)} customers it would create pass the tenant's limit of"
                    f" {exc.limit}"
                )
                report = dataclasses.replace(report, file_problems={"quota": over})
            if dry_run:
                return report
            if report.problems:
                raise ImportRejected(report)
            try:
                await _write(conn, tenant, created, changed, defs)
            except asyncpg.exceptions.UniqueViolationError as exc:  # a concurrent writer won
                raise Conflict("content", "a unique value was taken meanwhile") from exc
    return dataclasses.replace(report, committed=True)


async def _key_column(key: str, key_field: str, defs: Mapping[str, FieldDef]) -> str:
    if key != "field":
        return key
    d = defs.get(key_field)
    if d is None or not d.unique:
        raise Violations({"key_field": "must name a unique custom field"})
    return d.key


async def _match(
    conn: asyncpg.Connection,
    tenant: str,
    rows: list[_Row],
    key: str,
    key_column: str,
    defs: Mapping[str, FieldDef],
) -> None:
    """Set each row's key and matched customer (``old``), or a problem."""
    seen: dict[str, int] = {}
    for row in rows:
        text = row.cells.get(key_column, "")
        if not text:
            row.problems[key_column] = "the key column is empty"
            continue
        row.key = text.lower() if key == "email" else text
        if key == "field":
            try:
                row.key = unique_text(defs[key_column], parse_text(defs[key_column], text))
            except ValueError:
                row.problems[f"fields.{key_column}"] = "not a valid key value"
                continue
        if row.key in seen:
            row.problems[key_column] = f"the same key as row {seen[row.key]}"
        else:
            seen[row.key] = row.number
    keys = [r.key for r in rows if r.key and not r.problems]
    if key == "field":
        found = await conn.fetch(
            f"""{SELECT} JOIN customer_unique_values u
                    ON u.tenant_id = c.tenant_id AND u.customer_id = c.customer_id
                WHERE c.tenant_id = $1 AND u.field_key = $2 AND u.value = ANY($3::text[])
                  AND c.merged_into IS NULL""",
            tenant,
            key_column,
            keys,
        )
        by_key: dict[str, list[asyncpg.Record]] = {}
        for r in found:
            by_key[unique_text(defs[key_column], stored_of(r).data.fields[key_column])] = [r]
    else:
        column = _KEY_COLUMN[key]
        found = await conn.fetch(
            f"{SELECT} WHERE c.tenant_id = $1 AND {column} = ANY($2::text[])"
            " AND c.merged_into IS NULL",
            tenant,
            keys,
        )
        by_key = {}
        for r in found:
            k = r["email"].lower() if key == "email" else r[column.removeprefix("c.")]
            by_key.setdefault(k, []).append(r)
    for row in rows:
        if row.problems:
            continue
        matches = by_key.get(row.key, [])
        if len(matches) > 1:
            row.problems[key_column] = "several customers have this key"
        elif matches:
            stored = stored_of(matches[0])
            if stored.deleted_at is not None:
                row.problems[key_column] = "the customer with this key is in the recycle bin"
            row.customer_id, row.old = stored.customer_id, stored.data
        else:
            row.customer_id = uuid.uuid4().hex


async def _check_unique(
    conn: asyncpg.Connection, tenant: str, rows: list[_Row], defs: Mapping[str, FieldDef]
) -> None:
    """Problems for unique values (custom fields, external ids) held by another customer, in
    the store or in another row of the file."""
    claims: dict[tuple[str, str], _Row] = {}
    for row in rows:
        if row.problems or row.new is None:
            continue
        wanted = [(k, unique_text(defs[k], v)) for k, v in row.new.fields.items() if defs[k].unique]
        if row.new.external_id:
            wanted.append(("external_id", row.new.external_id))
        for claim in wanted:
            other = claims.setdefault(claim, row)
            if other is not row:
                row.problems[_column(claim[0])] = f"the same value as row {other.number}"
    fields = [(k, v) for k, v in claims if k != "external_id"]
    held = await conn.fetch(
        """SELECT field_key AS k, value AS v, customer_id FROM customer_unique_values
           WHERE tenant_id = $1
             AND (field_key, value) IN (SELECT * FROM unnest($2::text[], $3::text[]))
           UNION ALL
           SELECT 'external_id', external_ref, customer_id FROM customers
           WHERE tenant_id = $1 AND external_ref = ANY($4::text[])""",
        tenant,
        [k for k, _ in fields],
        [v for _, v in fields],
        [v for k, v in claims if k == "external_id"],
    )
    for h in held:
        holder = claims.get((h["k"], h["v"]))
        if holder is not None and h["customer_id"] != holder.customer_id and not holder.problems:
            holder.problems[_column(h["k"])] = "another customer has this value"


async def _check_owners(conn: asyncpg.Connection, tenant: str, rows: list[_Row]) -> None:
    """A problem for each row giving a customer an owner who is not an agent of the tenant."""
    changing = [
        r
        for r in rows
        if not r.problems
        and r.new is not None
        and r.new.owner
        and (r.old is None or r.old.owner != r.new.owner)
    ]
    if not changing:
        return
    known = {
        r["agent_id"]
        for r in await conn.fetch(
            "SELECT agent_id FROM agents WHERE tenant_id = $1 AND agent_id = ANY($2::text[])"
            " AND removed_at IS NULL",
            tenant,
            list({r.new.owner for r in changing if r.new is not None}),
        )
    }
    for row in changing:
        assert row.new is not None
        if row.new.owner not in known:
            row.problems["owner"] = "not an agent of the tenant"


def _padded(cells: list[str], width: int) -> list[str]:
    return cells + [""] * (width - len(cells))


def _column(key: str) -> str:
    return key if key == "external_id" else f"fields.{key}"


_INSERT: Final = """
INSERT INTO customers (tenant_id, customer_id, name, phone, email, company, address, language,
    region, avatar_uri, external_ref, tags, fields, owner_agent_id, visibility)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13::jsonb, $14, $15)"""
_UPDATE: Final = """
UPDATE customers SET name = $3, phone = $4, email = $5, company = $6, address = $7,
    language = $8, region = $9, avatar_uri = $10, external_ref = $11, tags = $12,
    fields = $13::jsonb, owner_agent_id = $14, visibility = $15, updated_at = now()
WHERE tenant_id = $1 AND customer_id = $2"""


def _args(tenant: str, row: _Row) -> tuple[Any, ...]:
    d = row.new
    assert d is not None
    return (
        tenant,
        row.customer_id,
        d.display_name,
        d.phone or None,
        d.email or None,
        d.company,
        d.address,
        d.language,
        d.region,
        d.avatar_uri,
        d.external_id or None,
        list(d.tags),
        dump_fields(d.fields),
        d.owner or None,
        d.visibility,
    )


async def _write(
    conn: asyncpg.Connection,
    tenant: str,
    created: list[_Row],
    changed: list[_Row],
    defs: Mapping[str, FieldDef],
) -> None:
    if created:
        await conn.executemany(_INSERT, [_args(tenant, r) for r in created])
    if changed:
        await conn.executemany(_UPDATE, [_args(tenant, r) for r in changed])
    written = created + changed
    await conn.execute(
        "DELETE FROM customer_unique_values WHERE tenant_id = $1 AND customer_id = ANY($2::text[])",
        tenant,
        [r.customer_id for r in changed],
    )
    unique = [
        (tenant, k, unique_text(defs[k], v), r.customer_id)
        for r in written
        if r.new is not None
        for k, v in r.new.fields.items()
        if defs[k].unique
    ]
    if unique:
        await conn.executemany(
            "INSERT INTO customer_unique_values (tenant_id, field_key, value, customer_id)"
            " VALUES ($1, $2, $3, $4)",
            unique,
        )


async def export_chunks(
    store: CustomerStore, pool: asyncpg.Pool, tenant: str, query: CustomerQuery, fmt: str
) -> AsyncIterator[bytes]:
    """The selected customers as a file, in chunks, a page of customers read at a time."""
    defs = list((await definitions(pool, tenant)).values())
    header = files.columns(defs)
    if fmt == "csv":
        yield b"\xef\xbb\xbf" + files.csv_bytes([header])
        async for page in _pages(store, tenant, query):
            yield files.csv_bytes(files.customer_row(c, defs) for c in page)
        return
    book = files.XlsxSpool()
    book.append(header)
    async for page in _pages(store, tenant, query):
        for c in page:
            book.append(files.customer_row(c, defs))
    for chunk in book.chunks():
        yield chunk


async def _pages(
    store: CustomerStore, tenant: str, query: CustomerQuery
) -> AsyncIterator[list[Any]]:
    after = ""
    while True:
        page = await store.search(tenant, query, after, EXPORT_PAGE)
        if not page:
            return
        yield page
        if len(page) < EXPORT_PAGE:
            return
        after = page[-1].customer_id
