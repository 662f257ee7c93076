"""The customer database: customers with their details, custom field values, tags, owner and
visibility, their channel identities, groups, notes, the recycle bin, merging, and usage
against per-tenant limits.

Rows are those of ``customers``/``customer_identities`` (migration 0001, which the gateways'
identity resolution in ``core.store.customers`` writes), extended by migration 0010.

- Deleting sets ``deleted_at`` (the recycle bin); ``undelete`` clears it; ``purge_deleted``
  removes customers deleted longer ago than the retention period: ``retention_period()``, the
  setting ``USHER_CUSTOMER_RETENTION_DAYS`` (days; ``PURGE_AFTER_DAYS`` when unset). ``usher serve``
  runs it hourly (``core.housekeeping``).
- Merging moves identities, notes, tags, group memberships and the custom field values the
  survivor lacks, and sets the merged customer's ``merged_into``. Conversations keep the
  customer ids they were started with (the shard is their one writer): readers follow
  ``merged_into`` (``get`` does), and lists leave merged customers out.
- Unique custom fields are decided by ``customer_unique_values`` (a primary key over tenant,
  field and value): a clash is ``Conflict`` naming ``fields.<key>``, and the transaction, with
  everything it wrote, rolls back.
- Limits (``core.store.quotas``: metrics ``customers`` and ``customer_groups``, set by the
  installation's admin) are reserved by every API and import write that adds customers or
  groups, in its transaction: past a limit is ``QuotaExceeded``. Customers the gateways create
  from channel identities are counted but never refused (a customer writing in must reach an
  agent).
- A group is a static member list, or a saved filter (``Group.filter``, a ``CustomerQuery``
  stored as JSON): its members are the live customers matching it when read (``search`` with
  ``CustomerQuery.group`` evaluates it; ``member_count`` counts them). A saved filter may name
  a static group, never another saved filter nor the recycle bin.
- Notes carry files by reference (``core.store.note_files``).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import asyncpg

from core.store import note_files, quotas
from core.store.customer_fields import (
    EMAIL,
    Conflict,
    FieldDef,
    FieldValue,
    Missing,
    Violations,
    check_values,
    definitions,
    unique_text,
)
from core.store.errors import StoreError, translated_errors
from core.store.note_files import NoteFile
from core.store.records import like_pattern
from core.store.validation import PHONE_PATTERN, require_tenant

PURGE_AFTER_DAYS: Final = 30
"""Days a customer stays in the recycle bin before ``purge_deleted`` removes it by default."""
MAX_MERGE_HOPS: Final = 16
VISIBILITIES: Final = ("private", "shared", "public")
_LANGUAGE: Final = re.compile(r"[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8}){0,7}")
_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


@dataclass(frozen=True, slots=True)
class CustomerData:
    """What a writer sets on a customer (None and '' are both 'none')."""

    display_name: str = ""
    phone: str | None = None
    email: str | None = None
    company: str = ""
    address: str = ""
    language: str = ""
    region: str = ""
    avatar_uri: str = ""
    external_id: str | None = None
    tags: tuple[str, ...] = ()
    fields: Mapping[str, FieldValue] = field(default_factory=dict)
    owner: str | None = None
    visibility: str = "public"


@dataclass(frozen=True, slots=True)
class StoredCustomer:
    customer_id: str
    data: CustomerData
    identities: tuple[tuple[str, str], ...] = ()
    """(channel, external id) pairs."""
    groups: tuple[str, ...] = ()
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    deleted_at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class CustomerQuery:
    """Filters that all hold (empty: any)."""

    query: str = ""
    display_name: str = ""
    phone: str = ""
    email: str = ""
    company: str = ""
    address: str = ""
    language: str = ""
    region: str = ""
    avatar_uri: str = ""
    external_id: str = ""
    tags: tuple[str, ...] = ()
    group: str = ""
    owner: str = ""
    visibility: str = ""
    deleted: bool = False
    viewer_agent: str | None = None
    """An agent's id: only what ``core.api.policy.customer_access`` lets it read (the SQL form
    of that rule: not private, or its own)."""


_SAVED: Final = (
    "query",
    "display_name",
    "phone",
    "email",
    "company",
    "address",
    "language",
    "region",
    "avatar_uri",
    "external_id",
    "tags",
    "group",
    "owner",
    "visibility",
)
"""The filters a group saves (not ``deleted`` nor ``viewer_agent``: those are the reader's)."""


def dump_query(q: CustomerQuery) -> str:
    """A saved filter as its JSON column: the filters given."""
    saved = {k: getattr(q, k) for k in _SAVED if getattr(q, k)}
    return json.dumps({k: list(v) if isinstance(v, tuple) else v for k, v in saved.items()})


def load_query(raw: str) -> CustomerQuery:
    loaded: dict[str, Any] = json.loads(raw)
    values: dict[str, Any] = {
        k: tuple(v) if isinstance(v, list) else v for k, v in loaded.items() if k in _SAVED
    }
    return CustomerQuery(**values)


@dataclass(frozen=True, slots=True)
class Group:
    group_id: str
    display_name: str
    member_count: int
    created_at: dt.datetime | None
    filter: CustomerQuery | None = None
    """A saved filter's; None: a static member list."""


class SavedFilterGroup(StoreError):
    """Members added to or removed from a saved filter group by hand."""

    code = "FAILED_PRECONDITION"

    def __init__(self, group_id: str) -> None:
        super().__init__(
            f"customer group {group_id!r} is a saved filter: its members are the customers"
            " matching it"
        )
        self.group_id = group_id


@dataclass(frozen=True, slots=True)
class Note:
    note_id: int
    customer_id: str
    author: str
    body: str
    created_at: dt.datetime
    files: tuple[NoteFile, ...] = ()


@dataclass(frozen=True, slots=True)
class Usage:
    customers: int
    max_customers: int | None
    groups: int
    max_groups: int | None


def check_details(d: CustomerData) -> dict[str, str]:
    """Violations of the built-in details (keyed by field name), empty when none."""
    found: dict[str, str] = {}
    texts = (
        ("display_name", d.display_name, 200),
        ("company", d.company, 200),
        ("address", d.address, 500),
        ("avatar_uri", d.avatar_uri, 2048),
    )
    for name, value, limit in texts:
        if len(value) > limit or "\x00" in value:
            found[name] = f"at most {limit} characters, no NUL"
    if d.phone and PHONE_PATTERN.fullmatch(d.phone) is None:
        found["phone"] = "must be E.164 (like +85291234567)"
    if d.email and (len(d.email) > 320 or EMAIL.fullmatch(d.email) is None):
        found["email"] = "must be an e-mail address"
    if d.language and _LANGUAGE.fullmatch(d.language) is None:
        found["language"] = "must be a BCP 47 tag (like zh-Hant-HK)"
    if d.region and _ID.fullmatch(d.region) is None:
        found["region"] = "must be 1 to 64 of A-Za-z0-9_.-"
    if d.external_id is not None and not 1 <= len(d.external_id) <= 200:
        found["external_id"] = "1 to 200 characters"
    if len(d.tags) > 50 or any(not 1 <= len(t) <= 100 for t in d.tags):
        found["tags"] = "at most 50 tags of 1 to 100 characters"
    if d.visibility not in VISIBILITIES:
        found["visibility"] = "must be private, shared or public"
    if d.visibility == "private" and not d.owner:
        found["owner"] = "a private customer needs an owner"
    return found


def _load_fields(raw: str | None) -> dict[str, FieldValue]:
    loaded: dict[str, Any] = json.loads(raw) if raw else {}
    return {k: tuple(v) if isinstance(v, list) else v for k, v in loaded.items()}


def dump_fields(values: Mapping[str, FieldValue]) -> str:
    return json.dumps(
        {k: list(v) if isinstance(v, tuple) else v for k, v in sorted(values.items())},
        ensure_ascii=False,
    )


SELECT: Final = """
SELECT c.customer_id, c.name, c.phone, c.email, c.company, c.address, c.language, c.region,
       c.avatar_uri, c.external_ref, c.tags, c.fields::text AS fields, c.owner_agent_id,
       c.visibility, c.created_at, c.updated_at, c.deleted_at, c.merged_into,
       ARRAY(SELECT i.channel FROM customer_identities i
             WHERE i.tenant_id = c.tenant_id AND i.customer_id = c.customer_id
             ORDER BY i.channel, i.external_id) AS id_channels,
       ARRAY(SELECT i.external_id FROM customer_identities i
             WHERE i.tenant_id = c.tenant_id AND i.customer_id = c.customer_id
             ORDER BY i.channel, i.external_id) AS id_externals,
       ARRAY(SELECT g.group_id FROM customer_group_members g
             WHERE g.tenant_id = c.tenant_id AND g.customer_id = c.customer_id
             ORDER BY g.group_id) AS group_ids
FROM customers c"""


def data_of(row: asyncpg.Record) -> CustomerData:
    return CustomerData(
        display_name=row["name"],
        phone=row["phone"],
        email=row["email"],
        company=row["company"],
        address=row["address"],
        language=row["language"],
        region=row["region"],
        avatar_uri=row["avatar_uri"],
        external_id=row["external_ref"],
        tags=tuple(row["tags"]),
        fields=_load_fields(row["fields"]),
        owner=row["owner_agent_id"],
        visibility=row["visibility"],
    )


def stored_of(row: asyncpg.Record) -> StoredCustomer:
    return StoredCustomer(
        customer_id=row["customer_id"],
        data=data_of(row),
        identities=tuple(zip(row["id_channels"], row["id_externals"], strict=True)),
        groups=tuple(row["group_ids"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        deleted_at=row["deleted_at"],
    )


def _refuse(problems: Mapping[str, str]) -> None:
    if problems:
        raise Violations(problems)


_METRICS: Final = {"customers": "customers", "groups": "customer_groups"}


async def check_quota(conn: asyncpg.Connection, tenant: str, subject: str, adding: int) -> None:
    """``QuotaExceeded`` unless ``adding`` more ``subject`` (customers, groups) fit the tenant's
    quota (``core.store.quotas.reserve``: racing writers count in turn till commit)."""
    await quotas.reserve(conn, tenant, _METRICS[subject], adding)


async def write_unique(
    conn: asyncpg.Connection,
    tenant: str,
    customer_id: str,
    defs: Mapping[str, FieldDef],
    values: Mapping[str, FieldValue],
) -> None:
    """Make ``customer_unique_values`` hold exactly the customer's unique values; ``Conflict``
    naming ``fields.<key>`` when another customer holds one."""
    await conn.execute(
        "DELETE FROM customer_unique_values WHERE tenant_id = $1 AND customer_id = $2",
        tenant,
        customer_id,
    )
    for key, value in values.items():
        d = defs.get(key)
        if d is None or not d.unique:
            continue
        try:
            async with conn.transaction():  # a savepoint: the clash is ours to name
                await conn.execute(
                    "INSERT INTO customer_unique_values (tenant_id, field_key, value, customer_id)"
                    " VALUES ($1, $2, $3, $4)",
                    tenant,
                    key,
                    unique_text(d, value),
                    customer_id,
                )
        except asyncpg.exceptions.UniqueViolationError as exc:
            raise Conflict(f"fields.{key}", f"another customer has this {key}") from exc


def _filters(q: CustomerQuery, arg: Callable[[Any], str], saved: CustomerQuery | None) -> list[str]:
    """The conditions of ``q``'s filters (``arg`` binds a value); a group with a ``saved``
    filter is that filter's conditions."""
    clauses: list[str] = []
    if q.query:
        p = arg(like_pattern(q.query))
        clauses.append(
            f"(c.name ILIKE {p} ESCAPE '\\' OR c.company ILIKE {p} ESCAPE '\\'"
            f" OR c.email ILIKE {p} ESCAPE '\\' OR c.phone LIKE {p} ESCAPE '\\')"
        )
    for column, value in (("name", q.display_name), ("company", q.company)):
        if value:
            clauses.append(f"c.{column} ILIKE {arg(like_pattern(value))} ESCAPE '\\'")
    if q.address:
        clauses.append(f"c.address ILIKE {arg(like_pattern(q.address))} ESCAPE '\\'")
    exact = (
        ("phone", q.phone),
        ("language", q.language),
        ("region", q.region),
        ("avatar_uri", q.avatar_uri),
        ("external_ref", q.external_id),
        ("owner_agent_id", q.owner),
        ("visibility", q.visibility),
    )
    for column, value in exact:
        if value:
            clauses.append(f"c.{column} = {arg(value)}")
    if q.email:
        clauses.append(f"lower(c.email) = lower({arg(q.email)})")
    if q.tags:
        clauses.append(f"c.tags @> {arg(list(q.tags))}::text[]")
    if q.group and saved is not None:
        clauses.extend(_filters(saved, arg, None))
    elif q.group:
        clauses.append(
            "EXISTS (SELECT 1 FROM customer_group_members m WHERE m.tenant_id = c.tenant_id"
            f" AND m.customer_id = c.customer_id AND m.group_id = {arg(q.group)})"
        )
    return clauses


class CustomerStore:
    """The customer database of every tenant, over ``pool``."""

    def __init__(self, pool: asyncpg.Pool, *, timeout: float = 10.0) -> None:
        self._pool = pool
        self._timeout = timeout

    # --- customers -------------------------------------------------------------------------

    async def create(
        self, tenant: str, customer_id: str | None, data: CustomerData
    ) -> StoredCustomer:
        """A new customer (id generated when None). ``Violations``, ``Conflict`` (id, external
        id, a unique value), ``QuotaExceeded``; nothing is written when refused."""
        _refuse(check_details(data))
        customer_id = customer_id or uuid.uuid4().hex
        with translated_errors():
            async with self._pool.acquire() as conn, conn.transaction():
                await require_tenant(conn, tenant, self._timeout)
                defs = await definitions(conn, tenant)
                _refuse(check_values(defs, data.fields, {}, creating=True))
                await check_quota(conn, tenant, "customers", 1)
                try:
                    async with conn.transaction():
                        inserted = await conn.execute(
                            """INSERT INTO customers (tenant_id, customer_id, name, phone, email,
                                   company, address, language, region, avatar_uri, external_ref,
                                   tags, fields, owner_agent_id, visibility)
                               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12,
                                       $13::jsonb, $14, $15)
                               ON CONFLICT (tenant_id, customer_id) DO NOTHING""",
                            tenant,
                            customer_id,
                            *self._columns(data),
                        )
                except asyncpg.exceptions.UniqueViolationError as exc:
                    raise Conflict("external_id", "another customer has this external id") from exc
                if inserted == "INSERT 0 0":
                    raise Conflict("customer_id", f"customer {customer_id!r} already exists")
                await write_unique(conn, tenant, customer_id, defs, data.fields)
                found = await self._row(conn, tenant, customer_id)
        assert found is not None
        return found

    @staticmethod
    def _columns(d: CustomerData) -> tuple[Any, ...]:
        return (
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

    async def _row(
        self, conn: asyncpg.Connection | asyncpg.Pool, tenant: str, customer_id: str
    ) -> StoredCustomer | None:
        row = await conn.fetchrow(
            f"{SELECT} WHERE c.tenant_id = $1 AND c.customer_id = $2", tenant, customer_id
        )
        return None if row is None else stored_of(row)

    async def get(self, tenant: str, customer_id: str, *, deleted: bool = False) -> StoredCustomer:
        """The customer, following merges; ``Missing`` when absent, or in the recycle bin
        unless ``deleted`` (then: only if in the bin)."""
        with translated_errors():
            current = customer_id
            for _ in range(MAX_MERGE_HOPS):
                row = await self._pool.fetchrow(
                    f"{SELECT} WHERE c.tenant_id = $1 AND c.customer_id = $2", tenant, current
                )
                if row is None or row["merged_into"] is None:
                    break
                current = row["merged_into"]
        if row is None or row["merged_into"] is not None or (row["deleted_at"] is None) == deleted:
            raise Missing("customer", f"customers/{customer_id}")
        return stored_of(row)

    async def update(
        self, tenant: str, customer_id: str, data: CustomerData, *, deleted: bool = False
    ) -> StoredCustomer:
        """Write ``data`` whole over a live customer's details. ``Missing``, ``Violations``,
        ``Conflict``; nothing is written when refused."""
        _refuse(check_details(data))
        with translated_errors():
            async with self._pool.acquire() as conn, conn.transaction():
                old = await conn.fetchrow(
                    "SELECT fields::text AS fields FROM customers WHERE tenant_id = $1"
                    " AND customer_id = $2 AND merged_into IS NULL AND (deleted_at IS NULL) <> $3"
                    " FOR UPDATE",
                    tenant,
                    customer_id,
                    deleted,
                )
                if old is None:
                    raise Missing("customer", f"customers/{customer_id}")
                defs = await definitions(conn, tenant)
                _refuse(
                    check_values(defs, data.fields, _load_fields(old["fields"]), creating=False)
                )
                try:
                    async with conn.transaction():
                        await conn.execute(
                            """UPDATE customers SET name = $3, phone = $4, email = $5,
                                   company = $6, address = $7, language = $8, region = $9,
                                   avatar_uri = $10, external_ref = $11, tags = $12,
                                   fields = $13::jsonb, owner_agent_id = $14, visibility = $15,
                                   updated_at = now()
                               WHERE tenant_id = $1 AND customer_id = $2""",
                            tenant,
                            customer_id,
                            *self._columns(data),
                        )
                except asyncpg.exceptions.UniqueViolationError as exc:
                    raise Conflict("external_id", "another customer has this external id") from exc
                await write_unique(conn, tenant, customer_id, defs, data.fields)
                found = await self._row(conn, tenant, customer_id)
        assert found is not None
        return found

    async def delete(self, tenant: str, customer_id: str) -> StoredCustomer:
        """Move a live customer to the recycle bin; ``Missing``."""
        with translated_errors():
            done = await self._pool.execute(
                "UPDATE customers SET deleted_at = now(), updated_at = now() WHERE tenant_id = $1"
                " AND customer_id = $2 AND deleted_at IS NULL AND merged_into IS NULL",
                tenant,
                customer_id,
            )
        if done == "UPDATE 0":
            raise Missing("customer", f"customers/{customer_id}")
        return await self.get(tenant, customer_id, deleted=True)

    async def undelete(self, tenant: str, customer_id: str) -> StoredCustomer:
        """Restore a customer from the recycle bin; ``Missing``, ``QuotaExceeded``."""
        with translated_errors():
            async with self._pool.acquire() as conn, conn.transaction():
                await check_quota(conn, tenant, "customers", 1)
                done = await conn.execute(
                    "UPDATE customers SET deleted_at = NULL, updated_at = now()"
                    " WHERE tenant_id = $1 AND customer_id = $2 AND deleted_at IS NOT NULL"
                    " AND merged_into IS NULL",
                    tenant,
                    customer_id,
                )
                if done == "UPDATE 0":
                    raise Missing("customer", f"customers/{customer_id}")
        return await self.get(tenant, customer_id)

    async def search(
        self, tenant: str, query: CustomerQuery, after: str, limit: int
    ) -> list[StoredCustomer]:
        """Matching customers ordered by id, after ``after`` ('' from the start); a saved
        filter group (``query.group``) is evaluated."""
        with translated_errors():
            saved = await self._saved(self._pool, tenant, query.group)
            where, args = self.where(tenant, query, saved)
            args.extend([after, limit])
            rows = await self._pool.fetch(
                f"{SELECT} WHERE {where} AND c.customer_id > ${len(args) - 1}"
                f" ORDER BY c.customer_id LIMIT ${len(args)}",
                *args,
                timeout=self._timeout,
            )
        return [stored_of(r) for r in rows]

    @staticmethod
    async def _saved(
        conn: asyncpg.Pool | asyncpg.Connection, tenant: str, group_id: str
    ) -> CustomerQuery | None:
        """The saved filter of group ``group_id``; None for none, a static or an unknown one."""
        if not group_id:
            return None
        raw = await conn.fetchval(
            "SELECT filter::text FROM customer_groups WHERE tenant_id = $1 AND group_id = $2",
            tenant,
            group_id,
        )
        return None if raw is None else load_query(raw)

    @staticmethod
    def where(
        tenant: str, q: CustomerQuery, saved: CustomerQuery | None = None
    ) -> tuple[str, list[Any]]:
        """The SQL condition (over ``customers c``) and its arguments for ``q``; ``saved``, the
        filter of the group ``q`` names, stands for that group's membership."""
        args: list[Any] = [tenant]

        def arg(value: Any) -> str:
            args.append(value)
            return f"${len(args)}"

        clauses = ["c.tenant_id = $1", "c.merged_into IS NULL"]
        clauses.append("c.deleted_at IS NOT NULL" if q.deleted else "c.deleted_at IS NULL")
        clauses.extend(_filters(q, arg, saved))
        if q.viewer_agent is not None:
            clauses.append(
                f"(c.visibility <> 'private' OR c.owner_agent_id = {arg(q.viewer_agent)})"
            )
        return " AND ".join(clauses), args

    async def merge(self, tenant: str, survivor: str, merged: Sequence[str]) -> StoredCustomer:
        """Merge ``merged`` into ``survivor`` in one transaction (see the module docstring);
        ``Missing`` (any of them, live), ``Violations`` (one merged into itself)."""
        if survivor in merged:
            raise Violations({"merged": "a customer cannot be merged into itself"})
        with translated_errors():
            async with self._pool.acquire() as conn, conn.transaction():
                ids = [survivor, *dict.fromkeys(merged)]
                rows = {
                    r["customer_id"]: r
                    for r in await conn.fetch(
                        "SELECT customer_id, tags, fields::text AS fields FROM customers"
                        " WHERE tenant_id = $1 AND customer_id = ANY($2::text[])"
                        " AND deleted_at IS NULL AND merged_into IS NULL"
                        " ORDER BY customer_id FOR UPDATE",
                        tenant,
                        ids,
                    )
                }
                for customer_id in ids:
                    if customer_id not in rows:
                        raise Missing("customer", f"customers/{customer_id}")
                tags = list(dict.fromkeys(t for i in ids for t in rows[i]["tags"]))
                values: dict[str, FieldValue] = {}
                for customer_id in reversed(ids):  # the survivor's own values win
                    values.update(_load_fields(rows[customer_id]["fields"]))
                sources = ids[1:]
                await conn.execute(
                    "DELETE FROM customer_unique_values WHERE tenant_id = $1"
                    " AND customer_id = ANY($2::text[])",
                    tenant,
                    sources,
                )
                for table in ("customer_identities", "customer_notes"):
                    await conn.execute(
                        f"UPDATE {table} SET customer_id = $2 WHERE tenant_id = $1"
                        " AND customer_id = ANY($3::text[])",
                        tenant,
                        survivor,
                        sources,
                    )
                await conn.execute(
                    """INSERT INTO customer_group_members (tenant_id, group_id, customer_id)
                       SELECT tenant_id, group_id, $2 FROM customer_group_members
                       WHERE tenant_id = $1 AND customer_id = ANY($3::text[])
                       ON CONFLICT DO NOTHING""",
                    tenant,
                    survivor,
                    sources,
                )
                await conn.execute(
                    "UPDATE customers SET merged_into = $2, updated_at = now() WHERE tenant_id = $1"
                    " AND (customer_id = ANY($3::text[]) OR merged_into = ANY($3::text[]))",
                    tenant,
                    survivor,
                    sources,
                )
                await conn.execute(
                    "UPDATE customers SET tags = $3, fields = $4::jsonb, updated_at = now()"
                    " WHERE tenant_id = $1 AND customer_id = $2",
                    tenant,
                    survivor,
                    tags,
                    dump_fields(values),
                )
                defs = await definitions(conn, tenant)
                await write_unique(conn, tenant, survivor, defs, values)
        return await self.get(tenant, survivor)

    # --- notes -----------------------------------------------------------------------------

    async def add_note(
        self, tenant: str, customer_id: str, author: str, body: str, files: Sequence[NoteFile] = ()
    ) -> Note:
        """A note on a live customer, with ``files``; ``Missing``, ``Violations`` (``text``,
        ``attachments[i].<field>``)."""
        problems = note_files.check(files)
        if len(body) > 10_000 or "\x00" in body:
            problems["text"] = "at most 10,000 characters, no NUL"
        elif not body and not files:
            problems["text"] = "a note needs text or an attachment"
        _refuse(problems)
        with translated_errors():
            row = await self._pool.fetchrow(
                """INSERT INTO customer_notes (tenant_id, customer_id, author, body, attachments)
                   SELECT tenant_id, customer_id, $3, $4, $5::jsonb FROM customers
                   WHERE tenant_id = $1 AND customer_id = $2 AND deleted_at IS NULL
                     AND merged_into IS NULL
                   RETURNING note_id, customer_id, author, body, created_at""",
                tenant,
                customer_id,
                author,
                body,
                note_files.dumps(files),
            )
        if row is None:
            raise Missing("customer", f"customers/{customer_id}")
        return Note(**dict(row), files=tuple(files))

    async def notes(self, tenant: str, customer_id: str, before: int, limit: int) -> list[Note]:
        """A customer's notes newest first, older than note ``before`` (0: from the newest)."""
        with translated_errors():
            rows = await self._pool.fetch(
                "SELECT note_id, customer_id, author, body, created_at,"
                " attachments::text AS attachments FROM customer_notes"
                " WHERE tenant_id = $1 AND customer_id = $2 AND ($3 = 0 OR note_id < $3)"
                " ORDER BY note_id DESC LIMIT $4",
                tenant,
                customer_id,
                before,
                limit,
            )
        return [
            Note(
                r["note_id"],
                r["customer_id"],
                r["author"],
                r["body"],
                r["created_at"],
                note_files.loads(r["attachments"]),
            )
            for r in rows
        ]

    # --- groups ----------------------------------------------------------------------------

    _GROUP: Final = """
        SELECT g.group_id, g.display_name, g.created_at, g.filter::text AS filter,
               (SELECT count(*) FROM customer_group_members m JOIN customers c
                    ON c.tenant_id = m.tenant_id AND c.customer_id = m.customer_id
                WHERE m.tenant_id = g.tenant_id AND m.group_id = g.group_id
                  AND g.filter IS NULL
                  AND c.deleted_at IS NULL AND c.merged_into IS NULL) AS member_count
        FROM customer_groups g"""

    async def create_group(
        self, tenant: str, group_id: str, display_name: str, saved: CustomerQuery | None = None
    ) -> Group:
        """A new group, static or of the ``saved`` filter; ``Violations`` (``group_id``,
        ``group.display_name``, ``group.filter.<field>``), ``Conflict``, ``QuotaExceeded``."""
        problems = {}
        if _ID.fullmatch(group_id) is None:
            problems["group_id"] = "1 to 64 of A-Za-z0-9_.-"
        if len(display_name) > 200:
            problems["group.display_name"] = "at most 200 characters"
        if saved is not None and saved.deleted:
            problems["group.filter.deleted"] = "a saved filter selects live customers only"
        if saved is not None and saved.visibility and saved.visibility not in VISIBILITIES:
            problems["group.filter.visibility"] = "must be private, shared or public"
        _refuse(problems)
        with translated_errors():
            async with self._pool.acquire() as conn, conn.transaction():
                await require_tenant(conn, tenant, self._timeout)
                if saved is not None and saved.group:
                    static = await conn.fetchval(
                        "SELECT filter IS NULL FROM customer_groups"
                        " WHERE tenant_id = $1 AND group_id = $2 FOR KEY SHARE",
                        tenant,
                        saved.group,
                    )
                    if not static:
                        raise Violations({"group.filter.group": "must name a static group"})
                await check_quota(conn, tenant, "groups", 1)
                done = await conn.execute(
                    "INSERT INTO customer_groups (tenant_id, group_id, display_name, filter)"
                    " VALUES ($1, $2, $3, $4::jsonb) ON CONFLICT DO NOTHING",
                    tenant,
                    group_id,
                    display_name,
                    None if saved is None else dump_query(saved),
                )
                if done == "INSERT 0 0":
                    raise Conflict("group_id", f"customer group {group_id!r} already exists")
        return await self.group(tenant, group_id)

    async def _counted(
        self, conn: asyncpg.Pool | asyncpg.Connection, tenant: str, row: asyncpg.Record
    ) -> Group:
        """A group row as a ``Group``; a saved filter's members counted now."""
        if row["filter"] is None:
            return Group(
                row["group_id"], row["display_name"], row["member_count"], row["created_at"]
            )
        saved = load_query(row["filter"])
        where, args = self.where(tenant, CustomerQuery(group=row["group_id"]), saved)
        count = await conn.fetchval(
            f"SELECT count(*) FROM customers c WHERE {where}", *args, timeout=self._timeout
        )
        return Group(row["group_id"], row["display_name"], count, row["created_at"], saved)

    async def group(self, tenant: str, group_id: str) -> Group:
        with translated_errors():
            row = await self._pool.fetchrow(
                f"{self._GROUP} WHERE g.tenant_id = $1 AND g.group_id = $2", tenant, group_id
            )
            if row is None:
                raise Missing("customer group", f"customerGroups/{group_id}")
            return await self._counted(self._pool, tenant, row)

    async def groups(self, tenant: str, offset: int, limit: int) -> list[Group]:
        """Up to ``limit`` groups by id from the ``offset``-th (saved filters' members counted
        for these only)."""
        with translated_errors():
            rows = await self._pool.fetch(
                f"{self._GROUP} WHERE g.tenant_id = $1 ORDER BY g.group_id OFFSET $2 LIMIT $3",
                tenant,
                offset,
                limit,
            )
            return [await self._counted(self._pool, tenant, r) for r in rows]

    async def delete_group(self, tenant: str, group_id: str) -> None:
        with translated_errors():
            done = await self._pool.execute(
                "DELETE FROM customer_groups WHERE tenant_id = $1 AND group_id = $2",
                tenant,
                group_id,
            )
        if done == "DELETE 0":
            raise Missing("customer group", f"customerGroups/{group_id}")

    async def change_members(
        self, tenant: str, group_id: str, customer_ids: Sequence[str], *, add: bool
    ) -> Group:
        """Add (or remove) members of a static group, all or none; ``Missing`` (the group, or
        a customer to add that is not live in the tenant), ``SavedFilterGroup``."""
        ids = list(dict.fromkeys(customer_ids))
        with translated_errors():
            async with self._pool.acquire() as conn, conn.transaction():
                found = await conn.fetchrow(
                    "SELECT filter IS NULL AS static FROM customer_groups"
                    " WHERE tenant_id = $1 AND group_id = $2 FOR KEY SHARE",
                    tenant,
                    group_id,
                )
                if found is None:
                    raise Missing("customer group", f"customerGroups/{group_id}")
                if not found["static"]:
                    raise SavedFilterGroup(group_id)
                if add:
                    live = {
                        r["customer_id"]
                        for r in await conn.fetch(
                            "SELECT customer_id FROM customers WHERE tenant_id = $1"
                            " AND customer_id = ANY($2::text[]) AND deleted_at IS NULL"
                            " AND merged_into IS NULL",
                            tenant,
                            ids,
                        )
                    }
                    for customer_id in ids:
                        if customer_id not in live:
                            raise Missing("customer", f"customers/{customer_id}")
                    await conn.execute(
                        "INSERT INTO customer_group_members (tenant_id, group_id, customer_id)"
                        " SELECT $1, $2, unnest($3::text[]) ON CONFLICT DO NOTHING",
                        tenant,
                        group_id,
                        ids,
                    )
                else:
                    await conn.execute(
                        "DELETE FROM customer_group_members WHERE tenant_id = $1"
                        " AND group_id = $2 AND customer_id = ANY($3::text[])",
                        tenant,
                        group_id,
                        ids,
                    )
        return await self.group(tenant, group_id)

    # --- usage and limits ------------------------------------------------------------------

    async def usage(self, tenant: str) -> Usage:
        """The tenant's customers and groups against their quotas (``core.store.quotas``)."""
        customers, groups = await quotas.usage(self._pool, tenant, list(_METRICS.values()))
        return Usage(customers.used, customers.limit, groups.used, groups.limit)


def retention_period(env: Mapping[str, str] | None = None) -> dt.timedelta:
    """How long customers stay in the recycle bin: ``USHER_CUSTOMER_RETENTION_DAYS`` (a positive
    whole number of days) from ``env`` (the process's environment when None), else
    ``PURGE_AFTER_DAYS``. ``ValueError`` for a value that is not such a number."""
    raw = (os.environ if env is None else env).get("USHER_CUSTOMER_RETENTION_DAYS", "")
    if not raw:
        return dt.timedelta(days=PURGE_AFTER_DAYS)
    days = int(raw)
    if days < 1:
        raise ValueError("USHER_CUSTOMER_RETENTION_DAYS must be at least 1")
    return dt.timedelta(days=days)


async def purge_deleted(pool: asyncpg.Pool, *, older_than: dt.timedelta | None = None) -> int:
    """Remove every tenant's customers in the recycle bin for longer than ``older_than``
    (``retention_period()`` when None), with their identities, notes, memberships and unique
    values; how many went."""
    if older_than is None:
        older_than = retention_period()
    with translated_errors():
        done: str = await pool.execute(
            "DELETE FROM customers"
            " WHERE deleted_at IS NOT NULL AND deleted_at < now() - $1::interval",
            older_than,
        )
    return int(done.split()[-1])
