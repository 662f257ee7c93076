"""``AgentClient``: AgentService, for agent consoles (an AGENT credential)."""

from __future__ import annotations

from functools import cached_property

from usher.client._base import BaseClient, keyed
from usher.client._stream import EventStream
from usher.v1 import agent_service_pb2 as pb
from usher.v1 import agent_service_pb2_grpc as pb_grpc


class AgentClient(BaseClient):
    """Sign in, receive offers and messages, accept, answer, transfer and end conversations,
    acting as the agent the credential names.

    Methods take the generated request message and return the generated response. Retried on
    transient errors: the reads (ListMyConversations, GetConversation, ListMessages, ListNotes)
    and SendMessage (an empty ``request_id`` is filled with a fresh UUID).

    ``async for event in client.events()`` yields ``AgentEvent`` values, reconnecting and
    resuming by itself.
    """

    @cached_property
    def _stub(self) -> pb_grpc.AgentServiceAsyncStub:
        return pb_grpc.AgentServiceStub(self.channel)

    def events(
        self, *, resume_after_event_id: int = 0
    ) -> EventStream[pb.StreamEventsResponse, pb.AgentEvent]:
        """The agent's feed: offers, messages, transfers, reminders, assignment changes."""
        return self._stream(
            self._stub.StreamEvents,
            lambda after: pb.StreamEventsRequest(resume_after_event_id=after),
            lambda response: response.events,
            lambda event: event.event_id,
            resume_after_event_id,
        )

    async def set_status(
        self, request: pb.SetStatusRequest, *, timeout: float | None = None
    ) -> pb.SetStatusResponse:
        return await self._call(self._stub.SetStatus, request, idempotent=False, timeout=timeout)

    async def accept_offer(
        self, request: pb.AcceptOfferRequest, *, timeout: float | None = None
    ) -> pb.AcceptOfferResponse:
        return await self._call(self._stub.AcceptOffer, request, idempotent=False, timeout=timeout)

    async def reject_offer(
        self, request: pb.RejectOfferRequest, *, timeout: float | None = None
    ) -> pb.RejectOfferResponse:
        return await self._call(self._stub.RejectOffer, request, idempotent=False, timeout=timeout)

    async def take_conversation(
        self, request: pb.TakeConversationRequest, *, timeout: float | None = None
    ) -> pb.TakeConversationResponse:
        return await self._call(
            self._stub.TakeConversation, request, idempotent=False, timeout=timeout
        )

    async def send_message(
        self, request: pb.SendMessageRequest, *, timeout: float | None = None
    ) -> pb.SendMessageResponse:
        return await self._call(
            self._stub.SendMessage, keyed(request), idempotent=True, timeout=timeout
        )

    async def request_transfer(
        self, request: pb.RequestTransferRequest, *, timeout: float | None = None
    ) -> pb.RequestTransferResponse:
        return await self._call(
            self._stub.RequestTransfer, request, idempotent=False, timeout=timeout
        )

    async def answer_transfer(
        self, request: pb.AnswerTransferRequest, *, timeout: float | None = None
    ) -> pb.AnswerTransferResponse:
        return await self._call(
            self._stub.AnswerTransfer, request, idempotent=False, timeout=timeout
        )

    async def cancel_transfer(
        self, request: pb.CancelTransferRequest, *, timeout: float | None = None
    ) -> pb.CancelTransferResponse:
        return await self._call(
            self._stub.CancelTransfer, request, idempotent=False, timeout=timeout
        )

    async def set_conversation_mode(
        self, request: pb.SetConversationModeRequest, *, timeout: float | None = None
    ) -> pb.SetConversationModeResponse:
        return await self._call(
            self._stub.SetConversationMode, request, idempotent=False, timeout=timeout
        )

    async def end_conversation(
        self, request: pb.EndConversationRequest, *, timeout: float | None = None
    ) -> pb.EndConversationResponse:
        return await self._call(
            self._stub.EndConversation, request, idempotent=False, timeout=timeout
        )

    async def finish_wrap_up(
        self, request: pb.FinishWrapUpRequest, *, timeout: float | None = None
    ) -> pb.FinishWrapUpResponse:
        return await self._call(self._stub.FinishWrapUp, request, idempotent=False, timeout=timeout)

    async def add_note(
        self, request: pb.AddNoteRequest, *, timeout: float | None = None
    ) -> pb.AddNoteResponse:
        return await self._call(self._stub.AddNote, request, idempotent=False, timeout=timeout)

    async def update_tags(
        self, request: pb.UpdateTagsRequest, *, timeout: float | None = None
    ) -> pb.UpdateTagsResponse:
        return await self._call(self._stub.UpdateTags, request, idempotent=False, timeout=timeout)

    async def list_my_conversations(
        self, request: pb.ListMyConversationsRequest, *, timeout: float | None = None
    ) -> pb.ListMyConversationsResponse:
        return await self._call(
            self._stub.ListMyConversations, request, idempotent=True, timeout=timeout
        )

    async def get_conversation(
        self, request: pb.GetConversationRequest, *, timeout: float | None = None
    ) -> pb.GetConversationResponse:
        return await self._call(
            self._stub.GetConversation, request, idempotent=True, timeout=timeout
        )

    async def list_messages(
        self, request: pb.ListMessagesRequest, *, timeout: float | None = None
    ) -> pb.ListMessagesResponse:
        return await self._call(self._stub.ListMessages, request, idempotent=True, timeout=timeout)

    async def list_notes(
        self, request: pb.ListNotesRequest, *, timeout: float | None = None
    ) -> pb.ListNotesResponse:
        return await self._call(self._stub.ListNotes, request, idempotent=True, timeout=timeout)

    async def notify_typing(
        self, request: pb.AgentServiceNotifyTypingRequest, *, timeout: float | None = None
    ) -> pb.AgentServiceNotifyTypingResponse:
        return await self._call(self._stub.NotifyTyping, request, idempotent=False, timeout=timeout)

    async def mark_read(
        self, request: pb.AgentServiceMarkReadRequest, *, timeout: float | None = None
    ) -> pb.AgentServiceMarkReadResponse:
        return await self._call(self._stub.MarkRead, request, idempotent=False, timeout=timeout)
