"""``TeamChatClient``: TeamChatService, internal chat between a tenant's agents."""

from __future__ import annotations

from functools import cached_property

from usher.client._base import BaseClient, keyed
from usher.client._stream import EventStream
from usher.v1 import team_chat_service_pb2 as pb
from usher.v1 import team_chat_service_pb2_grpc as pb_grpc


def _message_id(item: pb.StreamTeamChatResponse) -> int | None:
    return item.message.message_id if item.HasField("message") else None


class TeamChatClient(BaseClient):
    """Threads, messages, colleagues and the team chat stream, as the agent the token names.
    Methods take the generated request message and return the generated response. Retried on
    transient errors: the reads, and ``send_team_message`` (its ``request_id`` is filled in when
    empty, so a retry cannot send twice); ``create_thread`` is not (a GROUP would be made
    twice)."""

    @cached_property
    def _stub(self) -> pb_grpc.TeamChatServiceAsyncStub:
        return pb_grpc.TeamChatServiceStub(self.channel)

    def stream(
        self, *, resume_after_message_id: int = 0
    ) -> EventStream[pb.StreamTeamChatResponse, pb.StreamTeamChatResponse]:
        """New messages in the caller's threads (resumed after the last ``message_id`` when the
        connection drops: none lost, none repeated) and colleagues' status changes (live only:
        call ``list_colleagues`` after a reconnect)."""
        return self._stream(
            self._stub.StreamTeamChat,
            lambda after: pb.StreamTeamChatRequest(resume_after_message_id=after),
            lambda response: (response,),
            _message_id,
            resume_after_message_id,
        )

    async def create_thread(
        self, request: pb.CreateThreadRequest, *, timeout: float | None = None
    ) -> pb.CreateThreadResponse:
        return await self._call(self._stub.CreateThread, request, idempotent=False, timeout=timeout)

    async def list_threads(
        self, request: pb.ListThreadsRequest, *, timeout: float | None = None
    ) -> pb.ListThreadsResponse:
        return await self._call(self._stub.ListThreads, request, idempotent=True, timeout=timeout)

    async def send_team_message(
        self, request: pb.SendTeamMessageRequest, *, timeout: float | None = None
    ) -> pb.SendTeamMessageResponse:
        return await self._call(
            self._stub.SendTeamMessage, keyed(request), idempotent=True, timeout=timeout
        )

    async def list_team_messages(
        self, request: pb.ListTeamMessagesRequest, *, timeout: float | None = None
    ) -> pb.ListTeamMessagesResponse:
        return await self._call(
            self._stub.ListTeamMessages, request, idempotent=True, timeout=timeout
        )

    async def list_colleagues(
        self, request: pb.ListColleaguesRequest, *, timeout: float | None = None
    ) -> pb.ListColleaguesResponse:
        return await self._call(
            self._stub.ListColleagues, request, idempotent=True, timeout=timeout
        )
