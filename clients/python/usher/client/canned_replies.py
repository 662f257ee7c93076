"""``CannedReplyClient``: CannedReplyService, for consoles' quick replies: personal and shared
canned replies in categories, their search and their preview for a conversation (an AGENT,
SUPERVISOR or ADMIN credential). To send one, use ``AgentClient.send_message`` with
``canned_reply_id``: the server renders it for the conversation."""

from __future__ import annotations

from functools import cached_property

from usher.client._base import BaseClient
from usher.v1 import canned_reply_service_pb2 as pb
from usher.v1 import canned_reply_service_pb2_grpc as pb_grpc


class CannedReplyClient(BaseClient):
    """Methods take the generated request message and return the generated response. Retried
    on transient errors: reads, search, render, updates (they set values) and deletes; creates
    only when they name the id to give (a repeat is then ALREADY_EXISTS, not a second one)."""

    @cached_property
    def _stub(self) -> pb_grpc.CannedReplyServiceAsyncStub:
        return pb_grpc.CannedReplyServiceStub(self.channel)

    async def create_canned_reply_category(
        self, request: pb.CreateCannedReplyCategoryRequest, *, timeout: float | None = None
    ) -> pb.CreateCannedReplyCategoryResponse:
        return await self._call(
            self._stub.CreateCannedReplyCategory,
            request,
            idempotent=bool(request.canned_reply_category_id),
            timeout=timeout,
        )

    async def get_canned_reply_category(
        self, request: pb.GetCannedReplyCategoryRequest, *, timeout: float | None = None
    ) -> pb.GetCannedReplyCategoryResponse:
        return await self._call(
            self._stub.GetCannedReplyCategory, request, idempotent=True, timeout=timeout
        )

    async def list_canned_reply_categories(
        self, request: pb.ListCannedReplyCategoriesRequest, *, timeout: float | None = None
    ) -> pb.ListCannedReplyCategoriesResponse:
        return await self._call(
            self._stub.ListCannedReplyCategories, request, idempotent=True, timeout=timeout
        )

    async def update_canned_reply_category(
        self, request: pb.UpdateCannedReplyCategoryRequest, *, timeout: float | None = None
    ) -> pb.UpdateCannedReplyCategoryResponse:
        return await self._call(
            self._stub.UpdateCannedReplyCategory, request, idempotent=True, timeout=timeout
        )

    async def delete_canned_reply_category(
        self, request: pb.DeleteCannedReplyCategoryRequest, *, timeout: float | None = None
    ) -> pb.DeleteCannedReplyCategoryResponse:
        return await self._call(
            self._stub.DeleteCannedReplyCategory, request, idempotent=True, timeout=timeout
        )

    async def create_canned_reply(
        self, request: pb.CreateCannedReplyRequest, *, timeout: float | None = None
    ) -> pb.CreateCannedReplyResponse:
        return await self._call(
            self._stub.CreateCannedReply,
            request,
            idempotent=bool(request.canned_reply_id),
            timeout=timeout,
        )

    async def get_canned_reply(
        self, request: pb.GetCannedReplyRequest, *, timeout: float | None = None
    ) -> pb.GetCannedReplyResponse:
        return await self._call(
            self._stub.GetCannedReply, request, idempotent=True, timeout=timeout
        )

    async def list_canned_replies(
        self, request: pb.ListCannedRepliesRequest, *, timeout: float | None = None
    ) -> pb.ListCannedRepliesResponse:
        return await self._call(
            self._stub.ListCannedReplies, request, idempotent=True, timeout=timeout
        )

    async def update_canned_reply(
        self, request: pb.UpdateCannedReplyRequest, *, timeout: float | None = None
    ) -> pb.UpdateCannedReplyResponse:
        return await self._call(
            self._stub.UpdateCannedReply, request, idempotent=True, timeout=timeout
        )

    async def delete_canned_reply(
        self, request: pb.DeleteCannedReplyRequest, *, timeout: float | None = None
    ) -> pb.DeleteCannedReplyResponse:
        return await self._call(
            self._stub.DeleteCannedReply, request, idempotent=True, timeout=timeout
        )

    async def search_canned_replies(
        self, request: pb.SearchCannedRepliesRequest, *, timeout: float | None = None
    ) -> pb.SearchCannedRepliesResponse:
        return await self._call(
            self._stub.SearchCannedReplies, request, idempotent=True, timeout=timeout
        )

    async def render_canned_reply(
        self, request: pb.RenderCannedReplyRequest, *, timeout: float | None = None
    ) -> pb.RenderCannedReplyResponse:
        return await self._call(
            self._stub.RenderCannedReply, request, idempotent=True, timeout=timeout
        )
