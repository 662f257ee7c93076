"""Canned replies: personal (an agent's own) and shared (tenant-wide) replies in categories, with
a shortcut (``/refund``), a title, a text with variables (``core.store.canned_templates``), a
language and attachments; their search; and their usage, one row per message sent from one.

Rows are those of migration 0016. Not routing state: the front door writes them through this
module (``CannedReplyService``), and records a use after the shard committed the message.

- Scope: a row whose ``owner`` is None is shared; otherwise it is that agent's. A shared reply
  may sit in a shared category only; a personal one in a shared category or one of its owner's.
- Who may do what is the policy's (``core.api.policy.canned_reply_access``); lists and search
  show what a ``Viewer`` may read (an agent: the shared ones and its own).
- A shortcut is ``/`` and 1 to 32 characters without spaces, ``/`` or braces, unique among the
  replies of one scope (the tenant's shared ones, or one agent's) in one language, compared
  NFKC-normalized and case-folded: a clash is ``Conflict`` naming ``shortcut``.
- Every write checks the whole reply (``check_reply``: ``Violations`` keyed by the API's field
  names), the text's variables against the tenant's custom fields at that moment, and the
  limits (``Limits``; ``QuotaExceeded`` past one) under a per-tenant lock.
- Search (``search``) matches the normalized query as substrings, each whitespace-separated term
  anywhere in the shortcut, title or text: Chinese and Thai, written without spaces, match
  inside words. Shortcut matches rank first, then title matches, then the most used.
- Usage (``record_use``) is keyed by the message id, so a retried call counts once, and the
  reply's ``use_count`` goes up in the same statement; ``usage`` groups uses per reply, agent
  and day for reports. Uses stay when their reply is deleted.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import unicodedata
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import asyncpg

from core.store import canned_templates as templates
from core.store.customer_fields import (
    Conflict,
    FieldValue,
    Missing,
    Violations,
    definitions,
)
from core.store.customer_records import CustomerStore
from core.store.errors import StoreError, translated_errors
from core.store.records import Attachment, like_pattern

MAX_TITLE: Final = 200
MAX_TEXT: Final = 10_000
MAX_CATEGORY_NAME: Final = 200
MAX_ATTACHMENTS: Final = 10
"""Attachments one reply carries at most."""
MAX_QUERY: Final = 200
SHORTCUT: Final = re.compile(r"/[^\s/{}\x00-\x1f\x7f]{1,32}")
ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
LANGUAGE: Final = re.compile(r"[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8}){0,7}")
SHA256: Final = re.compile(r"[0-9a-f]{64}")
_LOCK_SQL: Final = "SELECT pg_advisory_xact_lock(hashtext('usher.canned:' || $1))"

Scope = Literal["all", "shared", "personal"]


class QuotaExceeded(StoreError):
    """A write past a limit of ``Limits``: ``subject`` names which (``shared_replies``...)."""

    code = "RESOURCE_EXHAUSTED"

    def __init__(self, subject: str, limit: int, message: str) -> None:
        super().__init__(message)
        self.subject = subject
        self.limit = limit


@dataclass(frozen=True, slots=True)
class Limits:
    """How many a tenant may keep."""

    shared_replies: int = 10_000
    personal_replies: int = 1_000
    """Per agent."""
    shared_categories: int = 500
    personal_categories: int = 50
    """Per agent."""


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who reads: an agent sees the shared rows and its own; ``everyone`` (supervisors and
    admins) sees every row of the tenant."""

    agent_id: str | None
    everyone: bool = False

    def sees(self, owner: str | None) -> bool:
        return self.everyone or owner is None or owner == self.agent_id


@dataclass(frozen=True, slots=True)
class Category:
    category_id: str
    display_name: str
    owner: str | None = None
    """The agent whose personal category it is; None: shared."""
    display_order: int = 0
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    reply_id: str
    title: str
    text: str = ""
    owner: str | None = None
    """The agent whose personal reply it is; None: shared."""
    category_id: str | None = None
    shortcut: str = ""
    language: str = ""
    """BCP 47; empty: any language."""
    attachments: tuple[Attachment, ...] = ()
    use_count: int = 0
    last_used_at: dt.datetime | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None

    @property
    def variables(self) -> tuple[str, ...]:
        """The variables its text uses (none when the text does not parse)."""
        try:
            return templates.parse(self.text, None).variables
        except templates.TemplateError:
            return ()


@dataclass(frozen=True, slots=True)
class ReplyQuery:
    """Filters that all hold, within what the viewer sees."""

    viewer: Viewer
    scope: Scope = "all"
    owner: str | None = None
    """With scope ``personal``: this agent's (None: the viewer's own)."""
    category_id: str | None = None
    language: str = ""
    """Replies in this language, a more specific tag of it (``zh`` finds ``zh-Hant``), or in
    none."""


@dataclass(frozen=True, slots=True)
class UsageRow:
    reply_id: str
    agent_id: str
    day: dt.date
    uses: int


@dataclass(frozen=True, slots=True)
class RenderValues:
    """The values of a conversation's variables (absent: no value)."""

    values: Mapping[str, str] = field(default_factory=dict)


# --- checks --------------------------------------------------------------------------------------


def normalized(text: str) -> str:
    """``text`` as search compares it: NFKC, case-folded, whitespace runs as one space."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def check_id(value: str) -> str | None:
    return (
        None if ID.fullmatch(value) else "1 to 64 of A-Za-z0-9_.- (starting with a letter or digit)"
    )


def _line(value: str, limit: int, *, required: bool) -> str | None:
    if required and not value.strip():
        return "is required"
    if len(value) > limit:
        return f"at most {limit} characters"
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        return "one line without control characters"
    return None


def check_reply(reply: Reply, field_keys: Collection[str]) -> dict[str, str]:
    """What is wrong with ``reply`` (keyed by the API's field names), empty when nothing. The
    text's custom-field variables must name keys of ``field_keys``."""
    found: dict[str, str] = {}
    problem = _line(reply.title, MAX_TITLE, required=True)
    if problem:
        found["title"] = problem
    if not reply.text and not reply.attachments:
        found["text"] = "a reply needs text or an attachment"
    elif len(reply.text) > MAX_TEXT:
        found["text"] = f"at most {MAX_TEXT} characters"
    elif "\x00" in reply.text:
        found["text"] = "no NUL characters"
    else:
        try:
            templates.parse(reply.text, field_keys)
        except templates.TemplateError as exc:
            found["text"] = "; ".join(exc.problems)
    if reply.shortcut and not SHORTCUT.fullmatch(reply.shortcut):
        found["shortcut"] = "'/' and 1 to 32 characters without spaces, '/' or braces"
    if reply.language and not LANGUAGE.fullmatch(reply.language):
        found["language"] = "a BCP 47 tag such as en, zh-Hant or th"
    if len(reply.attachments) > MAX_ATTACHMENTS:
        found["attachments"] = f"at most {MAX_ATTACHMENTS}"
    for i, a in enumerate(reply.attachments):
        if not SHA256.fullmatch(a.sha256):
            found[f"attachments[{i}].sha256"] = "64 lowercase hex digits"
        if a.size < 0:
            found[f"attachments[{i}].size"] = "not negative"
    if reply.category_id is not None and check_id(reply.category_id):
        found["category"] = "not a category id"
    return found


def check_category(category: Category) -> dict[str, str]:
    found: dict[str, str] = {}
    problem = _line(category.display_name, MAX_CATEGORY_NAME, required=True)
    if problem:
        found["display_name"] = problem
    if not -1_000_000 <= category.display_order <= 1_000_000:
        found["display_order"] = "within -1,000,000 and 1,000,000"
    return found


def _refuse(problems: Mapping[str, str]) -> None:
    if problems:
        raise Violations(problems)


# --- rows ----------------------------------------------------------------------------------------

_CATEGORY: Final = (
    "SELECT category_id, owner_agent_id, display_name, display_order, created_at, updated_at"
    " FROM canned_reply_categories"
)
_REPLY_COLUMNS: Final = (
    "reply_id, owner_agent_id, category_id, shortcut, title, body, language,"
    " attachments::text AS attachments, use_count, last_used_at, created_at, updated_at"
)


def _category(row: asyncpg.Record) -> Category:
    return Category(
        category_id=row["category_id"],
        display_name=row["display_name"],
        owner=row["owner_agent_id"],
        display_order=row["display_order"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _reply(row: asyncpg.Record) -> Reply:
    return Reply(
        reply_id=row["reply_id"],
        title=row["title"],
        text=row["body"],
        owner=row["owner_agent_id"],
        category_id=row["category_id"],
        shortcut=row["shortcut"],
        language=row["language"],
        attachments=tuple(
            Attachment(
                sha256=str(a.get("sha256", "")),
                name=str(a.get("name", "")),
                type=str(a.get("type", "")),
                size=int(a.get("size", 0)),
                uri=str(a.get("uri", "")),
            )
            for a in json.loads(row["attachments"])
        ),
        use_count=row["use_count"],
        last_used_at=row["last_used_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _attachments_json(reply: Reply) -> str:
    return json.dumps(
        [
            {"sha256": a.sha256, "name": a.name, "type": a.type, "size": a.size, "uri": a.uri}
            for a in reply.attachments
        ],
        ensure_ascii=False,
    )


def _search_text(reply: Reply) -> str:
    """Shortcut, title and text normalized, one per line (normalizing leaves no newline)."""
    return "\n".join(normalized(x) for x in (reply.shortcut, reply.title, reply.text))


def _visible(viewer: Viewer, args: list[Any]) -> str:
    """The SQL condition for rows ``viewer`` sees (``args`` gains its parameter)."""
    if viewer.everyone:
        return "TRUE"
    args.append(viewer.agent_id)
    return f"(owner_agent_id IS NULL OR owner_agent_id = ${len(args)})"


def _language(language: str, args: list[Any]) -> str:
    args.append(language.lower())
    n = len(args)
    return f"(language = '' OR lower(language) = ${n} OR lower(language) LIKE ${n} || '-%')"


class CannedReplies:
    """The store of canned replies and categories over a pool. Each method is one transaction."""

    def __init__(
        self, pool: asyncpg.Pool, *, limits: Limits | None = None, timeout: float = 10.0
    ) -> None:
        self._pool = pool
        self._limits = limits or Limits()
        self._timeout = timeout

    # --- categories ------------------------------------------------------------------------

    async def _count_under_lock(
        self, conn: asyncpg.Connection, tenant: str, table: str, owner: str | None
    ) -> int:
        await conn.execute(_LOCK_SQL, tenant)
        used: int = await conn.fetchval(
            f"SELECT count(*) FROM {table} WHERE tenant_id = $1"
            " AND owner_agent_id IS NOT DISTINCT FROM $2",
            tenant,
            owner,
        )
        return used

    async def _check_quota(
        self, conn: asyncpg.Connection, tenant: str, table: str, owner: str | None
    ) -> None:
        kind = "replies" if table == "canned_replies" else "categories"
        subject = f"{'personal' if owner else 'shared'}_{kind}"
        limit: int = getattr(self._limits, subject)
        if await self._count_under_lock(conn, tenant, table, owner) >= limit:
            whose = f"agent {owner!r}'s" if owner else "the tenant's"
            scope = "personal" if owner else "shared"
            raise QuotaExceeded(
                subject, limit, f"{whose} limit of {limit} {scope} canned {kind} is reached"
            )

    async def create_category(self, tenant: str, category: Category) -> Category:
        """Store a new category; ``Conflict`` (``category_id``) when the id is taken."""
        _refuse(check_category(category))
        with translated_errors():
            async with self._pool.acquire(timeout=self._timeout) as conn, conn.transaction():
                await self._check_quota(conn, tenant, "canned_reply_categories", category.owner)
                try:
                    row = await conn.fetchrow(
                        "INSERT INTO canned_reply_categories (tenant_id, category_id,"
                        " owner_agent_id, display_name, display_order) VALUES ($1, $2, $3, $4, $5)"
                        " RETURNING category_id, owner_agent_id, display_name, display_order,"
                        " created_at, updated_at",
                        tenant,
                        category.category_id,
                        category.owner,
                        category.display_name,
                        category.display_order,
                    )
                except asyncpg.exceptions.UniqueViolationError as exc:
                    raise Conflict("category_id", "a category with this id exists") from exc
        return _category(row)

    async def category(self, tenant: str, category_id: str) -> Category | None:
        with translated_errors():
            row = await self._pool.fetchrow(
                f"{_CATEGORY} WHERE tenant_id = $1 AND category_id = $2",
                tenant,
                category_id,
                timeout=self._timeout,
            )
        return None if row is None else _category(row)

    async def categories(
        self,
        tenant: str,
        viewer: Viewer,
        *,
        scope: Scope = "all",
        owner: str | None = None,
        after: str = "",
        size: int = 100,
    ) -> list[Category]:
        """Categories ``viewer`` sees, by id, after the id ``after``, at most ``size``."""
        args: list[Any] = [tenant, after]
        where = ["tenant_id = $1", "category_id > $2", _visible(viewer, args)]
        where += _scope(scope, owner or viewer.agent_id, args)
        args.append(size)
        with translated_errors():
            rows = await self._pool.fetch(
                f"{_CATEGORY} WHERE {' AND '.join(where)} ORDER BY category_id LIMIT ${len(args)}",
                *args,
                timeout=self._timeout,
            )
        return [_category(r) for r in rows]

    async def update_category(self, tenant: str, category: Category) -> Category:
        """Replace a category's name and order (its scope stays); ``Missing`` when absent."""
        _refuse(check_category(category))
        with translated_errors():
            row = await self._pool.fetchrow(
                "UPDATE canned_reply_categories SET display_name = $3, display_order = $4,"
                " updated_at = now() WHERE tenant_id = $1 AND category_id = $2"
                " RETURNING category_id, owner_agent_id, display_name, display_order,"
                " created_at, updated_at",
                tenant,
                category.category_id,
                category.display_name,
                category.display_order,
                timeout=self._timeout,
            )
        if row is None:
            raise Missing("canned reply category", f"cannedReplyCategories/{category.category_id}")
        return _category(row)

    async def delete_category(self, tenant: str, category_id: str) -> None:
        """Delete a category; its replies stay, in no category. ``Missing`` when absent."""
        with translated_errors():
            async with self._pool.acquire(timeout=self._timeout) as conn, conn.transaction():
                await conn.execute(
                    "UPDATE canned_replies SET category_id = NULL, updated_at = now()"
                    " WHERE tenant_id = $1 AND category_id = $2",
                    tenant,
                    category_id,
                )
                deleted = await conn.fetchval(
                    "DELETE FROM canned_reply_categories WHERE tenant_id = $1"
                    " AND category_id = $2 RETURNING 1",
                    tenant,
                    category_id,
                )
        if deleted is None:
            raise Missing("canned reply category", f"cannedReplyCategories/{category_id}")

    # --- replies ---------------------------------------------------------------------------

    async def _checked(self, conn: asyncpg.Connection, tenant: str, reply: Reply) -> None:
        """``Violations`` unless ``reply`` is whole and its category fits its scope."""
        fields = await definitions(conn, tenant)
        problems = check_reply(reply, fields)
        if reply.category_id is not None and "category" not in problems:
            owner = await conn.fetchrow(
                "SELECT owner_agent_id FROM canned_reply_categories"
                " WHERE tenant_id = $1 AND category_id = $2",
                tenant,
                reply.category_id,
            )
            if owner is None or (
                owner["owner_agent_id"] is not None and owner["owner_agent_id"] != reply.owner
            ):
                problems["category"] = "no such category in the reply's scope"
        _refuse(problems)

    @staticmethod
    def _conflict(exc: asyncpg.exceptions.UniqueViolationError) -> Conflict:
        if exc.constraint_name == "canned_replies_shortcut":
            return Conflict("shortcut", "another reply of this scope and language has it")
        return Conflict("canned_reply_id", "a canned reply with this id exists")

    async def create(self, tenant: str, reply: Reply) -> Reply:
        """Store a new reply (``reply_id`` empty: one is assigned)."""
        if not reply.reply_id:
            reply = dataclasses.replace(reply, reply_id=uuid.uuid4().hex)
        with translated_errors():
            async with self._pool.acquire(timeout=self._timeout) as conn, conn.transaction():
                await self._checked(conn, tenant, reply)
                await self._check_quota(conn, tenant, "canned_replies", reply.owner)
                try:
                    row = await conn.fetchrow(
                        "INSERT INTO canned_replies (tenant_id, reply_id, owner_agent_id,"
                        " category_id, shortcut, shortcut_key, title, body, language,"
                        " attachments, search_text)"
                        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb, $11)"
                        f" RETURNING {_REPLY_COLUMNS}",
                        tenant,
                        reply.reply_id,
                        reply.owner,
                        reply.category_id,
                        reply.shortcut,
                        normalized(reply.shortcut),
                        reply.title,
                        reply.text,
                        reply.language,
                        _attachments_json(reply),
                        _search_text(reply),
                    )
                except asyncpg.exceptions.UniqueViolationError as exc:
                    raise self._conflict(exc) from exc
        return _reply(row)

    async def get(self, tenant: str, reply_id: str) -> Reply | None:
        with translated_errors():
            row = await self._pool.fetchrow(
                f"SELECT {_REPLY_COLUMNS} FROM canned_replies"
                " WHERE tenant_id = $1 AND reply_id = $2",
                tenant,
                reply_id,
                timeout=self._timeout,
            )
        return None if row is None else _reply(row)

    async def update(self, tenant: str, reply: Reply) -> Reply:
        """Replace a reply's content (scope, owner and usage stay); ``Missing`` when absent."""
        with translated_errors():
            async with self._pool.acquire(timeout=self._timeout) as conn, conn.transaction():
                await self._checked(conn, tenant, reply)
                try:
                    row = await conn.fetchrow(
                        "UPDATE canned_replies SET category_id = $3, shortcut = $4,"
                        " shortcut_key = $5, title = $6, body = $7, language = $8,"
                        " attachments = $9::jsonb, search_text = $10, updated_at = now()"
                        " WHERE tenant_id = $1 AND reply_id = $2"
                        " AND owner_agent_id IS NOT DISTINCT FROM $11"
                        f" RETURNING {_REPLY_COLUMNS}",
                        tenant,
                        reply.reply_id,
                        reply.category_id,
                        reply.shortcut,
                        normalized(reply.shortcut),
                        reply.title,
                        reply.text,
                        reply.language,
                        _attachments_json(reply),
                        _search_text(reply),
                        reply.owner,
                    )
                except asyncpg.exceptions.UniqueViolationError as exc:
                    raise self._conflict(exc) from exc
        if row is None:
            raise Missing("canned reply", f"cannedReplies/{reply.reply_id}")
        return _reply(row)

    async def delete(self, tenant: str, reply_id: str) -> None:
        """Delete a reply (its recorded uses stay); ``Missing`` when absent."""
        with translated_errors():
            deleted = await self._pool.fetchval(
                "DELETE FROM canned_replies WHERE tenant_id = $1 AND reply_id = $2 RETURNING 1",
                tenant,
                reply_id,
                timeout=self._timeout,
            )
        if deleted is None:
            raise Missing("canned reply", f"cannedReplies/{reply_id}")

    async def page(
        self, tenant: str, query: ReplyQuery, *, after: str = "", size: int = 100
    ) -> list[Reply]:
        """Replies matching ``query``, by id, after the id ``after``, at most ``size``."""
        args: list[Any] = [tenant, after]
        where = ["tenant_id = $1", "reply_id > $2", *self._filters(query, args)]
        args.append(size)
        with translated_errors():
            rows = await self._pool.fetch(
                f"SELECT {_REPLY_COLUMNS} FROM canned_replies WHERE {' AND '.join(where)}"
                f" ORDER BY reply_id LIMIT ${len(args)}",
                *args,
                timeout=self._timeout,
            )
        return [_reply(r) for r in rows]

    @staticmethod
    def _filters(query: ReplyQuery, args: list[Any]) -> list[str]:
        where = [_visible(query.viewer, args)]
        where += _scope(query.scope, query.owner or query.viewer.agent_id, args)
        if query.category_id is not None:
            args.append(query.category_id)
            where.append(f"category_id = ${len(args)}")
        if query.language:
            where.append(_language(query.language, args))
        return where

    async def search(
        self, tenant: str, query: ReplyQuery, text: str, *, offset: int = 0, size: int = 20
    ) -> list[Reply]:
        """Replies matching ``query`` whose shortcut, title or text contain every term of
        ``text`` (normalized; a term is a whitespace-separated run, so a Chinese or Thai phrase
        matches inside words), best first: the shortcut itself, then shortcuts that start with
        the query (with or without its ``/``), then matches in the title, then the rest; within
        each, the most used first. An empty ``text`` matches every reply."""
        q = normalized(text)
        bare = q.removeprefix("/")
        args: list[Any] = [tenant]
        where = ["tenant_id = $1", *self._filters(query, args)]
        title_terms = []
        for term in q.split():
            args.append(like_pattern(term))
            where.append(f"search_text LIKE ${len(args)} ESCAPE '\\'")
            title_terms.append(f"split_part(search_text, E'\\n', 2) LIKE ${len(args)} ESCAPE '\\'")
        args.append("/" + bare)
        exact = len(args)
        args.append(like_pattern("/" + bare)[1:])  # the shortcut starts with it
        prefix = len(args)
        in_title = " AND ".join(title_terms) or "TRUE"
        rank = (
            f"CASE WHEN shortcut_key = ${exact} THEN 0"
            f" WHEN ${exact} <> '/' AND shortcut_key LIKE ${prefix} ESCAPE '\\' THEN 1"
            f" WHEN {in_title} THEN 2 ELSE 3 END"
        )
        args += [offset, size]
        with translated_errors():
            rows = await self._pool.fetch(
                f"SELECT {_REPLY_COLUMNS} FROM canned_replies WHERE {' AND '.join(where)}"
                f" ORDER BY {rank}, use_count DESC, title, reply_id"
                f" OFFSET ${len(args) - 1} LIMIT ${len(args)}",
                *args,
                timeout=self._timeout,
            )
        return [_reply(r) for r in rows]

    # --- usage -----------------------------------------------------------------------------

    async def record_use(
        self,
        tenant: str,
        *,
        message_id: int,
        reply_id: str,
        agent_id: str,
        conversation_id: str,
        at: dt.datetime,
    ) -> bool:
        """Count a message sent from a reply; False (nothing changes) when that message was
        counted before. The reply's ``use_count`` and ``last_used_at`` move in the same
        statement (a deleted reply's use is still recorded)."""
        with translated_errors():
            counted = await self._pool.fetchval(
                """WITH used AS (
                       INSERT INTO canned_reply_uses
                           (tenant_id, message_id, reply_id, agent_id, conversation_id, used_at)
                       VALUES ($1, $2, $3, $4, $5, $6)
                       ON CONFLICT DO NOTHING RETURNING reply_id
                   ), counted AS (
                       UPDATE canned_replies r
                       SET use_count = use_count + 1,
                           last_used_at = greatest(last_used_at, $6)
                       FROM used WHERE r.tenant_id = $1 AND r.reply_id = used.reply_id
                   )
                   SELECT count(*) FROM used""",
                tenant,
                message_id,
                reply_id,
                agent_id,
                conversation_id,
                at,
                timeout=self._timeout,
            )
        return bool(counted)

    async def usage(
        self,
        tenant: str,
        since: dt.datetime,
        until: dt.datetime,
        *,
        time_zone: str = "UTC",
        reply_id: str | None = None,
        agent_id: str | None = None,
    ) -> list[UsageRow]:
        """Uses in [since, until) per reply, agent and day (in ``time_zone``), oldest day
        first."""
        args: list[Any] = [tenant, since, until, time_zone]
        where = ["tenant_id = $1", "used_at >= $2", "used_at < $3"]
        for column, value in (("reply_id", reply_id), ("agent_id", agent_id)):
            if value is not None:
                args.append(value)
                where.append(f"{column} = ${len(args)}")
        with translated_errors():
            rows = await self._pool.fetch(
                "SELECT reply_id, agent_id, (used_at AT TIME ZONE $4)::date AS day,"
                f" count(*) AS uses FROM canned_reply_uses WHERE {' AND '.join(where)}"
                " GROUP BY 1, 2, 3 ORDER BY 3, 1, 2",
                *args,
                timeout=self._timeout,
            )
        return [UsageRow(r["reply_id"], r["agent_id"], r["day"], r["uses"]) for r in rows]

    # --- rendering -------------------------------------------------------------------------

    async def values_for(
        self, tenant: str, conversation_id: str | None, agent_id: str | None
    ) -> RenderValues:
        """The variables' values for a message in ``conversation_id`` (None: no customer) by
        ``agent_id`` (None: no agent): the conversation's customer (following merges; none
        when deleted), their custom fields as text, and the agent's display name."""
        with translated_errors():
            row = await self._pool.fetchrow(
                """SELECT (SELECT profile ->> 'name' FROM agents
                           WHERE tenant_id = $1 AND agent_id = $3) AS agent_name,
                          (SELECT customer_id FROM conversations
                           WHERE tenant_id = $1 AND conversation_id = $2) AS customer_id""",
                tenant,
                conversation_id or "",
                agent_id or "",
                timeout=self._timeout,
            )
        values: dict[str, str] = {"agent.name": (row["agent_name"] or "") if row else ""}
        customer_id = row["customer_id"] if row else None
        if customer_id is None:
            return RenderValues(values)
        try:
            found = await CustomerStore(self._pool, timeout=self._timeout).get(tenant, customer_id)
        except Missing:
            return RenderValues(values)
        data = found.data
        values["customer.name"] = data.display_name
        values["customer.phone"] = data.phone or ""
        values["customer.email"] = data.email or ""
        for key, value in data.fields.items():
            values[f"{templates.FIELD_PREFIX}{key}"] = field_text(value)
        return RenderValues(values)


def field_text(value: FieldValue) -> str:
    """A custom field's value as a customer reads it in a reply."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, tuple):
        return ", ".join(value)
    return value


def _scope(scope: Scope, owner: str | None, args: list[Any]) -> list[str]:
    if scope == "shared":
        return ["owner_agent_id IS NULL"]
    if scope == "personal":
        args.append(owner)
        return [f"owner_agent_id = ${len(args)}"]
    return []
