"""ConversationService: the channel gateways' door.

Contracts:

- Every command is validated whole here and again in the engine, then submitted; the answer is
  built from the command's outcome (its events and the state it left), never read back.
- A message is part of its command (``StartConversation``'s first message,
  ``ReceiveCustomerMessage``, ``PostCustomerMessage``, ``PostBotMessage``): stored with the
  command's events or not at all. Its idempotency key (the provider's id, or
  ``request:{request_id}``) is decided by the shard: a repeat is answered with the original,
  ``duplicate`` set, and changes nothing, whatever failed before it.
- ``StartConversation`` derives the conversation id from ``request_id`` (uuid5), so a repeat
  finds the first call's conversation; ``ReceiveCustomerMessage`` derives it from the message's
  key, and lands in the customer's open conversation on the channel if there is one.
- ``StreamOutbound`` is the tenant feed translated (``core.api.outbound``): its ``event_id``
  values are the feed's, so a resume after the last one seen loses nothing and repeats nothing.
- ``NotifyTyping`` and ``MarkRead`` go through the engine as events, so they reach the other
  side in order with everything else and survive a resume.
- A blocked sender (``core.store.blocklist``: by customer id, phone, e-mail or IP) is answered OK
  with ``blocked`` set: the message is kept in ``blocked_messages`` and nothing is recorded.
  The check costs a dict lookup per message (the tenant's blocks are cached for seconds); the
  engine refuses too (``Blocked``) while the customer's profile carries a standing block, which
  is all ``PostCustomerMessage`` asks: no read per message.
- A message that is only an opt-out keyword (STOP, UNSUBSCRIBE...) opts its sender out of
  broadcasts on the channel, once recorded (``core.api.broadcast_replies``).
- The customer's profile (``core.api.profiles``) is read once when a conversation starts:
  ``StartConversation`` reads it; ``ReceiveCustomerMessage`` submits without it and reads it
  only when the engine answers that the message starts a conversation (``ProfileNeeded``).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator, Callable, Iterable

from usher.v1 import conversation_pb2, conversation_service_pb2, conversation_service_pb2_grpc

from core.api import broadcast_replies, choices, door, profiles, ratings
from core.api import convert as cv
from core.api import resources as res
from core.api.admin_values import CHANNEL_TYPE_OF, channel_to_proto
from core.api.auth import caller
from core.api.context import ApiContext, Caller
from core.api.outbound import Targets, for_customers, outbound_item
from core.api.validation.limits import (
    MAX_ATTACHMENTS,
    MAX_REQUEST_ID,
    MAX_TAG_LENGTH,
    MAX_TAGS,
)
from core.routing import commands as c
from core.routing import events as ev
from core.routing import model as m
from core.routing.errors import (
    BLOCKED,
    PROFILE_NEEDED,
    AlreadyExists,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from core.runtime.shard import Failure
from core.store.admin import AdminStore
from core.store.blocklist import sender_keys
from core.store.channels import Channels
from core.store.validation import MAX_CONTENT, MAX_PROVIDER_ID

CallerOf = Callable[[cv.Ctx], Caller]
MAX_ITEMS_PER_RESPONSE = 100
"""Outbound items a response gathers when several are ready at once (one write, not many)."""


def default_caller(context: cv.Ctx) -> Caller:
    """The authenticated caller (``core.api.auth.caller``)."""
    return caller(context)


def require_role(who: Caller, *roles: str) -> None:
    if who.role not in roles:
        raise PermissionDenied(f"role {who.role!r} may not call this")


def validate_text(text: str, attachments: Iterable[object], field: str = "text") -> None:
    """A message's text and attachments, before anything happens. The limits are the edge's
    (``core.api.validation.limits``), checked again here for callers that bypass the server
    (the local API, tests)."""
    items = list(attachments)
    if not text and not items:
        raise InvalidArgument("a message needs text or an attachment", field=field)
    if len(text) > MAX_CONTENT:
        raise InvalidArgument(f"text is over {MAX_CONTENT} characters", field=field)
    if "\x00" in text:
        raise InvalidArgument("text cannot contain NUL characters", field=field)
    if len(items) > MAX_ATTACHMENTS:
        raise InvalidArgument(f"at most {MAX_ATTACHMENTS} attachments", field="attachments")


def validate_key(key: str, field: str) -> None:
    """An idempotency key: a provider's message id, or a request id (kept as
    ``request:{id}``, so request ids are a little shorter)."""
    limit = MAX_REQUEST_ID if field.endswith("request_id") else MAX_PROVIDER_ID
    if len(key) > limit or "\x00" in key:
        raise InvalidArgument(f"{field} has at most {limit} characters", field=field)


def validate_tags(tags: Iterable[str], field: str = "tags") -> frozenset[str]:
    found = frozenset(tags)
    if len(found) > MAX_TAGS:
        raise InvalidArgument(f"at most {MAX_TAGS} tags", field=field)
    for tag in found:
        if not tag or len(tag) > MAX_TAG_LENGTH or "\x00" in tag:
            raise InvalidArgument(f"a tag has 1 to {MAX_TAG_LENGTH} characters", field=field)
    return found


def _customer_message(
    message: conversation_service_pb2.CustomerMessage, field: str
) -> m.MessageBody:
    validate_text(message.text, message.attachments, f"{field}.text")
    validate_key(message.provider_message_id, f"{field}.provider_message_id")
    sent_at = (
        cv.from_timestamp(message.send_time).timestamp() if message.HasField("send_time") else None
    )
    return res.body_from_proto(
        message.text,
        message.attachments,
        message.provider_message_id,
        sent_at,
        selected_option_id=choices.option_id(
            message.selected_option_id, f"{field}.selected_option_id"
        ),
    )


def _card(
    customer: conversation_pb2.CustomerIdentity, profile: m.CustomerProfile | None = None
) -> m.CustomerCard:
    return m.CustomerCard(
        external_id=customer.external_id,
        name=customer.name,
        phone=customer.phone,
        email=customer.email,
        profile=profile,
    )


def _reason(failure: Failure | None) -> str:
    return "" if failure is None else failure.details.get("reason", "")


class ConversationServicer(conversation_service_pb2_grpc.ConversationServiceServicer):
    """ConversationService over an ``ApiContext`` (role GATEWAY)."""

    def __init__(self, api: ApiContext, *, caller_of: CallerOf = default_caller) -> None:
        self._api = api
        self._caller_of = caller_of
        self._targets = Targets(api.reads)
        self._channels = Channels(api.pool)
        self._queues = AdminStore(api.pool)

    def _gateway(self, context: cv.Ctx) -> str:
        who = self._caller_of(context)
        require_role(who, "gateway")
        return who.tenant

    async def _require_queue(self, tenant: str, queue_id: str) -> None:
        """NOT_FOUND unless the queue exists: checked before the customer record is written, so
        a refused start stores nothing."""
        if await self._queues.queue(tenant, queue_id) is None:
            raise NotFound(f"queue {queue_id!r} not found", queue_id=queue_id)

    async def _customer_id(
        self, tenant: str, channel: str, customer: conversation_pb2.CustomerIdentity
    ) -> str:
        return await self._api.customers.resolve(
            tenant,
            channel,
            customer.external_id,
            name=customer.name,
            phone=customer.phone or None,
            email=customer.email or None,
        )

    async def _blocked(
        self,
        tenant: str,
        channel: str,
        customer_id: str,
        customer: conversation_pb2.CustomerIdentity,
        body: m.MessageBody,
    ) -> bool:
        """Whether the sender is blocked; if so, their message is kept for the record."""
        keys = sender_keys(
            customer_id=customer_id,
            external_id=customer.external_id,
            phone=customer.phone,
            email=customer.email,
            ip_address=customer.ip_address,
        )
        block_id = await self._api.blocklist.match(tenant, keys)
        if block_id is None:
            return False
        await self._api.blocklist.keep_message(
            tenant,
            block_id,
            channel=channel,
            body=body,
            external_id=customer.external_id,
            customer_id=customer_id,
        )
        return True

    async def _kept(self, tenant: str, failure: Failure | None, body: m.MessageBody) -> bool:
        """Whether the engine refused a message as a blocked customer's (their profile's
        block, ``Blocked``); if so, the message is kept for the record."""
        if _reason(failure) != BLOCKED:
            return False
        assert failure is not None
        found = failure.details
        await self._api.blocklist.keep_message(
            tenant,
            int(found["block_id"]),
            channel=found.get("channel", ""),
            body=body,
            external_id=found.get("external_id", ""),
            customer_id=found.get("customer_id") or None,
            conversation_id=found.get("conversation_id") or None,
        )
        return True

    @cv.guarded
    async def StartConversation(
        self, request: conversation_service_pb2.StartConversationRequest, context: cv.Ctx
    ) -> conversation_service_pb2.StartConversationResponse:
        tenant = self._gateway(context)
        channel = cv.require(request.channel, "channel")
        cv.require(request.customer.external_id, "customer.external_id")
        queue_id = cv.parse_queue(request.queue) if request.queue else None
        tags = validate_tags(request.tags)
        validate_key(request.request_id, "request_id")
        first = (
            _customer_message(request.first_message, "first_message")
            if request.HasField("first_message")
            else None
        )
        if request.request_id:
            conversation_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{tenant}/{request.request_id}"))
        else:
            conversation_id = uuid.uuid4().hex
        if queue_id is not None:
            await self._require_queue(tenant, queue_id)
        customer_id = await self._customer_id(tenant, channel, request.customer)
        kept = first or m.MessageBody(
            provider_message_id=f"request:{request.request_id}" if request.request_id else None
        )
        if await self._blocked(tenant, channel, customer_id, request.customer, kept):
            return conversation_service_pb2.StartConversationResponse(blocked=True)
        profile = await profiles.read(self._api, tenant, customer_id)
        outcome = await self._api.submit(
            c.StartConversation(
                tenant=tenant,
                conversation_id=conversation_id,
                channel=channel,
                customer_id=customer_id,
                queue_id=queue_id,
                region=request.region,
                language=request.language,
                priority=request.priority,
                tags=tags,
                with_bot=request.with_bot,
                customer=_card(request.customer, profile),
                first_message=first,
                reference=request.reference,
                page=request.page,
                referrer=request.referrer,
            )
        )
        if await self._kept(tenant, outcome.failure, kept):
            return conversation_service_pb2.StartConversationResponse(blocked=True)
        failure = outcome.failure
        if failure is not None and failure.code == "ALREADY_EXISTS":
            open_one = failure.details.get("open_conversation")
            if open_one is not None:
                raise AlreadyExists(
                    failure.message,
                    reason="OPEN_CONVERSATION",
                    resource_type="usher.v1.Conversation",
                    resource_name=cv.conversation_name(open_one),
                )
            # this request (or its first message) was recorded before: answer the first result
            return await self._started(tenant, failure.details.get("conversation_id", ""))
        cv.check(outcome)
        return conversation_service_pb2.StartConversationResponse(
            conversation=door.conversation_of(outcome),
            first_message=None if first is None else door.recorded_message(outcome),
        )

    async def _started(
        self, tenant: str, conversation_id: str
    ) -> conversation_service_pb2.StartConversationResponse:
        conversation = await door.stored_conversation(self._api, tenant, conversation_id)
        first = await self._api.reads.first_customer_message(tenant, conversation_id)
        return conversation_service_pb2.StartConversationResponse(
            conversation=conversation,
            first_message=None if first is None else res.message_from_record(first),
            duplicate=True,
        )

    @cv.guarded
    async def ReceiveCustomerMessage(
        self, request: conversation_service_pb2.ReceiveCustomerMessageRequest, context: cv.Ctx
    ) -> conversation_service_pb2.ReceiveCustomerMessageResponse:
        tenant = self._gateway(context)
        channel = cv.require(request.channel, "channel")
        cv.require(request.customer.external_id, "customer.external_id")
        body = _customer_message(request.message, "message")
        start = request.start
        queue_id = cv.parse_queue(start.queue, "start.queue") if start.queue else None
        tags = validate_tags(start.tags, "start.tags")
        key = body.provider_message_id
        conversation_id = (
            str(uuid.uuid5(uuid.NAMESPACE_URL, f"{tenant}/{channel}/message/{key}"))
            if key
            else uuid.uuid4().hex
        )
        customer_id = await self._customer_id(tenant, channel, request.customer)
        if await self._blocked(tenant, channel, customer_id, request.customer, body):
            return conversation_service_pb2.ReceiveCustomerMessageResponse(blocked=True)
        command = c.ReceiveMessage(
            tenant=tenant,
            conversation_id=conversation_id,
            channel=channel,
            customer_id=customer_id,
            message=body,
            customer=_card(request.customer),
            queue_id=queue_id,
            region=start.region,
            language=start.language,
            priority=start.priority,
            tags=tags,
            with_bot=start.with_bot,
            reference=start.reference,
            page=start.page,
            referrer=start.referrer,
            require_profile=True,
        )
        outcome = await self._api.submit(command)
        if _reason(outcome.failure) == PROFILE_NEEDED:  # it starts a conversation
            profile = await profiles.read(self._api, tenant, customer_id)
            outcome = await self._api.submit(
                dataclasses.replace(
                    command, customer=_card(request.customer, profile), require_profile=False
                )
            )
        if await self._kept(tenant, outcome.failure, body):
            return conversation_service_pb2.ReceiveCustomerMessageResponse(blocked=True)
        if door.is_duplicate(outcome.failure):
            assert outcome.failure is not None
            original = await door.original_message(self._api, tenant, outcome.failure)
            return conversation_service_pb2.ReceiveCustomerMessageResponse(
                conversation=await door.stored_conversation(
                    self._api, tenant, outcome.failure.details["conversation_id"]
                ),
                message=original,
                duplicate=True,
            )
        cv.check(outcome)
        await broadcast_replies.note_keyword(
            self._api, tenant, channel, customer_id, request.customer.external_id, body.text
        )
        return conversation_service_pb2.ReceiveCustomerMessageResponse(
            conversation=door.conversation_of(outcome),
            message=door.recorded_message(outcome),
            started=any(isinstance(e, ev.ConversationStarted) for e in outcome.events),
        )

    @cv.guarded
    async def PostCustomerMessage(
        self, request: conversation_service_pb2.PostCustomerMessageRequest, context: cv.Ctx
    ) -> conversation_service_pb2.PostCustomerMessageResponse:
        tenant = self._gateway(context)
        conversation_id = cv.parse_conversation(request.conversation)
        validate_text(request.text, request.attachments)
        validate_key(request.provider_message_id, "provider_message_id")
        sent_at = (
            cv.from_timestamp(request.send_time).timestamp()
            if request.HasField("send_time")
            else None
        )
        body = res.body_from_proto(
            request.text,
            request.attachments,
            request.provider_message_id,
            sent_at,
            selected_option_id=choices.option_id(request.selected_option_id, "selected_option_id"),
        )
        try:
            message, duplicate = await door.record_message(
                self._api,
                c.RecordMessage(
                    tenant=tenant,
                    conversation_id=conversation_id,
                    sender=m.Sender.CUSTOMER,
                    message=body,
                ),
            )
        except cv.Refused as refused:  # the engine's view: the customer's profile is blocked
            if await self._kept(tenant, refused.failure, body):
                return conversation_service_pb2.PostCustomerMessageResponse(blocked=True)
            raise
        return conversation_service_pb2.PostCustomerMessageResponse(
            message=message, duplicate=duplicate
        )

    @cv.guarded
    async def PostBotMessage(
        self, request: conversation_service_pb2.PostBotMessageRequest, context: cv.Ctx
    ) -> conversation_service_pb2.PostBotMessageResponse:
        tenant = self._gateway(context)
        conversation_id = cv.parse_conversation(request.conversation)
        validate_text(request.text, request.attachments)
        validate_key(request.request_id, "request_id")
        key = f"request:{request.request_id}" if request.request_id else ""
        body = res.body_from_proto(
            request.text, request.attachments, key, offered=choices.of_request(request)
        )
        message, duplicate = await door.record_message(
            self._api,
            c.RecordMessage(
                tenant=tenant, conversation_id=conversation_id, sender=m.Sender.BOT, message=body
            ),
        )
        return conversation_service_pb2.PostBotMessageResponse(message=message, duplicate=duplicate)

    @cv.guarded
    async def RequestAgent(
        self, request: conversation_service_pb2.RequestAgentRequest, context: cv.Ctx
    ) -> conversation_service_pb2.RequestAgentResponse:
        tenant = self._gateway(context)
        conversation_id = cv.parse_conversation(request.conversation)
        command = c.RequestAgent(
            tenant=tenant,
            conversation_id=conversation_id,
            queue_id=cv.parse_queue(request.queue) if request.queue else None,
            priority=request.priority if request.HasField("priority") else None,
        )
        outcome = await door.run(self._api, command)
        return conversation_service_pb2.RequestAgentResponse(
            conversation=door.conversation_of(outcome)
        )

    @cv.guarded
    async def LeaveConversation(
        self, request: conversation_service_pb2.LeaveConversationRequest, context: cv.Ctx
    ) -> conversation_service_pb2.LeaveConversationResponse:
        tenant = self._gateway(context)
        conversation_id = cv.parse_conversation(request.conversation)
        command = c.CustomerLeft(tenant=tenant, conversation_id=conversation_id)
        outcome = await door.run(self._api, command)
        return conversation_service_pb2.LeaveConversationResponse(
            conversation=door.conversation_of(outcome)
        )

    @cv.guarded
    async def NotifyTyping(
        self, request: conversation_service_pb2.NotifyTypingRequest, context: cv.Ctx
    ) -> conversation_service_pb2.NotifyTypingResponse:
        """Relayed to the owning agent's stream (``TypingChanged``)."""
        tenant = self._gateway(context)
        conversation_id = cv.parse_conversation(request.conversation)
        command = c.NotifyTyping(
            tenant=tenant,
            conversation_id=conversation_id,
            typist=m.Sender.CUSTOMER,
            active=request.active,
        )
        await door.run(self._api, command)
        return conversation_service_pb2.NotifyTypingResponse()

    @cv.guarded
    async def MarkRead(
        self, request: conversation_service_pb2.MarkReadRequest, context: cv.Ctx
    ) -> conversation_service_pb2.MarkReadResponse:
        """Relayed to the owning agent's stream (``ReceiptRecorded``)."""
        tenant = self._gateway(context)
        conversation_id, message_id = cv.parse_message(request.message)
        status = cv.parse_receipt_status(request.status)
        record = await self._api.reads.message(tenant, message_id)
        if record is None or record.conversation_id != conversation_id:
            raise NotFound(f"message {request.message!r} not found", message_id=message_id)
        command = c.RecordReceipt(
            tenant=tenant,
            conversation_id=conversation_id,
            reader=m.Sender.CUSTOMER,
            message_id=message_id,
            status=status,
        )
        await door.run(self._api, command)
        return conversation_service_pb2.MarkReadResponse()

    @cv.guarded
    async def RateConversation(
        self, request: conversation_service_pb2.RateConversationRequest, context: cv.Ctx
    ) -> conversation_service_pb2.RateConversationResponse:
        """Once per conversation, within 7 days of its end (``core.api.ratings``)."""
        return await ratings.rate(self._api, self._gateway(context), request)

    @cv.guarded
    async def ListRatings(
        self, request: conversation_service_pb2.ListRatingsRequest, context: cv.Ctx
    ) -> conversation_service_pb2.ListRatingsResponse:
        return await ratings.listed(self._api, self._gateway(context), request)

    @cv.guarded
    async def FetchGatewayChannels(
        self, request: conversation_service_pb2.FetchGatewayChannelsRequest, context: cv.Ctx
    ) -> conversation_service_pb2.FetchGatewayChannelsResponse:
        tenant = self._gateway(context)
        if request.type not in CHANNEL_TYPE_OF:
            raise InvalidArgument("name the channel type to serve", field="type")
        found = await self._channels.list_for_gateway(tenant, CHANNEL_TYPE_OF[request.type])
        return conversation_service_pb2.FetchGatewayChannelsResponse(
            webhook_namespace=tenant, channels=[channel_to_proto(ch) for ch in found]
        )

    async def _outbound(
        self, tenant: str, channel_filter: str, event_id: int, event: ev.Event
    ) -> conversation_service_pb2.OutboundItem | None:
        if isinstance(event, ev.ConversationStarted):
            self._targets.learn(tenant, event)
        payload = outbound_item(event)
        if payload is None:
            return None
        conversation_id = getattr(event, "conversation_id", "")
        target = await self._targets.get(tenant, conversation_id)
        if target is None:
            return None
        channel, external_id = target
        if channel_filter and channel != channel_filter:
            return None
        return conversation_service_pb2.OutboundItem(
            event_id=event_id,
            conversation=cv.conversation_name(conversation_id),
            channel=channel,
            external_id=external_id,
            time=cv.timestamp(event.at),
            **payload,
        )

    @cv.guarded_stream
    async def StreamOutbound(
        self, request: conversation_service_pb2.StreamOutboundRequest, context: cv.Ctx
    ) -> AsyncIterator[conversation_service_pb2.StreamOutboundResponse]:
        tenant = self._gateway(context)
        after = request.resume_after_event_id or None
        subscription = self._api.feeds.feed(tenant).subscribe(after, accepts=for_customers)
        gathered: list[conversation_service_pb2.OutboundItem] = []
        try:
            async for item in subscription:
                outbound = await self._outbound(tenant, request.channel, item.event_id, item.event)
                if outbound is not None:
                    gathered.append(outbound)
                if gathered and (
                    len(gathered) >= MAX_ITEMS_PER_RESPONSE or not subscription.ready()
                ):
                    yield conversation_service_pb2.StreamOutboundResponse(items=gathered)
                    gathered = []
        finally:
            subscription.close()
