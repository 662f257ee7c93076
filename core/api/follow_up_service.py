"""FollowUpService: left messages (a list with a handled flag, answered by reopening them toward
the customer) and conversations an agent starts with a known customer.

Contracts:

- The handled flag is not routing state: ``core.store.follow_ups`` writes it. Conversations
  change only through the engine: answering and starting are one command each
  (``OpenForAgent``), so the conversation is the agent's atomically, offered to no one else
  meanwhile, whatever its queue's hours (the engine refuses a signed-out or full agent, or one
  who meets no step of the queue, and then nothing changes).
- A closed conversation the engine no longer holds (past the tenant's retention) cannot be
  reopened; answering it starts a follow-up conversation with the same customer on the same
  channel instead (tagged ``follow_up``), which the answer returns.
- Before anything is submitted: an agent must serve the queue (``core.api.policy``, relation
  QUEUE_MEMBER, for a left message; ``core.store.access.serves`` for a start); the channel must
  reach the customer now (WhatsApp: within 24 hours of their last message, else
  FAILED_PRECONDITION ``CHANNEL_WINDOW_CLOSED``); a blocked customer is not started with.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Final

from usher.v1 import follow_up_service_pb2 as pb
from usher.v1 import follow_up_service_pb2_grpc as pb_grpc

from core.api import convert as cv
from core.api import door, policy, profiles
from core.api import resources as res
from core.api.admin import page_size
from core.api.auth import caller
from core.api.context import ApiContext, Caller
from core.api.conversation_access import authorize, who_acts
from core.api.conversations import validate_key
from core.routing import commands as c
from core.routing import model as m
from core.routing.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from core.runtime.shard import Outcome
from core.store.access import Access, serves
from core.store.admin import AdminStore, StoredQueue
from core.store.blocklist import sender_keys
from core.store.channels import Channels
from core.store.errors import InvalidInput
from core.store.follow_ups import (
    FollowUps,
    Position,
    decode_position,
    encode_position,
    fingerprint,
)

Ctx = Any  # grpc.aio.ServicerContext

WHATSAPP_WINDOW: Final = dt.timedelta(hours=24)
FOLLOW_UP_TAG: Final = "follow_up"
_QUEUE_PAGE: Final = 500


def _who(who: Caller) -> str:
    return f"agents/{who.agent_id}" if who.agent_id else f"credentials/{who.credential_id}"


def left_message_to_proto(row: Any) -> pb.LeftMessage:
    return pb.LeftMessage(
        conversation=res.conversation_from_row(row),
        handled=row["handled_at"] is not None,
        handle_time=cv.timestamp(row["handled_at"]),
        handler=row["handled_by"] or "",
        last_inbound_time=cv.timestamp(row["last_inbound_at"]),
    )


class FollowUpServicer(pb_grpc.FollowUpServiceServicer):
    """FollowUpService over an ``ApiContext`` (agents, supervisors, admins)."""

    def __init__(self, api: ApiContext) -> None:
        self._api = api
        self._access = Access(api.pool)
        self._store = FollowUps(api.pool)
        self._admin = AdminStore(api.pool)
        self._channels = Channels(api.pool)

    # --- the left messages ------------------------------------------------------------------

    @cv.guarded
    async def ListLeftMessages(
        self, request: pb.ListLeftMessagesRequest, context: Ctx
    ) -> pb.ListLeftMessagesResponse:
        who = who_acts(caller(context))
        size = await page_size(context, request.page_size)
        scope = fingerprint(who.tenant, who.role, who.agent_id, request.unhandled_only)
        after = None
        if request.page_token:
            try:
                after = decode_position(request.page_token, scope)
            except InvalidInput as exc:
                raise InvalidArgument(str(exc), field="page_token") from None
        queues = None
        if who.role == policy.Role.AGENT:
            queues = [q.queue_id for q in await self._served_queues(who)]
        rows = await self._store.left_messages(
            who.tenant,
            queues=queues,
            unhandled_only=request.unhandled_only,
            after=after,
            size=size + 1,
        )
        page = rows[:size]
        more = len(rows) > size
        return pb.ListLeftMessagesResponse(
            left_messages=[left_message_to_proto(row) for row in page],
            next_page_token=encode_position(Position.of(page[-1]), scope) if more else "",
        )

    async def _served_queues(self, who: Caller) -> list[StoredQueue]:
        """The queues the agent serves (some step of their plan admits the agent)."""
        assert who.agent_id is not None
        agent = await self._admin.agent(who.tenant, who.agent_id)
        if agent is None:
            return []
        served: list[StoredQueue] = []
        after = ""
        while True:
            page = await self._admin.queues(who.tenant, after, _QUEUE_PAGE)
            served += [q for q in page if serves(q.settings, agent.profile)]
            if len(page) < _QUEUE_PAGE:
                return served
            after = page[-1].queue_id

    async def _left_message(self, who: Caller, rpc: str, conversation_id: str) -> Any:
        """The left message, once the policy lets ``who`` call ``rpc`` on it."""
        await authorize(self._access, who, rpc, conversation_id)
        row = await self._store.left_message(who.tenant, conversation_id)
        if row is None:
            if await self._api.reads.conversation(who.tenant, conversation_id) is None:
                raise NotFound(
                    f"conversation {conversation_id!r} not found", conversation_id=conversation_id
                )
            raise FailedPrecondition(
                "the conversation is not a closed left message",
                conversation_id=conversation_id,
                reason="NOT_A_LEFT_MESSAGE",
            )
        return row

    @cv.guarded
    async def MarkLeftMessageHandled(
        self, request: pb.MarkLeftMessageHandledRequest, context: Ctx
    ) -> pb.MarkLeftMessageHandledResponse:
        who = who_acts(caller(context))
        conversation_id = cv.parse_conversation(request.conversation)
        await self._left_message(who, "FollowUpService.MarkLeftMessageHandled", conversation_id)
        await self._store.mark(who.tenant, conversation_id, handled=request.handled, by=_who(who))
        row = await self._store.left_message(who.tenant, conversation_id)
        if row is None:  # answered meanwhile
            raise FailedPrecondition(
                "the conversation is no longer a closed left message",
                conversation_id=conversation_id,
                reason="NOT_A_LEFT_MESSAGE",
            )
        return pb.MarkLeftMessageHandledResponse(left_message=left_message_to_proto(row))

    @cv.guarded
    async def AnswerLeftMessage(
        self, request: pb.AnswerLeftMessageRequest, context: Ctx
    ) -> pb.AnswerLeftMessageResponse:
        who = who_acts(caller(context))
        conversation_id = cv.parse_conversation(request.conversation)
        agent_id = self._owner(who, request.agent)
        row = await self._left_message(who, "FollowUpService.AnswerLeftMessage", conversation_id)
        await self._require_reachable(who.tenant, row["customer_id"], row["channel"])
        profile = await profiles.read(
            self._api, who.tenant, row["customer_id"], excluding=conversation_id
        )
        outcome = await self._api.submit(
            self._open(who, conversation_id, agent_id, card=m.CustomerCard(profile=profile))
        )
        failure = outcome.failure
        if (
            failure is not None
            and failure.code == "NOT_FOUND"
            and failure.details.get("conversation_id") == conversation_id
        ):  # the engine let it go: follow up in a new conversation (a fresh id each time)
            outcome = await self._api.submit(
                self._open(
                    who,
                    uuid.uuid4().hex,
                    agent_id,
                    channel=row["channel"],
                    customer_id=row["customer_id"],
                    card=m.CustomerCard(
                        external_id=row["external_id"] or "",
                        name=row["customer_name"] or "",
                        phone=row["customer_phone"] or "",
                        email=row["customer_email"] or "",
                        profile=await profiles.read(self._api, who.tenant, row["customer_id"]),
                    ),
                    queue_id=row["queue_id"],
                    region=row["region"],
                    language=row["language"],
                )
            )
        self._raise_open(outcome)
        cv.check(outcome)
        await self._store.mark(who.tenant, conversation_id, handled=True, by=_who(who))
        return pb.AnswerLeftMessageResponse(conversation=door.conversation_of(outcome))

    # --- agent-started conversations ----------------------------------------------------------

    @cv.guarded
    async def StartConversationWithCustomer(
        self, request: pb.StartConversationWithCustomerRequest, context: Ctx
    ) -> pb.StartConversationWithCustomerResponse:
        who = who_acts(caller(context))
        customer_id = cv.parse_name("customers", request.customer, field="customer")
        channel = cv.require(request.channel, "channel")
        queue_id = cv.parse_queue(request.queue)
        validate_key(request.request_id, "request_id")
        agent_id = self._owner(who, request.agent)
        queue = await self._admin.queue(who.tenant, queue_id)
        if queue is None:
            raise NotFound(f"queue {queue_id!r} not found", queue_id=queue_id)
        if who.role == policy.Role.AGENT:
            agent = await self._admin.agent(who.tenant, agent_id)
            if agent is None or not serves(queue.settings, agent.profile):
                raise PermissionDenied("an agent starts conversations in a queue they serve")
        identity = await self._store.identity(who.tenant, customer_id, channel)
        if identity is None:
            raise NotFound(
                f"customer {customer_id!r} has no identity on channel {channel!r}",
                resource_type="usher.v1.Customer",
                resource_name=f"customers/{customer_id}",
            )
        await self._require_not_blocked(who.tenant, customer_id, identity.external_id)
        await self._require_reachable(who.tenant, customer_id, channel)
        key = request.request_id or uuid.uuid4().hex
        conversation_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{who.tenant}/outbound/{key}"))
        if await self._api.reads.conversation(who.tenant, conversation_id) is None:
            outcome = await self._api.submit(
                self._open(
                    who,
                    conversation_id,
                    agent_id,
                    channel=channel,
                    customer_id=customer_id,
                    card=m.CustomerCard(
                        external_id=identity.external_id,
                        name=identity.name,
                        phone=identity.phone,
                        email=identity.email,
                        profile=await profiles.read(self._api, who.tenant, customer_id),
                    ),
                    queue_id=queue_id,
                )
            )
            failure = outcome.failure
            if failure is None or failure.details.get("conversation_id") != conversation_id:
                self._raise_open(outcome)
                cv.check(outcome)
                return pb.StartConversationWithCustomerResponse(
                    conversation=door.conversation_of(outcome)
                )
        # this request started it before: answer with the conversation as it is now
        return pb.StartConversationWithCustomerResponse(
            conversation=await door.stored_conversation(self._api, who.tenant, conversation_id)
        )

    # --- shared steps -------------------------------------------------------------------------

    @staticmethod
    def _owner(who: Caller, agent: str) -> str:
        """The agent who will own the conversation: the calling agent (who may name only
        themselves), or the agent a supervisor or admin names."""
        if who.role == policy.Role.AGENT:
            assert who.agent_id is not None
            if agent and cv.parse_agent(agent) != who.agent_id:
                raise PermissionDenied("an agent answers for themselves")
            return who.agent_id
        if not agent:
            raise InvalidArgument("name the agent who will own it", field="agent")
        return cv.parse_agent(agent)

    async def _require_not_blocked(self, tenant: str, customer_id: str, external_id: str) -> None:
        keys = sender_keys(customer_id=customer_id, external_id=external_id)
        if await self._api.blocklist.match(tenant, keys) is not None:
            raise FailedPrecondition("the customer is blocked", reason="CUSTOMER_BLOCKED")

    async def _require_reachable(self, tenant: str, customer_id: str, channel: str) -> None:
        """FAILED_PRECONDITION when the channel cannot carry a free-form message to the
        customer now (WhatsApp: 24 hours after their last message)."""
        stored = await self._channels.get(tenant, channel)
        kind = stored.type if stored is not None else channel
        if kind != "whatsapp":
            return
        last = await self._store.last_inbound(tenant, customer_id, channel)
        if last is None or dt.datetime.now(dt.UTC) - last > WHATSAPP_WINDOW:
            raise FailedPrecondition(
                "WhatsApp reaches a customer only within 24 hours of their last message; "
                "send a template first",
                reason="CHANNEL_WINDOW_CLOSED",
            )

    @staticmethod
    def _open(
        who: Caller,
        conversation_id: str,
        agent_id: str,
        *,
        channel: str = "",
        customer_id: str = "",
        card: m.CustomerCard | None = None,
        queue_id: str | None = None,
        region: str = "",
        language: str = "",
    ) -> c.OpenForAgent:
        """The engine command: reopen ``conversation_id`` (naming nothing else: only the card's
        profile counts) or start it."""
        return c.OpenForAgent(
            tenant=who.tenant,
            conversation_id=conversation_id,
            agent_id=agent_id,
            by=who.agent_id or who.credential_id or who.role,
            channel=channel,
            customer_id=customer_id,
            queue_id=queue_id,
            region=region,
            language=language,
            tags=frozenset({FOLLOW_UP_TAG}) if channel else frozenset(),
            customer=card or m.CustomerCard(),
        )

    @staticmethod
    def _raise_open(outcome: Outcome) -> None:
        """ALREADY_EXISTS naming the customer's open conversation on the channel, if that is
        why the engine refused."""
        failure = outcome.failure
        if failure is None or failure.code != "ALREADY_EXISTS":
            return
        open_one = failure.details.get("open_conversation")
        if open_one is not None:
            raise AlreadyExists(
                failure.message,
                reason="OPEN_CONVERSATION",
                resource_type="usher.v1.Conversation",
                resource_name=cv.conversation_name(open_one),
            )
