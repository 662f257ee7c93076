"""ConversationService: the channel gateways' door, plus the store reads every servicer shares.

Contracts:

- Commands go to the engine through ``ApiContext.submit``; a refused command answers with its
  ``Failure``'s code and changes nothing. Messages are stored (``Ingestor``) before the engine
  hears of them (``RecordMessage``), so a ``MessageRecorded`` event always finds its message.
- ``StartConversation`` derives the conversation id from ``request_id`` (uuid5), so a repeat
  finds the first call's conversation and answers it with ``duplicate`` set.
- ``StreamOutbound`` is the tenant feed translated: its ``event_id`` values are the feed's, so a
  resume after the last one seen loses nothing and repeats nothing. Items are derived from
  events only: agent and bot messages (``MessageRecorded``, text read from the store), state
  changes, and system messages (``SystemMessageSent``: welcome, waiting position, agent
  joined/ended, idle reminders, out of hours), rendered by the engine in the customer's language.
- ``NotifyTyping`` and ``MarkRead`` go through the engine as ``TypingChanged`` and
  ``ReceiptRecorded`` events, so they reach the other side in order with everything else and
  survive a resume. The agent's typing and reads come back on ``StreamOutbound``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any, Final

import asyncpg
from usher.v1 import conversation_pb2, conversation_service_pb2, conversation_service_pb2_grpc

from core.api import convert as cv
from core.api.admin_values import CHANNEL_TYPE_OF, channel_to_proto
from core.api.auth import caller
from core.api.context import ApiContext, Caller
from core.api.messages import MESSAGE_SQL, MessageIndex, load_message
from core.routing import commands as c
from core.routing import events as ev
from core.routing import model as m
from core.routing.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from core.runtime.shard import Outcome
from core.store.channels import Channels
from core.store.ingest import MAX_CONTENT, Attachment, NewMessage
from core.store.records import MessageRecord, message_from_row

CallerOf = Callable[[cv.Ctx], Caller]


def default_caller(context: cv.Ctx) -> Caller:
    """The authenticated caller (``core.api.auth.caller``)."""
    return caller(context)


def require_role(who: Caller, *roles: str) -> None:
    if who.role not in roles:
        raise PermissionDenied(f"role {who.role!r} may not call this")


# --- store reads -----------------------------------------------------------------------------

CONVERSATION_SQL: Final = """
SELECT c.conversation_id, c.channel, c.customer_id, c.state, c.queue_id, c.owner_agent_id,
       c.last_agent_id, c.priority, c.outcome, c.close_reason, c.tags, c.created_at, c.queued_at,
       c.assigned_at, c.first_response_at, c.ended_at, c.closed_at,
       cu.name AS customer_name, cu.phone AS customer_phone, cu.email AS customer_email,
       (SELECT i.external_id FROM customer_identities i
        WHERE i.tenant_id = c.tenant_id AND i.channel = c.channel
          AND i.customer_id = c.customer_id LIMIT 1) AS external_id
FROM conversations c
LEFT JOIN customers cu ON cu.tenant_id = c.tenant_id AND cu.customer_id = c.customer_id
"""


def conversation_from_row(r: asyncpg.Record) -> conversation_pb2.Conversation:
    """The Conversation resource from a row of ``CONVERSATION_SQL``. Region and language are
    not in the store's table and stay empty."""
    out = conversation_pb2.Conversation(
        name=cv.conversation_name(r["conversation_id"]),
        channel=r["channel"],
        customer=conversation_pb2.CustomerIdentity(
            external_id=r["external_id"] or "",
            name=r["customer_name"] or "",
            phone=r["customer_phone"] or "",
            email=r["customer_email"] or "",
        ),
        state=cv.state_to_proto(r["state"]),
        queue=cv.queue_name(r["queue_id"]),
        owner=cv.agent_name(r["owner_agent_id"]),
        last_agent=cv.agent_name(r["last_agent_id"]),
        priority=r["priority"],
        tags=list(r["tags"]),
        outcome=cv.outcome_to_proto(r["outcome"]),
        close_reason=r["close_reason"] or "",
    )
    for field, column in (
        ("create_time", "created_at"),
        ("queue_time", "queued_at"),
        ("assign_time", "assigned_at"),
        ("first_response_time", "first_response_at"),
        ("end_time", "ended_at"),
        ("close_time", "closed_at"),
    ):
        stamp = cv.timestamp(r[column])
        if stamp is not None:
            getattr(out, field).CopyFrom(stamp)
    return out


async def find_conversation(
    pool: asyncpg.Pool, tenant: str, conversation_id: str
) -> conversation_pb2.Conversation | None:
    row = await pool.fetchrow(
        CONVERSATION_SQL + " WHERE c.tenant_id = $1 AND c.conversation_id = $2",
        tenant,
        conversation_id,
    )
    return None if row is None else conversation_from_row(row)


async def load_conversation(
    pool: asyncpg.Pool, tenant: str, conversation_id: str
) -> conversation_pb2.Conversation:
    """The stored conversation; ``NotFound`` if there is none."""
    found = await find_conversation(pool, tenant, conversation_id)
    if found is None:
        raise NotFound(f"conversation {conversation_id!r} not found", conversation=conversation_id)
    return found


def message_to_proto(r: MessageRecord) -> conversation_pb2.Message:
    out = conversation_pb2.Message(
        name=cv.message_name(r.conversation_id, r.message_id),
        sender=cv.sender_to_proto(r.sender),
        agent=cv.agent_name(r.agent_id),
        text=r.content,
        attachments=[
            conversation_pb2.Attachment(
                sha256=a.sha256, name=a.name, content_type=a.type, size=a.size, uri=a.uri
            )
            for a in r.attachments
        ],
        provider_message_id=r.provider_message_id or "",
    )
    stamp = cv.timestamp(r.created_at)
    if stamp is not None:
        out.create_time.CopyFrom(stamp)
    return out


def attachments_from_proto(items: Any) -> tuple[Attachment, ...]:
    """Stored attachments from proto ones."""
    return tuple(
        Attachment(sha256=a.sha256, name=a.name, type=a.content_type, size=a.size, uri=a.uri)
        for a in items
    )


def validate_text(text: str, attachments: Any) -> None:
    if not text and not len(attachments):
        raise InvalidArgument("a message needs text or an attachment", field="text")
    if len(text) > MAX_CONTENT:
        raise InvalidArgument(f"text is over {MAX_CONTENT} characters", field="text")


async def record_message(
    api: ApiContext,
    index: MessageIndex,
    message: NewMessage,
    sender: m.Sender,
    *,
    opening: bool = False,
) -> tuple[MessageRecord, bool]:
    """Store ``message`` then submit ``RecordMessage``; (the stored message, duplicate).
    A duplicate (same provider id) returns the original and submits nothing. The ``opening``
    message of a conversation that closed as it started (out of hours: the customer is invited
    to leave a message) stays stored, as that left message, though the engine refuses it."""
    ingested = await api.ingestor.ingest(message)
    if ingested.duplicate or ingested.created_at is None:
        original = await load_message(api.pool, message.tenant, ingested.message_id)
        return original, ingested.duplicate
    stored = MessageRecord(
        message_id=ingested.message_id,
        conversation_id=message.conversation_id,
        channel=message.channel,
        direction=message.direction,
        sender=message.sender,
        agent_id=message.agent_id,
        content=message.content,
        attachments=message.attachments,
        provider_message_id=message.provider_message_id,
        created_at=ingested.created_at,
    )
    tenant, conversation_id = message.tenant, message.conversation_id
    index.expect(tenant, conversation_id, sender.value, ingested.message_id)
    outcome = Outcome()
    try:
        outcome = await api.submit(
            c.RecordMessage(
                tenant=tenant,
                conversation_id=conversation_id,
                sender=sender,
                agent_id=message.agent_id,
            )
        )
    finally:
        index.settle(tenant, conversation_id, sender.value, ingested.message_id, outcome)
    if opening and outcome.failure is not None and outcome.failure.code == "FAILED_PRECONDITION":
        return stored, False
    cv.check(outcome)
    return stored, False


# --- outbound ------------------------------------------------------------------------------------


class Targets:
    """Where a conversation's outbound items go: (channel, external id), cached per process."""

    def __init__(self, pool: asyncpg.Pool, size: int = 50_000) -> None:
        self._pool = pool
        self._size = size
        self._cache: dict[tuple[str, str], tuple[str, str]] = {}

    async def get(self, tenant: str, conversation_id: str) -> tuple[str, str] | None:
        key = (tenant, conversation_id)
        found = self._cache.get(key)
        if found is None:
            row = await self._pool.fetchrow(
                """SELECT c.channel, i.external_id FROM conversations c
                   LEFT JOIN customer_identities i ON i.tenant_id = c.tenant_id
                     AND i.channel = c.channel AND i.customer_id = c.customer_id
                   WHERE c.tenant_id = $1 AND c.conversation_id = $2 LIMIT 1""",
                tenant,
                conversation_id,
            )
            if row is None:
                return None
            if len(self._cache) >= self._size:
                self._cache.clear()
            found = self._cache[key] = (row["channel"], row["external_id"] or "")
        return found


def _state(state: m.ConversationState, reason: str = "") -> dict[str, conversation_pb2.StateChange]:
    return {
        "state_change": conversation_pb2.StateChange(state=cv.state_to_proto(state), reason=reason)
    }


_SHOWN_TO_CUSTOMERS: Final = (
    ev.SystemMessageSent,
    ev.ConversationQueued,
    ev.OfferMade,
    ev.OfferAccepted,
    ev.ConversationAssigned,
    ev.ConversationEnded,
    ev.WrapUpFinished,
    ev.ConversationAbandoned,
    ev.ConversationReturnedToBot,
)
"""Events ``outbound_items`` always turns into an item (besides the sender-dependent ones)."""


def for_customers(event: ev.Event) -> bool:
    """The outbound stream's prefilter (``Subscription`` accepts): what ``outbound_items``
    may turn into an item; keep the two in step."""
    match event:
        case ev.MessageRecorded():
            return event.sender in (m.Sender.AGENT, m.Sender.BOT)
        case ev.TypingChanged():
            return event.typist is m.Sender.AGENT
        case ev.ReceiptRecorded():
            return event.reader is m.Sender.AGENT
    return isinstance(event, _SHOWN_TO_CUSTOMERS)


def receipt(event: ev.ReceiptRecorded) -> conversation_pb2.Receipt:
    status = (
        conversation_pb2.RECEIPT_STATUS_DELIVERED
        if event.status == "delivered"
        else conversation_pb2.RECEIPT_STATUS_READ
    )
    name = cv.message_name(event.conversation_id, event.message_id)
    return conversation_pb2.Receipt(message=name, status=status)


async def outbound_items(
    api: ApiContext, index: MessageIndex, tenant: str, event_id: int, event: ev.Event
) -> list[dict[str, Any]]:
    """The outbound payload (keyword arguments of ``OutboundItem``'s oneof) for one event: at
    most one, since an item's ``event_id`` is the event's and clients drop repeated ids."""
    S = m.ConversationState
    match event:
        case ev.MessageRecorded(sender=m.Sender.AGENT | m.Sender.BOT):
            record = await index.lookup(api.pool, tenant, event_id, event)
            return [] if record is None else [{"message": message_to_proto(record)}]
        case ev.SystemMessageSent():
            kind = cv.system_kind_to_proto(event.kind)
            return [
                {
                    "system_message": conversation_pb2.SystemMessage(
                        kind=kind, text=event.text, language=event.language
                    )
                }
            ]
        case ev.TypingChanged(typist=m.Sender.AGENT):
            agent = cv.agent_name(event.agent_id) if event.agent_id else ""
            return [{"typing": conversation_pb2.Typing(active=event.active, agent=agent)}]
        case ev.ReceiptRecorded(reader=m.Sender.AGENT):
            return [{"receipt": receipt(event)}]
        case ev.ConversationQueued():
            return [_state(S.QUEUED, event.reason.value)]
        case ev.OfferMade():
            return [_state(S.OFFERED)]
        case ev.OfferAccepted():
            return [_state(S.ACTIVE, "offer_accepted")]
        case ev.ConversationAssigned():
            return [_state(S.ACTIVE, event.via)]
        case ev.ConversationEnded():
            state = S.WRAP_UP if event.wrap_up_until is not None else S.CLOSED
            return [_state(state, event.reason.value)]
        case ev.WrapUpFinished():
            return [_state(S.CLOSED, "agent_ended")]
        case ev.ConversationAbandoned():
            return [_state(S.ABANDONED, "customer_left")]
        case ev.ConversationReturnedToBot():
            return [_state(S.BOT)]
    return []


def is_closed(conversation: conversation_pb2.Conversation) -> bool:
    return conversation.state in (
        conversation_pb2.CONVERSATION_STATE_CLOSED,
        conversation_pb2.CONVERSATION_STATE_ABANDONED,
    )


# --- the servicer --------------------------------------------------------------------------------


class ConversationServicer(conversation_service_pb2_grpc.ConversationServiceServicer):
    """ConversationService over an ``ApiContext`` (role GATEWAY)."""

    def __init__(
        self,
        api: ApiContext,
        *,
        caller_of: CallerOf = default_caller,
        messages: MessageIndex | None = None,
    ) -> None:
        self._api = api
        self._caller_of = caller_of
        self._messages = api.messages if messages is None else messages
        self._targets = Targets(api.pool)
        self._channels = Channels(api.pool)

    def _gateway(self, context: cv.Ctx) -> Caller:
        who = self._caller_of(context)
        require_role(who, "gateway")
        return who

    @cv.guarded
    async def StartConversation(
        self, request: conversation_service_pb2.StartConversationRequest, context: cv.Ctx
    ) -> conversation_service_pb2.StartConversationResponse:
        who = self._gateway(context)
        tenant = who.tenant
        channel = cv.require(request.channel, "channel")
        external_id = cv.require(request.customer.external_id, "customer.external_id")
        queue_id = cv.parse_queue(request.queue) if request.queue else None
        first = request.first_message if request.HasField("first_message") else None
        if first is not None:
            validate_text(first.text, first.attachments)
        if request.request_id:
            conversation_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{tenant}/{request.request_id}"))
            existing = await find_conversation(self._api.pool, tenant, conversation_id)
            if existing is not None:
                return await self._started(tenant, existing, duplicate=True)
        else:
            conversation_id = uuid.uuid4().hex
        customer_id = await self._api.ingestor.resolve_customer(
            tenant,
            channel,
            external_id,
            name=request.customer.name,
            phone=request.customer.phone or None,
            email=request.customer.email or None,
        )
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
                tags=frozenset(request.tags),
                with_bot=request.with_bot,
            )
        )
        if outcome.failure is not None and outcome.failure.code == "ALREADY_EXISTS":
            open_one = outcome.failure.details.get("open_conversation")
            if open_one is not None:
                raise AlreadyExists(
                    outcome.failure.message,
                    reason="OPEN_CONVERSATION",
                    resource_type="usher.v1.Conversation",
                    resource_name=cv.conversation_name(open_one),
                )
            existing = await load_conversation(self._api.pool, tenant, conversation_id)
            return await self._started(tenant, existing, duplicate=True)
        cv.check(outcome)
        message = None
        if first is not None:
            stored, _ = await record_message(
                self._api,
                self._messages,
                NewMessage(
                    tenant=tenant,
                    conversation_id=conversation_id,
                    channel=channel,
                    sender="customer",
                    content=first.text,
                    provider_message_id=first.provider_message_id or None,
                    attachments=attachments_from_proto(first.attachments),
                    created_at=cv.from_timestamp(first.send_time)
                    if first.HasField("send_time")
                    else None,
                ),
                m.Sender.CUSTOMER,
                opening=True,
            )
            message = message_to_proto(stored)
        conversation = await load_conversation(self._api.pool, tenant, conversation_id)
        return conversation_service_pb2.StartConversationResponse(
            conversation=conversation, first_message=message
        )

    async def _started(
        self, tenant: str, conversation: conversation_pb2.Conversation, *, duplicate: bool
    ) -> conversation_service_pb2.StartConversationResponse:
        conversation_id = cv.parse_conversation(conversation.name)
        row = await self._api.pool.fetchrow(
            MESSAGE_SQL + " WHERE tenant_id = $1 AND conversation_id = $2 AND sender = 'customer'"
            " ORDER BY message_id LIMIT 1",
            tenant,
            conversation_id,
        )
        first = None if row is None else message_to_proto(message_from_row(row))
        return conversation_service_pb2.StartConversationResponse(
            conversation=conversation, first_message=first, duplicate=duplicate
        )

    async def _open(self, tenant: str, conversation_id: str) -> conversation_pb2.Conversation:
        conversation = await load_conversation(self._api.pool, tenant, conversation_id)
        if is_closed(conversation):
            raise FailedPrecondition(f"conversation {conversation_id!r} is closed")
        return conversation

    async def _original(self, tenant: str, new: NewMessage) -> MessageRecord | None:
        """The stored message with ``new``'s provider id, if any."""
        if new.provider_message_id is None:
            return None
        row = await self._api.pool.fetchrow(
            MESSAGE_SQL + " WHERE tenant_id = $1 AND channel = $2 AND provider_message_id = $3",
            tenant,
            new.channel,
            new.provider_message_id,
        )
        return None if row is None else message_from_row(row)

    @cv.guarded
    async def PostCustomerMessage(
        self, request: conversation_service_pb2.PostCustomerMessageRequest, context: cv.Ctx
    ) -> conversation_service_pb2.PostCustomerMessageResponse:
        tenant = self._gateway(context).tenant
        conversation_id = cv.parse_conversation(request.conversation)
        validate_text(request.text, request.attachments)
        conversation = await load_conversation(self._api.pool, tenant, conversation_id)
        new = NewMessage(
            tenant=tenant,
            conversation_id=conversation_id,
            channel=conversation.channel,
            sender="customer",
            content=request.text,
            provider_message_id=request.provider_message_id or None,
            attachments=attachments_from_proto(request.attachments),
            created_at=cv.from_timestamp(request.send_time)
            if request.HasField("send_time")
            else None,
        )
        if is_closed(conversation):
            # a redelivery of a message stored before the conversation closed is still answered
            original = await self._original(tenant, new)
            if original is None:
                raise FailedPrecondition(f"conversation {conversation_id!r} is closed")
            return conversation_service_pb2.PostCustomerMessageResponse(
                message=message_to_proto(original), duplicate=True
            )
        stored, duplicate = await record_message(self._api, self._messages, new, m.Sender.CUSTOMER)
        return conversation_service_pb2.PostCustomerMessageResponse(
            message=message_to_proto(stored), duplicate=duplicate
        )

    @cv.guarded
    async def PostBotMessage(
        self, request: conversation_service_pb2.PostBotMessageRequest, context: cv.Ctx
    ) -> conversation_service_pb2.PostBotMessageResponse:
        tenant = self._gateway(context).tenant
        conversation_id = cv.parse_conversation(request.conversation)
        validate_text(request.text, request.attachments)
        conversation = await self._open(tenant, conversation_id)
        if conversation.state != conversation_pb2.CONVERSATION_STATE_BOT:
            raise FailedPrecondition(f"conversation {conversation_id!r} is not with the bot")
        stored, duplicate = await record_message(
            self._api,
            self._messages,
            NewMessage(
                tenant=tenant,
                conversation_id=conversation_id,
                channel=conversation.channel,
                sender="bot",
                content=request.text,
                provider_message_id=f"request:{request.request_id}" if request.request_id else None,
                attachments=attachments_from_proto(request.attachments),
            ),
            m.Sender.BOT,
        )
        return conversation_service_pb2.PostBotMessageResponse(
            message=message_to_proto(stored), duplicate=duplicate
        )

    @cv.guarded
    async def RequestAgent(
        self, request: conversation_service_pb2.RequestAgentRequest, context: cv.Ctx
    ) -> conversation_service_pb2.RequestAgentResponse:
        tenant = self._gateway(context).tenant
        conversation_id = cv.parse_conversation(request.conversation)
        cv.check(
            await self._api.submit(
                c.RequestAgent(
                    tenant=tenant,
                    conversation_id=conversation_id,
                    queue_id=cv.parse_queue(request.queue) if request.queue else None,
                    priority=request.priority if request.HasField("priority") else None,
                )
            )
        )
        conversation = await load_conversation(self._api.pool, tenant, conversation_id)
        return conversation_service_pb2.RequestAgentResponse(conversation=conversation)

    @cv.guarded
    async def LeaveConversation(
        self, request: conversation_service_pb2.LeaveConversationRequest, context: cv.Ctx
    ) -> conversation_service_pb2.LeaveConversationResponse:
        tenant = self._gateway(context).tenant
        conversation_id = cv.parse_conversation(request.conversation)
        cv.check(
            await self._api.submit(c.CustomerLeft(tenant=tenant, conversation_id=conversation_id))
        )
        conversation = await load_conversation(self._api.pool, tenant, conversation_id)
        return conversation_service_pb2.LeaveConversationResponse(conversation=conversation)

    @cv.guarded
    async def NotifyTyping(
        self, request: conversation_service_pb2.NotifyTypingRequest, context: cv.Ctx
    ) -> conversation_service_pb2.NotifyTypingResponse:
        """Relayed to the owning agent's stream (``TypingChanged``)."""
        tenant = self._gateway(context).tenant
        conversation_id = cv.parse_conversation(request.conversation)
        await load_conversation(self._api.pool, tenant, conversation_id)
        cv.check(
            await self._api.submit(
                c.NotifyTyping(
                    tenant=tenant,
                    conversation_id=conversation_id,
                    typist=m.Sender.CUSTOMER,
                    active=request.active,
                )
            )
        )
        return conversation_service_pb2.NotifyTypingResponse()

    @cv.guarded
    async def MarkRead(
        self, request: conversation_service_pb2.MarkReadRequest, context: cv.Ctx
    ) -> conversation_service_pb2.MarkReadResponse:
        """Relayed to the owning agent's stream (``ReceiptRecorded``)."""
        tenant = self._gateway(context).tenant
        conversation_id, message_id = cv.parse_message(request.message)
        record = await load_message(self._api.pool, tenant, message_id)
        if record.conversation_id != conversation_id:
            raise NotFound(f"message {request.message!r} not found")
        delivered = request.status == conversation_pb2.RECEIPT_STATUS_DELIVERED
        cv.check(
            await self._api.submit(
                c.RecordReceipt(
                    tenant=tenant,
                    conversation_id=conversation_id,
                    reader=m.Sender.CUSTOMER,
                    message_id=message_id,
                    status="delivered" if delivered else "read",
                )
            )
        )
        return conversation_service_pb2.MarkReadResponse()

    @cv.guarded
    async def FetchGatewayChannels(
        self, request: conversation_service_pb2.FetchGatewayChannelsRequest, context: cv.Ctx
    ) -> conversation_service_pb2.FetchGatewayChannelsResponse:
        tenant = self._gateway(context).tenant
        if request.type not in CHANNEL_TYPE_OF:
            raise InvalidArgument("name the channel type to serve", field="type")
        found = await self._channels.list_for_gateway(tenant, CHANNEL_TYPE_OF[request.type])
        return conversation_service_pb2.FetchGatewayChannelsResponse(
            webhook_namespace=tenant, channels=[channel_to_proto(ch) for ch in found]
        )

    @cv.guarded_stream
    async def StreamOutbound(
        self, request: conversation_service_pb2.StreamOutboundRequest, context: cv.Ctx
    ) -> AsyncIterator[conversation_service_pb2.StreamOutboundResponse]:
        tenant = self._gateway(context).tenant
        after = request.resume_after_event_id or None
        subscription = self._api.feeds.feed(tenant).subscribe(after, accepts=for_customers)
        try:
            async for item in subscription:
                payloads = await outbound_items(
                    self._api, self._messages, tenant, item.event_id, item.event
                )
                if not payloads:
                    continue
                conversation_id = getattr(item.event, "conversation_id", "")
                target = await self._targets.get(tenant, conversation_id)
                if target is None:
                    continue
                channel, external_id = target
                if request.channel and channel != request.channel:
                    continue
                items = [
                    conversation_service_pb2.OutboundItem(
                        event_id=item.event_id,
                        conversation=cv.conversation_name(conversation_id),
                        channel=channel,
                        external_id=external_id,
                        time=cv.timestamp(item.event.at),
                        **payload,
                    )
                    for payload in payloads
                ]
                yield conversation_service_pb2.StreamOutboundResponse(items=items)
        finally:
            subscription.close()
