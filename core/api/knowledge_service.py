"""KnowledgeService: the tenant's knowledge base (``core.store.knowledge``) and its search.

Plain data, not routing state: the servicer writes through the store, never through the shard,
and holds no SQL. Who may call what is ``core.api.policy`` (supervisors and admins edit; agents
read and search). Store refusals become statuses here (``_refused``): ``Invalid``
INVALID_ARGUMENT with a BadRequest violation per field (prefixed with the request's path, e.g.
``article.title``), ``Missing`` NOT_FOUND with ResourceInfo, ``Conflict`` ALREADY_EXISTS,
``InUse`` FAILED_PRECONDITION. Searches run in memory over the tenant's cached index.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, Final, NoReturn, TypeVar

from google.protobuf import field_mask_pb2
from usher.v1 import knowledge_service_pb2 as pb
from usher.v1 import knowledge_service_pb2_grpc as pb_grpc

from core.api import convert as cv
from core.api.admin import decode_token, encode_token, page_size
from core.api.auth import caller
from core.api.context import ApiContext
from core.api.errors import abort, shown
from core.knowledge.rank import Hit
from core.store.knowledge import (
    ArticleData,
    Category,
    Conflict,
    InUse,
    Invalid,
    KnowledgeBase,
    Missing,
    StoredArticle,
    valid_language,
)

Ctx = Any  # grpc.aio.ServicerContext
S = TypeVar("S")
Req = TypeVar("Req")
Resp = TypeVar("Resp")

CATEGORIES: Final = "knowledgeCategories"
ARTICLES: Final = "articles"
MAX_SEARCH_RESULTS: Final = 20
DEFAULT_SEARCH_RESULTS: Final = 5
CATEGORY_FIELDS: Final = ("display_name", "description")
ARTICLE_FIELDS: Final = ("category", "language", "title", "body", "keywords", "published")
_RESOURCES: Final = {
    "category": ("usher.v1.KnowledgeCategory", CATEGORIES),
    "article": ("usher.v1.Article", ARTICLES),
}


async def _refused(context: Ctx, exc: Exception, prefix: str) -> NoReturn:
    """End the call with the status a store refusal stands for."""
    if isinstance(exc, Invalid):
        await abort(
            context,
            "INVALID_ARGUMENT",
            str(exc),
            violations={f"{prefix}{k}": v for k, v in exc.violations.items()},
        )
    if isinstance(exc, Missing):
        resource_type, collection = _RESOURCES[exc.kind]
        await abort(
            context,
            "NOT_FOUND",
            f"{exc.kind} {shown(exc.name)} not found",
            details={
                "resource_type": resource_type,
                "resource_name": f"{collection}/{exc.name}",
            },
        )
    if isinstance(exc, Conflict):
        await abort(
            context,
            "ALREADY_EXISTS",
            f"{exc.kind} {shown(exc.name)} already exists",
            violations={f"{exc.kind}_id": "already taken"},
        )
    await abort(context, "FAILED_PRECONDITION", str(exc), reason="CATEGORY_NOT_EMPTY")


def answering(
    prefix: str = "",
) -> Callable[[Callable[[S, Req, Ctx], Awaitable[Resp]]], Callable[[S, Req, Ctx], Awaitable[Resp]]]:
    """A unary method whose store refusals end the call as ``_refused`` says (violation fields
    prefixed with ``prefix``); everything else as ``guarded`` does."""

    def wrap(
        method: Callable[[S, Req, Ctx], Awaitable[Resp]],
    ) -> Callable[[S, Req, Ctx], Awaitable[Resp]]:
        @functools.wraps(method)
        async def inner(self: S, request: Req, context: Ctx) -> Resp:
            try:
                return await method(self, request, context)
            except (Invalid, Missing, Conflict, InUse) as exc:
                await _refused(context, exc, prefix)

        return cv.guarded(inner)

    return wrap


def category_to_proto(category: Category) -> pb.KnowledgeCategory:
    return pb.KnowledgeCategory(
        name=f"{CATEGORIES}/{category.category_id}",
        display_name=category.display_name,
        description=category.description,
        create_time=cv.timestamp(category.create_time),
        update_time=cv.timestamp(category.update_time),
    )


def article_to_proto(article: StoredArticle) -> pb.Article:
    d = article.data
    return pb.Article(
        name=f"{ARTICLES}/{article.article_id}",
        category=f"{CATEGORIES}/{d.category}" if d.category else "",
        language=d.language,
        title=d.title,
        body=d.body,
        keywords=list(d.keywords),
        published=d.published,
        create_time=cv.timestamp(article.create_time),
        update_time=cv.timestamp(article.update_time),
    )


def _category_id(name: str, field: str) -> str:
    """The category id of ``knowledgeCategories/{id}``; empty for an empty name."""
    return cv.parse_name(CATEGORIES, name, field=field) if name else ""


def _data(article: pb.Article, prefix: str) -> ArticleData:
    return ArticleData(
        title=article.title.strip(),
        body=article.body,
        keywords=tuple(k.strip() for k in article.keywords),
        language=article.language,
        category=_category_id(article.category, f"{prefix}category"),
        published=article.published,
    )


async def _paths(
    context: Ctx, mask: field_mask_pb2.FieldMask, writable: tuple[str, ...]
) -> frozenset[str]:
    """The mask's paths (none or ``*``: ``writable``); INVALID_ARGUMENT naming one that is not."""
    paths = list(mask.paths)
    if not paths or paths == ["*"]:
        return frozenset(writable)
    for path in paths:
        if path not in writable:
            await abort(
                context,
                "INVALID_ARGUMENT",
                f"update_mask names {shown(path)}, which cannot be written",
                violations={"update_mask": f"{shown(path)} is not writable"},
            )
    return frozenset(paths)


class KnowledgeServicer(pb_grpc.KnowledgeServiceServicer):
    """See the module docstring."""

    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx
        self.kb = KnowledgeBase(ctx.pool)

    # --- categories --------------------------------------------------------------------------

    @answering("category.")
    async def CreateKnowledgeCategory(
        self, request: pb.CreateKnowledgeCategoryRequest, context: Ctx
    ) -> pb.CreateKnowledgeCategoryResponse:
        if not request.category_id:
            await abort(
                context,
                "INVALID_ARGUMENT",
                "category_id is required",
                violations={"category_id": "required"},
            )
        try:
            created = await self.kb.create_category(
                caller(context).tenant,
                request.category_id,
                request.category.display_name,
                request.category.description,
            )
        except Invalid as exc:
            if "category_id" in exc.violations:
                await abort(
                    context,
                    "INVALID_ARGUMENT",
                    str(exc),
                    violations={"category_id": exc.violations["category_id"]},
                )
            raise
        return pb.CreateKnowledgeCategoryResponse(category=category_to_proto(created))

    @answering()
    async def GetKnowledgeCategory(
        self, request: pb.GetKnowledgeCategoryRequest, context: Ctx
    ) -> pb.GetKnowledgeCategoryResponse:
        category_id = cv.parse_name(CATEGORIES, request.name, field="name")
        found = await self.kb.get_category(caller(context).tenant, category_id)
        return pb.GetKnowledgeCategoryResponse(category=category_to_proto(found))

    @answering()
    async def ListKnowledgeCategories(
        self, request: pb.ListKnowledgeCategoriesRequest, context: Ctx
    ) -> pb.ListKnowledgeCategoriesResponse:
        size = await page_size(context, request.page_size)
        after = await decode_token(context, request.page_token)
        found = await self.kb.list_categories(caller(context).tenant, after=after, size=size + 1)
        page = found[:size]
        more = len(found) > size
        return pb.ListKnowledgeCategoriesResponse(
            categories=[category_to_proto(c) for c in page],
            next_page_token=encode_token(page[-1].category_id) if more else "",
        )

    @answering("category.")
    async def UpdateKnowledgeCategory(
        self, request: pb.UpdateKnowledgeCategoryRequest, context: Ctx
    ) -> pb.UpdateKnowledgeCategoryResponse:
        tenant = caller(context).tenant
        category_id = cv.parse_name(CATEGORIES, request.category.name, field="category.name")
        paths = await _paths(context, request.update_mask, CATEGORY_FIELDS)
        old = await self.kb.get_category(tenant, category_id)
        new = request.category
        updated = await self.kb.update_category(
            tenant,
            category_id,
            new.display_name if "display_name" in paths else old.display_name,
            new.description if "description" in paths else old.description,
        )
        return pb.UpdateKnowledgeCategoryResponse(category=category_to_proto(updated))

    @answering()
    async def DeleteKnowledgeCategory(
        self, request: pb.DeleteKnowledgeCategoryRequest, context: Ctx
    ) -> pb.DeleteKnowledgeCategoryResponse:
        category_id = cv.parse_name(CATEGORIES, request.name, field="name")
        deleted = await self.kb.delete_category(caller(context).tenant, category_id)
        return pb.DeleteKnowledgeCategoryResponse(category=category_to_proto(deleted))

    # --- articles ----------------------------------------------------------------------------

    @answering("article.")
    async def CreateArticle(
        self, request: pb.CreateArticleRequest, context: Ctx
    ) -> pb.CreateArticleResponse:
        data = _data(request.article, "article.")
        try:
            created = await self.kb.create_article(
                caller(context).tenant, request.article_id or None, data
            )
        except Invalid as exc:
            if "article_id" in exc.violations:
                await abort(
                    context,
                    "INVALID_ARGUMENT",
                    str(exc),
                    violations={"article_id": exc.violations["article_id"]},
                )
            raise
        return pb.CreateArticleResponse(article=article_to_proto(created))

    @answering()
    async def GetArticle(
        self, request: pb.GetArticleRequest, context: Ctx
    ) -> pb.GetArticleResponse:
        article_id = cv.parse_name(ARTICLES, request.name, field="name")
        found = await self.kb.get_article(caller(context).tenant, article_id)
        return pb.GetArticleResponse(article=article_to_proto(found))

    @answering()
    async def ListArticles(
        self, request: pb.ListArticlesRequest, context: Ctx
    ) -> pb.ListArticlesResponse:
        size = await page_size(context, request.page_size)
        after = await decode_token(context, request.page_token)
        category = _category_id(request.category, "category")
        if request.language and not valid_language(request.language):
            await abort(
                context,
                "INVALID_ARGUMENT",
                "language must be a BCP 47 tag",
                violations={"language": "not a BCP 47 language tag"},
            )
        found = await self.kb.list_articles(
            caller(context).tenant,
            after=after,
            size=size + 1,
            category=category,
            language=request.language,
            published_only=request.published_only,
        )
        page = found[:size]
        more = len(found) > size
        return pb.ListArticlesResponse(
            articles=[article_to_proto(a) for a in page],
            next_page_token=encode_token(page[-1].article_id) if more else "",
        )

    @answering("article.")
    async def UpdateArticle(
        self, request: pb.UpdateArticleRequest, context: Ctx
    ) -> pb.UpdateArticleResponse:
        tenant = caller(context).tenant
        article_id = cv.parse_name(ARTICLES, request.article.name, field="article.name")
        paths = await _paths(context, request.update_mask, ARTICLE_FIELDS)
        old = (await self.kb.get_article(tenant, article_id)).data
        new = _data(request.article, "article.")
        merged = ArticleData(
            title=new.title if "title" in paths else old.title,
            body=new.body if "body" in paths else old.body,
            keywords=new.keywords if "keywords" in paths else old.keywords,
            language=new.language if "language" in paths else old.language,
            category=new.category if "category" in paths else old.category,
            published=new.published if "published" in paths else old.published,
        )
        updated = await self.kb.update_article(tenant, article_id, merged)
        return pb.UpdateArticleResponse(article=article_to_proto(updated))

    @answering()
    async def DeleteArticle(
        self, request: pb.DeleteArticleRequest, context: Ctx
    ) -> pb.DeleteArticleResponse:
        article_id = cv.parse_name(ARTICLES, request.name, field="name")
        deleted = await self.kb.delete_article(caller(context).tenant, article_id)
        return pb.DeleteArticleResponse(article=article_to_proto(deleted))

    # --- search ------------------------------------------------------------------------------

    @answering()
    async def SearchArticles(
        self, request: pb.SearchArticlesRequest, context: Ctx
    ) -> pb.SearchArticlesResponse:
        violations = {}
        if not request.query.strip():
            violations["query"] = "required"
        if request.language and not valid_language(request.language):
            violations["language"] = "not a BCP 47 language tag"
        if not 0 <= request.page_size <= MAX_SEARCH_RESULTS:
            violations["page_size"] = f"must be 0 to {MAX_SEARCH_RESULTS}"
        if violations:
            await abort(context, "INVALID_ARGUMENT", "; ".join(violations), violations=violations)
        hits = await self.kb.search(
            caller(context).tenant,
            request.query,
            request.language or None,
            request.page_size or DEFAULT_SEARCH_RESULTS,
        )
        articles = await self._stored(caller(context).tenant, hits)
        return pb.SearchArticlesResponse(
            results=[
                pb.ArticleMatch(
                    article=article_to_proto(articles[h.article_id]),
                    score=h.score,
                    confident=h.confident,
                )
                for h in hits
                if h.article_id in articles
            ]
        )

    async def _stored(self, tenant: str, hits: list[Hit]) -> dict[str, StoredArticle]:
        """The stored rows of the hits (their times), in one read; one deleted since the index
        was built is left out."""
        return await self.kb.articles_by_id(tenant, [h.article_id for h in hits])
