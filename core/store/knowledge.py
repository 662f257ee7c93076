"""The knowledge base in PostgreSQL (migration 0015): categories and articles per tenant, and
each tenant's search index, built from its published articles and cached in this process.

``KnowledgeBase(pool)`` writes and reads categories and articles (checked here: ``Invalid``
with a violation per field; ``Missing``, ``Conflict``, ``InUse``), imports a batch of articles
in one transaction (``import_articles``: all or nothing; an article's id is its key, so a
re-import updates), and answers searches from memory: ``index(tenant)`` is the tenant's
``core.knowledge.Index``, rebuilt (off the event loop) when the tenant's version has moved.
Every change of articles moves the version in its own transaction; a change made through this
object drops its cached index at once, one made elsewhere is seen within ``max_age`` seconds
(the version is read at most that often per tenant, so a search is in memory).
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import re
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import asyncpg
import langcodes

from core.knowledge import Article, Hit, Index, build_index, search
from core.knowledge.index_files import IndexFiles
from core.store.errors import InvalidInput, StoreError, translated_errors

ID_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
MAX_TITLE: Final = 500
MAX_BODY: Final = 65_536
MAX_KEYWORDS: Final = 50
MAX_KEYWORD: Final = 100
MAX_DISPLAY_NAME: Final = 200
MAX_DESCRIPTION: Final = 1_000
MAX_IMPORT_ARTICLES: Final = 10_000
MAX_CACHED_TENANTS: Final = 256


class Invalid(InvalidInput):
    """Values break the rules; ``violations`` maps each field to what is wrong."""

    def __init__(self, violations: Mapping[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in violations.items()))
        self.violations = dict(violations)


class Missing(StoreError):
    """The named category or article is not in the tenant."""

    code = "NOT_FOUND"

    def __init__(self, kind: str, name: str) -> None:
        super().__init__(f"{kind} {name!r} not found")
        self.kind = kind
        self.name = name


class Conflict(StoreError):
    """The id is taken."""

    code = "ALREADY_EXISTS"

    def __init__(self, kind: str, name: str) -> None:
        super().__init__(f"{kind} {name!r} already exists")
        self.kind = kind
        self.name = name


class InUse(StoreError):
    """A category that still has articles cannot be deleted."""

    code = "FAILED_PRECONDITION"


@dataclass(frozen=True, slots=True)
class Category:
    category_id: str
    display_name: str
    description: str
    create_time: dt.datetime
    update_time: dt.datetime


@dataclass(frozen=True, slots=True)
class ArticleData:
    """What a writer sets of an article. ``category`` is a category id or empty."""

    title: str
    body: str = ""
    keywords: tuple[str, ...] = ()
    language: str = "en"
    category: str = ""
    published: bool = True


@dataclass(frozen=True, slots=True)
class StoredArticle:
    article_id: str
    data: ArticleData
    create_time: dt.datetime
    update_time: dt.datetime

    def for_search(self) -> Article:
        d = self.data
        return Article(self.article_id, d.title, d.body, d.keywords, d.language, d.category)


@dataclass(frozen=True, slots=True)
class ImportResult:
    created: int
    updated: int
    categories_created: tuple[str, ...]


def valid_language(tag: str) -> bool:
    """A well-formed BCP 47 tag (``en``, ``zh-Hant``, ``zh-Hant-HK``, ``th``)."""
    return (
        0 < len(tag) <= 35
        and re.fullmatch(r"[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*", tag) is not None
        and bool(langcodes.tag_is_valid(tag))
    )


def check_id(value: str) -> str | None:
    """What is wrong with an id, or None."""
    if ID_RE.fullmatch(value) is None:
        return "must be 1 to 64 of A-Za-z0-9_.- (starting with a letter or digit)"
    return None


def check_article(data: ArticleData) -> dict[str, str]:
    """Violations of ``data`` by field (empty: fine)."""
    found: dict[str, str] = {}
    if not data.title.strip():
        found["title"] = "required"
    elif len(data.title) > MAX_TITLE:
        found["title"] = f"at most {MAX_TITLE} characters"
    if len(data.body) > MAX_BODY:
        found["body"] = f"at most {MAX_BODY} characters"
    if len(data.keywords) > MAX_KEYWORDS:
        found["keywords"] = f"at most {MAX_KEYWORDS} keywords"
    for i, keyword in enumerate(data.keywords[:MAX_KEYWORDS]):
        if not keyword.strip() or len(keyword) > MAX_KEYWORD:
            found[f"keywords[{i}]"] = f"1 to {MAX_KEYWORD} characters"
            break
    if not valid_language(data.language):
        found["language"] = "must be a BCP 47 language tag (like en, zh-Hant, th)"
    if data.category and (problem := check_id(data.category)):
        found["category"] = problem
    for name, text in (("title", data.title), ("body", data.body)):
        if "\x00" in text and name not in found:
            found[name] = "must not contain a NUL character"
    return found


def _category(row: Mapping[str, Any]) -> Category:
    return Category(
        row["category_id"],
        row["display_name"],
        row["description"],
        row["create_time"],
        row["update_time"],
    )


def _article(row: Mapping[str, Any]) -> StoredArticle:
    data = ArticleData(
        title=row["title"],
        body=row["body"],
        keywords=tuple(row["keywords"]),
        language=row["language"],
        category=row["category_id"] or "",
        published=row["published"],
    )
    return StoredArticle(row["article_id"], data, row["create_time"], row["update_time"])


_BUMP: Final = """
INSERT INTO kb_versions (tenant_id, version) VALUES ($1, 1)
ON CONFLICT (tenant_id) DO UPDATE SET version = kb_versions.version + 1"""

_UPSERT: Final = """
INSERT INTO kb_articles AS a (tenant_id, article_id, category_id, language, title, body,
                              keywords, published)
VALUES ($1, $2, NULLIF($3, ''), $4, $5, $6, $7, $8)
ON CONFLICT (tenant_id, article_id) DO UPDATE
SET category_id = EXCLUDED.category_id, language = EXCLUDED.language, title = EXCLUDED.title,
    body = EXCLUDED.body, keywords = EXCLUDED.keywords, published = EXCLUDED.published,
    update_time = now()
RETURNING (xmax = 0) AS inserted"""


@dataclass(slots=True)
class _Cached:
    version: int
    index: Index
    checked_at: float


@dataclass(slots=True)
class _Cache:
    entries: collections.OrderedDict[str, _Cached] = field(default_factory=collections.OrderedDict)
    locks: dict[str, asyncio.Lock] = field(default_factory=dict)


class KnowledgeBase:
    """Categories, articles and cached search indexes over a pool (see the module docstring)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        max_age: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        timeout: float = 10.0,
        index_files: IndexFiles | None = None,
    ) -> None:
        self._pool = pool
        self._files = index_files
        self._max_age = max_age
        self._clock = clock
        self._timeout = timeout
        self._cache = _Cache()

    # --- categories --------------------------------------------------------------------------

    async def create_category(
        self, tenant: str, category_id: str, display_name: str, description: str
    ) -> Category:
        problems = self._check_category(display_name, description)
        if problem := check_id(category_id):
            problems["category_id"] = problem
        if problems:
            raise Invalid(problems)
        with translated_errors():
            try:
                row = await self._pool.fetchrow(
                    "INSERT INTO kb_categories (tenant_id, category_id, display_name, description)"
                    " VALUES ($1, $2, $3, $4) RETURNING *",
                    tenant,
                    category_id,
                    display_name,
                    description,
                    timeout=self._timeout,
                )
            except asyncpg.UniqueViolationError:
                raise Conflict("category", category_id) from None
        return _category(row)

    @staticmethod
    def _check_category(display_name: str, description: str) -> dict[str, str]:
        found = {}
        if len(display_name) > MAX_DISPLAY_NAME or re.search(r"[\x00-\x1f\x7f]", display_name):
            found["display_name"] = f"one line of at most {MAX_DISPLAY_NAME} characters"
        if len(description) > MAX_DESCRIPTION or "\x00" in description:
            found["description"] = f"at most {MAX_DESCRIPTION} characters"
        return found

    async def get_category(self, tenant: str, category_id: str) -> Category:
        with translated_errors():
            row = await self._pool.fetchrow(
                "SELECT * FROM kb_categories WHERE tenant_id = $1 AND category_id = $2",
                tenant,
                category_id,
                timeout=self._timeout,
            )
        if row is None:
            raise Missing("category", category_id)
        return _category(row)

    async def list_categories(self, tenant: str, *, after: str, size: int) -> list[Category]:
        """Categories by id after ``after``, at most ``size``."""
        with translated_errors():
            rows = await self._pool.fetch(
                "SELECT * FROM kb_categories WHERE tenant_id = $1 AND category_id > $2"
                " ORDER BY category_id LIMIT $3",
                tenant,
                after,
                size,
                timeout=self._timeout,
            )
        return [_category(r) for r in rows]

    async def update_category(
        self, tenant: str, category_id: str, display_name: str, description: str
    ) -> Category:
        problems = self._check_category(display_name, description)
        if problems:
            raise Invalid(problems)
        with translated_errors():
            row = await self._pool.fetchrow(
                "UPDATE kb_categories SET display_name = $3, description = $4,"
                " update_time = now() WHERE tenant_id = $1 AND category_id = $2 RETURNING *",
                tenant,
                category_id,
                display_name,
                description,
                timeout=self._timeout,
            )
        if row is None:
            raise Missing("category", category_id)
        return _category(row)

    async def delete_category(self, tenant: str, category_id: str) -> Category:
        """Delete an empty category; ``InUse`` while articles name it."""
        with translated_errors():
            try:
                row = await self._pool.fetchrow(
                    "DELETE FROM kb_categories WHERE tenant_id = $1 AND category_id = $2"
                    " RETURNING *",
                    tenant,
                    category_id,
                    timeout=self._timeout,
                )
            except asyncpg.ForeignKeyViolationError:
                raise InUse(f"category {category_id!r} still has articles") from None
        if row is None:
            raise Missing("category", category_id)
        return _category(row)

    # --- articles ----------------------------------------------------------------------------

    async def _category_exists(self, conn: asyncpg.Connection, tenant: str, category: str) -> None:
        if not category:
            return
        found = await conn.fetchval(
            "SELECT 1 FROM kb_categories WHERE tenant_id = $1 AND category_id = $2",
            tenant,
            category,
        )
        if found is None:
            raise Missing("category", category)

    async def create_article(
        self, tenant: str, article_id: str | None, data: ArticleData
    ) -> StoredArticle:
        """A new article; ``article_id`` None: one is assigned."""
        article_id = article_id or uuid.uuid4().hex[:16]
        problems = check_article(data)
        if problem := check_id(article_id):
            problems["article_id"] = problem
        if problems:
            raise Invalid(problems)
        with translated_errors():
            async with self._pool.acquire(timeout=self._timeout) as conn, conn.transaction():
                await self._category_exists(conn, tenant, data.category)
                try:
                    row = await conn.fetchrow(
                        "INSERT INTO kb_articles (tenant_id, article_id, category_id, language,"
                        " title, body, keywords, published)"
                        " VALUES ($1, $2, NULLIF($3, ''), $4, $5, $6, $7, $8) RETURNING *",
                        tenant,
                        article_id,
                        data.category,
                        data.language,
                        data.title,
                        data.body,
                        list(data.keywords),
                        data.published,
                    )
                except asyncpg.UniqueViolationError:
                    raise Conflict("article", article_id) from None
                await conn.execute(_BUMP, tenant)
        self._forget(tenant)
        return _article(row)

    async def get_article(self, tenant: str, article_id: str) -> StoredArticle:
        with translated_errors():
            row = await self._pool.fetchrow(
                "SELECT * FROM kb_articles WHERE tenant_id = $1 AND article_id = $2",
                tenant,
                article_id,
                timeout=self._timeout,
            )
        if row is None:
            raise Missing("article", article_id)
        return _article(row)

    async def articles_by_id(
        self, tenant: str, article_ids: Sequence[str]
    ) -> dict[str, StoredArticle]:
        """The named articles that exist, by id."""
        with translated_errors():
            rows = await self._pool.fetch(
                "SELECT * FROM kb_articles WHERE tenant_id = $1 AND article_id = ANY($2::text[])",
                tenant,
                list(article_ids),
                timeout=self._timeout,
            )
        return {row["article_id"]: _article(row) for row in rows}

    async def list_articles(
        self,
        tenant: str,
        *,
        after: str,
        size: int,
        category: str = "",
        language: str = "",
        published_only: bool = False,
    ) -> list[StoredArticle]:
        """Articles by id after ``after``, at most ``size``; optionally of one category, of
        one language (its primary subtag matches: ``zh`` finds ``zh-Hant``), published only."""
        with translated_errors():
            rows = await self._pool.fetch(
                "SELECT * FROM kb_articles WHERE tenant_id = $1 AND article_id > $2"
                " AND ($3 = '' OR category_id = $3)"
                " AND ($4 = '' OR lower(language) = lower($4)"
                "      OR lower(language) LIKE lower($4) || '-%')"
                " AND (NOT $5 OR published) ORDER BY article_id LIMIT $6",
                tenant,
                after,
                category,
                language,
                published_only,
                size,
                timeout=self._timeout,
            )
        return [_article(r) for r in rows]

    async def update_article(
        self, tenant: str, article_id: str, data: ArticleData
    ) -> StoredArticle:
        problems = check_article(data)
        if problems:
            raise Invalid(problems)
        with translated_errors():
            async with self._pool.acquire(timeout=self._timeout) as conn, conn.transaction():
                await self._category_exists(conn, tenant, data.category)
                row = await conn.fetchrow(
                    "UPDATE kb_articles SET category_id = NULLIF($3, ''), language = $4,"
                    " title = $5, body = $6, keywords = $7, published = $8, update_time = now()"
                    " WHERE tenant_id = $1 AND article_id = $2 RETURNING *",
                    tenant,
                    article_id,
                    data.category,
                    data.language,
                    data.title,
                    data.body,
                    list(data.keywords),
                    data.published,
                )
                if row is None:
                    raise Missing("article", article_id)
                await conn.execute(_BUMP, tenant)
        self._forget(tenant)
        return _article(row)

    async def delete_article(self, tenant: str, article_id: str) -> StoredArticle:
        with translated_errors():
            async with self._pool.acquire(timeout=self._timeout) as conn, conn.transaction():
                row = await conn.fetchrow(
                    "DELETE FROM kb_articles WHERE tenant_id = $1 AND article_id = $2 RETURNING *",
                    tenant,
                    article_id,
                )
                if row is None:
                    raise Missing("article", article_id)
                await conn.execute(_BUMP, tenant)
        self._forget(tenant)
        return _article(row)

    async def import_articles(
        self, tenant: str, articles: Sequence[tuple[str, ArticleData]]
    ) -> ImportResult:
        """Create or update ``(id, data)`` articles in one transaction (all or nothing);
        categories they name that do not exist are created (named by their id)."""
        problems: dict[str, str] = {}
        for i, (article_id, data) in enumerate(articles):
            for key, text in check_article(data).items():
                problems[f"articles[{i}].{key}"] = text
            if bad_id := check_id(article_id):
                problems[f"articles[{i}].id"] = bad_id
        if len(articles) > MAX_IMPORT_ARTICLES:
            problems["articles"] = f"at most {MAX_IMPORT_ARTICLES} articles at once"
        if problems:
            raise Invalid(problems)
        categories = sorted({d.category for _, d in articles if d.category})
        created = updated = 0
        with translated_errors():
            async with self._pool.acquire(timeout=self._timeout) as conn, conn.transaction():
                new_categories = await conn.fetch(
                    "INSERT INTO kb_categories (tenant_id, category_id, display_name)"
                    " SELECT $1, c, c FROM unnest($2::text[]) AS c"
                    " ON CONFLICT DO NOTHING RETURNING category_id",
                    tenant,
                    categories,
                )
                for article_id, data in articles:
                    inserted = await conn.fetchval(
                        _UPSERT,
                        tenant,
                        article_id,
                        data.category,
                        data.language,
                        data.title,
                        data.body,
                        list(data.keywords),
                        data.published,
                    )
                    if inserted:
                        created += 1
                    else:
                        updated += 1
                await conn.execute(_BUMP, tenant)
        self._forget(tenant)
        return ImportResult(created, updated, tuple(r["category_id"] for r in new_categories))

    # --- search ------------------------------------------------------------------------------

    async def tenant_exists(self, tenant: str) -> bool:
        with translated_errors():
            found = await self._pool.fetchval(
                "SELECT 1 FROM tenants WHERE tenant_id = $1", tenant, timeout=self._timeout
            )
        return found is not None

    async def version(self, tenant: str) -> int:
        """The tenant's articles' version (0 before any change)."""
        with translated_errors():
            found = await self._pool.fetchval(
                "SELECT version FROM kb_versions WHERE tenant_id = $1",
                tenant,
                timeout=self._timeout,
            )
        return int(found or 0)

    def _forget(self, tenant: str) -> None:
        self._cache.entries.pop(tenant, None)

    async def index(self, tenant: str) -> Index:
        """The tenant's search index over its published articles (cached; see the module
        docstring)."""
        cache = self._cache
        cached = cache.entries.get(tenant)
        if cached is not None and self._clock() - cached.checked_at < self._max_age:
            cache.entries.move_to_end(tenant)
            return cached.index
        lock = cache.locks.setdefault(tenant, asyncio.Lock())
        async with lock:
            cached = cache.entries.get(tenant)
            now = self._clock()
            if cached is not None and now - cached.checked_at < self._max_age:
                return cached.index
            version = await self.version(tenant)
            if cached is None or cached.version != version:
                cached = _Cached(version, await self._build(tenant, version), now)
            else:
                cached.checked_at = now
            cache.entries[tenant] = cached
            cache.entries.move_to_end(tenant)
            while len(cache.entries) > MAX_CACHED_TENANTS:
                evicted, _ = cache.entries.popitem(last=False)
                cache.locks.pop(evicted, None)
            return cached.index

    async def _build(self, tenant: str, version: int) -> Index:
        if self._files is None:
            return await asyncio.to_thread(build_index, await self._published(tenant))
        content = f"{version}:{await self._published_identity(tenant)}"
        index = self._files.load(tenant, content)
        if index is None:
            index = await asyncio.to_thread(build_index, await self._published(tenant))
            self._files.save(tenant, content, index)
        return index

    async def _published_identity(self, tenant: str) -> str:
        """What names the published articles' current text: their ids and update times."""
        with translated_errors():
            found = await self._pool.fetchval(
                "SELECT count(*) || ':' || coalesce(md5(string_agg(article_id || '@'"
                " || update_time::text, ',' ORDER BY article_id)), '')"
                " FROM kb_articles WHERE tenant_id = $1 AND published",
                tenant,
                timeout=self._timeout,
            )
        return str(found)

    async def _published(self, tenant: str) -> list[Article]:
        with translated_errors():
            rows = await self._pool.fetch(
                "SELECT * FROM kb_articles WHERE tenant_id = $1 AND published ORDER BY article_id",
                tenant,
                timeout=self._timeout,
            )
        return [_article(r).for_search() for r in rows]

    async def search(
        self, tenant: str, query: str, language: str | None = None, limit: int = 10
    ) -> list[Hit]:
        """``core.knowledge.search`` over the tenant's index."""
        return search(await self.index(tenant), query, language, limit)
