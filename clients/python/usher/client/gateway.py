"""``GatewayClient``: ConversationService, for channel gateways (a GATEWAY credential)."""

from __future__ import annotations

from functools import cached_property

from usher.client._base import BaseClient, keyed
from usher.client._stream import EventStream
from usher.v1 import conversation_service_pb2 as pb
from usher.v1 import conversation_service_pb2_grpc as pb_grpc


class GatewayClient(BaseClient):
    """Receive customers' messages, start conversations, and receive what to deliver to them.

    Methods take the generated request message and return the generated response. Retried on
    transient errors: StartConversation and PostBotMessage (an empty ``request_id`` is filled
    with a fresh UUID), and PostCustomerMessage and ReceiveCustomerMessage when the message has
    a ``provider_message_id``.

    ``async for item in client.events(channel="whatsapp")`` yields ``OutboundItem`` values,
    reconnecting and resuming by itself.
    """

    @cached_property
    def _stub(self) -> pb_grpc.ConversationServiceAsyncStub:
        return pb_grpc.ConversationServiceStub(self.channel)

    async def start_conversation(
        self, request: pb.StartConversationRequest, *, timeout: float | None = None
    ) -> pb.StartConversationResponse:
        return await self._call(
            self._stub.StartConversation, keyed(request), idempotent=True, timeout=timeout
        )

    async def post_customer_message(
        self, request: pb.PostCustomerMessageRequest, *, timeout: float | None = None
    ) -> pb.PostCustomerMessageResponse:
        return await self._call(
            self._stub.PostCustomerMessage,
            request,
            idempotent=bool(request.provider_message_id),
            timeout=timeout,
        )

    async def receive_customer_message(
        self, request: pb.ReceiveCustomerMessageRequest, *, timeout: float | None = None
    ) -> pb.ReceiveCustomerMessageResponse:
        """A customer's message on a channel: into their open conversation there, or a new one.

        One call per inbound message (no conversation id needed); ``request.start`` says how a
        new conversation starts. Retried when ``message.provider_message_id`` is set.
        """
        return await self._call(
            self._stub.ReceiveCustomerMessage,
            request,
            idempotent=bool(request.message.provider_message_id),
            timeout=timeout,
        )

    async def post_bot_message(
        self, request: pb.PostBotMessageRequest, *, timeout: float | None = None
    ) -> pb.PostBotMessageResponse:
        return await self._call(
            self._stub.PostBotMessage, keyed(request), idempotent=True, timeout=timeout
        )

    async def request_agent(
        self, request: pb.RequestAgentRequest, *, timeout: float | None = None
    ) -> pb.RequestAgentResponse:
        return await self._call(self._stub.RequestAgent, request, idempotent=False, timeout=timeout)

    async def leave_conversation(
        self, request: pb.LeaveConversationRequest, *, timeout: float | None = None
    ) -> pb.LeaveConversationResponse:
        return await self._call(
            self._stub.LeaveConversation, request, idempotent=False, timeout=timeout
        )

    async def notify_typing(
        self, request: pb.NotifyTypingRequest, *, timeout: float | None = None
    ) -> pb.NotifyTypingResponse:
        return await self._call(self._stub.NotifyTyping, request, idempotent=False, timeout=timeout)

    async def mark_read(
        self, request: pb.MarkReadRequest, *, timeout: float | None = None
    ) -> pb.MarkReadResponse:
        return await self._call(self._stub.MarkRead, request, idempotent=False, timeout=timeout)

    async def rate_conversation(
        self, request: pb.RateConversationRequest, *, timeout: float | None = None
    ) -> pb.RateConversationResponse:
        """The customer's 1-5 rating, once per conversation (a repeat of the same rating is
        answered with ``duplicate``): safe to retry."""
        return await self._call(
            self._stub.RateConversation, request, idempotent=True, timeout=timeout
        )

    async def list_ratings(
        self, request: pb.ListRatingsRequest, *, timeout: float | None = None
    ) -> pb.ListRatingsResponse:
        return await self._call(self._stub.ListRatings, request, idempotent=True, timeout=timeout)

    async def fetch_gateway_channels(
        self, request: pb.FetchGatewayChannelsRequest, *, timeout: float | None = None
    ) -> pb.FetchGatewayChannelsResponse:
        """The tenant's channels of one type with their secrets, and the tenant's id."""
        return await self._call(
            self._stub.FetchGatewayChannels, request, idempotent=True, timeout=timeout
        )

    def events(
        self, *, channel: str = "", resume_after_event_id: int = 0
    ) -> EventStream[pb.StreamOutboundResponse, pb.OutboundItem]:
        """What to deliver to customers (one channel, or all with ``channel=""``), in order."""
        return self._stream(
            self._stub.StreamOutbound,
            lambda after: pb.StreamOutboundRequest(channel=channel, resume_after_event_id=after),
            lambda response: response.items,
            lambda item: item.event_id,
            resume_after_event_id,
        )
