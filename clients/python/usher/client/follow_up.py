"""``FollowUpClient``: FollowUpService, for consoles following customers up (left messages,
agent-started conversations)."""

from __future__ import annotations

from functools import cached_property

from usher.client._base import BaseClient, keyed
from usher.v1 import follow_up_service_pb2 as pb
from usher.v1 import follow_up_service_pb2_grpc as pb_grpc


class FollowUpClient(BaseClient):
    """List left messages and mark them handled, answer one, start a conversation with a known
    customer. Methods take the generated request message and return the generated response.
    Retried on transient errors: ListLeftMessages, MarkLeftMessageHandled (setting a flag) and
    StartConversationWithCustomer (its ``request_id`` is filled in when empty, so a retry
    repeats the same start)."""

    @cached_property
    def _stub(self) -> pb_grpc.FollowUpServiceAsyncStub:
        return pb_grpc.FollowUpServiceStub(self.channel)

    async def list_left_messages(
        self, request: pb.ListLeftMessagesRequest, *, timeout: float | None = None
    ) -> pb.ListLeftMessagesResponse:
        return await self._call(
            self._stub.ListLeftMessages, request, idempotent=True, timeout=timeout
        )

    async def mark_left_message_handled(
        self, request: pb.MarkLeftMessageHandledRequest, *, timeout: float | None = None
    ) -> pb.MarkLeftMessageHandledResponse:
        return await self._call(
            self._stub.MarkLeftMessageHandled, request, idempotent=True, timeout=timeout
        )

    async def answer_left_message(
        self, request: pb.AnswerLeftMessageRequest, *, timeout: float | None = None
    ) -> pb.AnswerLeftMessageResponse:
        return await self._call(
            self._stub.AnswerLeftMessage, request, idempotent=False, timeout=timeout
        )

    async def start_conversation_with_customer(
        self, request: pb.StartConversationWithCustomerRequest, *, timeout: float | None = None
    ) -> pb.StartConversationWithCustomerResponse:
        return await self._call(
            self._stub.StartConversationWithCustomer,
            keyed(request),
            idempotent=True,
            timeout=timeout,
        )
