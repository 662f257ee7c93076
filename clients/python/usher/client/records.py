"""``RecordClient``: RecordService, for consoles' conversation lists, counts, pins, activity
logs, customers' histories and exports (an AGENT, SUPERVISOR or ADMIN credential)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import cached_property

import grpc

from usher.client._base import BaseClient
from usher.client._stream import EventStream
from usher.client.errors import from_rpc_error
from usher.v1 import record_service_pb2 as pb
from usher.v1 import record_service_pb2_grpc as pb_grpc

Watch = EventStream[pb.WatchConversationListsResponse, pb.WatchConversationListsResponse]


class _ListWatch(Watch):
    """A watch's messages all count, even one at the position already reached (a resume's
    opening counts, a pin's change): only the resume point moves with ``event_id``."""

    def _fresh(self, item: pb.WatchConversationListsResponse) -> bool:
        self._last = max(self._last, item.event_id)
        return True


class RecordClient(BaseClient):
    """Methods take the generated request message and return the generated response. Retried
    on transient errors: every method but the export (pins are idempotent).

    ``async for message in client.watch_conversation_lists(request)`` yields the console's
    lists' counts and changes, reconnecting and resuming by itself.
    """

    @cached_property
    def _stub(self) -> pb_grpc.RecordServiceAsyncStub:
        return pb_grpc.RecordServiceStub(self.channel)

    async def list_conversations(
        self, request: pb.ListConversationsRequest, *, timeout: float | None = None
    ) -> pb.ListConversationsResponse:
        return await self._call(
            self._stub.ListConversations, request, idempotent=True, timeout=timeout
        )

    async def count_conversations(
        self, request: pb.CountConversationsRequest, *, timeout: float | None = None
    ) -> pb.CountConversationsResponse:
        return await self._call(
            self._stub.CountConversations, request, idempotent=True, timeout=timeout
        )

    async def pin_conversation(
        self, request: pb.PinConversationRequest, *, timeout: float | None = None
    ) -> pb.PinConversationResponse:
        return await self._call(
            self._stub.PinConversation, request, idempotent=True, timeout=timeout
        )

    async def unpin_conversation(
        self, request: pb.UnpinConversationRequest, *, timeout: float | None = None
    ) -> pb.UnpinConversationResponse:
        return await self._call(
            self._stub.UnpinConversation, request, idempotent=True, timeout=timeout
        )

    async def get_conversation_activity(
        self, request: pb.GetConversationActivityRequest, *, timeout: float | None = None
    ) -> pb.GetConversationActivityResponse:
        return await self._call(
            self._stub.GetConversationActivity, request, idempotent=True, timeout=timeout
        )

    async def list_customer_conversations(
        self, request: pb.ListCustomerConversationsRequest, *, timeout: float | None = None
    ) -> pb.ListCustomerConversationsResponse:
        return await self._call(
            self._stub.ListCustomerConversations, request, idempotent=True, timeout=timeout
        )

    async def export_conversations(
        self, request: pb.ExportConversationsRequest, *, timeout: float | None = None
    ) -> AsyncIterator[bytes]:
        """The file's bytes, chunk by chunk (not resumed: on an error, export again)."""
        call = self._stub.ExportConversations(request, timeout=timeout, metadata=self._metadata)
        try:
            async for response in call:
                yield response.chunk
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc) from exc

    def watch_conversation_lists(self, request: pb.WatchConversationListsRequest) -> Watch:
        """The lists ``request`` names, live: a first message with their counts (``reset``:
        read the lists then), then their changes. On a dropped connection it reconnects and
        resumes after the last ``event_id`` received (the first message after a reconnect
        carries what changed meanwhile, or ``reset``). ``last_event_id`` is the resume point
        to persist; ``request.resume_after_event_id`` starts from one."""
        template = pb.WatchConversationListsRequest()
        template.CopyFrom(request)

        def resuming(after: int) -> pb.WatchConversationListsRequest:
            built = pb.WatchConversationListsRequest()
            built.CopyFrom(template)
            built.resume_after_event_id = after
            return built

        return _ListWatch(
            lambda after: self._stub.WatchConversationLists(
                resuming(after), metadata=self._metadata
            ),
            lambda response: (response,),
            lambda response: response.event_id,
            resume_after_event_id=request.resume_after_event_id,
            retry=self._retry,
        )
