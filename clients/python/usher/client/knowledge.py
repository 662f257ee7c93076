"""``KnowledgeClient``: KnowledgeService, the knowledge base's categories and articles (edited by
supervisors and admins) and its search (agents too, and bots)."""

from __future__ import annotations

from functools import cached_property

from usher.client._base import BaseClient
from usher.v1 import knowledge_service_pb2 as pb
from usher.v1 import knowledge_service_pb2_grpc as pb_grpc


class KnowledgeClient(BaseClient):
    """Categories and articles (create, get, list, update, delete) and ``search_articles``.
    Methods take the generated request message and return the generated response. Retried on
    transient errors: reads, searches, updates and deletes (repeating them changes nothing
    more); creates are not (a retry after a lost answer would see ALREADY_EXISTS)."""

    @cached_property
    def _stub(self) -> pb_grpc.KnowledgeServiceAsyncStub:
        return pb_grpc.KnowledgeServiceStub(self.channel)

    async def create_knowledge_category(
        self, request: pb.CreateKnowledgeCategoryRequest, *, timeout: float | None = None
    ) -> pb.CreateKnowledgeCategoryResponse:
        return await self._call(
            self._stub.CreateKnowledgeCategory, request, idempotent=False, timeout=timeout
        )

    async def get_knowledge_category(
        self, request: pb.GetKnowledgeCategoryRequest, *, timeout: float | None = None
    ) -> pb.GetKnowledgeCategoryResponse:
        return await self._call(
            self._stub.GetKnowledgeCategory, request, idempotent=True, timeout=timeout
        )

    async def list_knowledge_categories(
        self, request: pb.ListKnowledgeCategoriesRequest, *, timeout: float | None = None
    ) -> pb.ListKnowledgeCategoriesResponse:
        return await self._call(
            self._stub.ListKnowledgeCategories, request, idempotent=True, timeout=timeout
        )

    async def update_knowledge_category(
        self, request: pb.UpdateKnowledgeCategoryRequest, *, timeout: float | None = None
    ) -> pb.UpdateKnowledgeCategoryResponse:
        return await self._call(
            self._stub.UpdateKnowledgeCategory, request, idempotent=True, timeout=timeout
        )

    async def delete_knowledge_category(
        self, request: pb.DeleteKnowledgeCategoryRequest, *, timeout: float | None = None
    ) -> pb.DeleteKnowledgeCategoryResponse:
        return await self._call(
            self._stub.DeleteKnowledgeCategory, request, idempotent=True, timeout=timeout
        )

    async def create_article(
        self, request: pb.CreateArticleRequest, *, timeout: float | None = None
    ) -> pb.CreateArticleResponse:
        return await self._call(
            self._stub.CreateArticle, request, idempotent=False, timeout=timeout
        )

    async def get_article(
        self, request: pb.GetArticleRequest, *, timeout: float | None = None
    ) -> pb.GetArticleResponse:
        return await self._call(self._stub.GetArticle, request, idempotent=True, timeout=timeout)

    async def list_articles(
        self, request: pb.ListArticlesRequest, *, timeout: float | None = None
    ) -> pb.ListArticlesResponse:
        return await self._call(self._stub.ListArticles, request, idempotent=True, timeout=timeout)

    async def update_article(
        self, request: pb.UpdateArticleRequest, *, timeout: float | None = None
    ) -> pb.UpdateArticleResponse:
        return await self._call(self._stub.UpdateArticle, request, idempotent=True, timeout=timeout)

    async def delete_article(
        self, request: pb.DeleteArticleRequest, *, timeout: float | None = None
    ) -> pb.DeleteArticleResponse:
        return await self._call(self._stub.DeleteArticle, request, idempotent=True, timeout=timeout)

    async def search_articles(
        self, request: pb.SearchArticlesRequest, *, timeout: float | None = None
    ) -> pb.SearchArticlesResponse:
        return await self._call(
            self._stub.SearchArticles, request, idempotent=True, timeout=timeout
        )
