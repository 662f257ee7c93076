"""AgentService: the agent consoles' door. Every call acts as the agent the credential names.

Contracts:

- Commands are the engine's; a refused one answers with its code and changes nothing. An offer
  that is gone (taken, expired, rescinded) answers ``FAILED_PRECONDITION`` with reason
  ``OFFER_GONE``; of two agents accepting one broadcast offer exactly one wins.
- ``SendMessage`` stores the message (idempotent on ``request_id``, kept as the message's
  provider id ``request:{request_id}``) before it submits ``RecordMessage``.
- ``StreamEvents`` is the tenant feed filtered for the agent, with the feed's event ids (so a
  resume loses nothing and repeats nothing): offers made to them, offers of theirs that ended,
  transfers to or from them, reminders, status changes, assignment changes and customer
  messages in the conversations they own. Opened at 0 it first sends their open offers in one
  response, all with the current feed position as ``event_id`` (they are state, not events; a
  client that drops repeated ids, like the SDK's stream, keeps only the first of them).
- ``NotifyTyping`` / ``MarkRead`` become engine events relayed to the customer's gateway on
  ``StreamOutbound``; the customer's typing and reads arrive on the agent's stream.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any, Final

import asyncpg
from usher.v1 import (
    agent_pb2,
    agent_service_pb2,
    agent_service_pb2_grpc,
    conversation_pb2,
    routing_pb2,
)

from core.api import convert as cv
from core.api.context import ApiContext, Caller
from core.api.conversations import (
    CONVERSATION_SQL,
    CallerOf,
    attachments_from_proto,
    conversation_from_row,
    default_caller,
    load_conversation,
    message_to_proto,
    receipt,
    record_message,
    validate_text,
)
from core.api.messages import MessageIndex, load_message
from core.routing import commands as c
from core.routing import events as ev
from core.routing import model as m
from core.routing.errors import InvalidArgument, NotFound, PermissionDenied
from core.store.ingest import NewMessage
from core.store.records import decode_page_token, encode_page_token

_HELD = ("active", "wrap_up")


async def load_agent(pool: asyncpg.Pool, tenant: str, agent_id: str) -> agent_pb2.Agent:
    """The stored agent (``NotFound`` if none). ``load`` is not stored and stays 0."""
    row = await pool.fetchrow(
        """SELECT agent_id, profile, status, custom_status, updated_at FROM agents
           WHERE tenant_id = $1 AND agent_id = $2 AND removed_at IS NULL""",
        tenant,
        agent_id,
    )
    if row is None:
        raise NotFound(f"agent {agent_id!r} not found", agent=agent_id)
    profile = json.loads(row["profile"])
    out = agent_pb2.Agent(
        name=cv.agent_name(agent_id),
        display_name=str(profile.get("name", "")),
        skills=[
            agent_pb2.SkillLevel(skill=f"skills/{skill}", level=int(level))
            for skill, level in sorted(dict(profile.get("skills", {})).items())
        ],
        capacity=float(profile.get("capacity", 0.0)),
        departments=[f"departments/{d}" for d in sorted(profile.get("departments", []))],
        status=cv.status_to_proto(row["status"]),
        custom_status=row["custom_status"] or "",
    )
    stamp = cv.timestamp(row["updated_at"])
    if stamp is not None:
        out.update_time.CopyFrom(stamp)
    return out


async def offer_proto(
    pool: asyncpg.Pool, tenant: str, offer_id: str, conversation_id: str, deadline: float | None
) -> routing_pb2.Offer:
    conversation = await load_conversation(pool, tenant, conversation_id)
    row = await pool.fetchrow(
        "SELECT broadcast, deadline FROM offers WHERE tenant_id = $1 AND offer_id = $2",
        tenant,
        offer_id,
    )
    out = routing_pb2.Offer(
        name=cv.offer_name(offer_id),
        conversation=conversation.name,
        broadcast=bool(row["broadcast"]) if row is not None else False,
        queue=conversation.queue,
        channel=conversation.channel,
        customer=conversation.customer,
    )
    stamp = cv.timestamp(deadline if deadline is not None else (row and row["deadline"]))
    if stamp is not None:
        out.deadline.CopyFrom(stamp)
    return out


async def transfer_proto(pool: asyncpg.Pool, tenant: str, transfer_id: str) -> routing_pb2.Transfer:
    row = await pool.fetchrow(
        "SELECT * FROM transfers WHERE tenant_id = $1 AND transfer_id = $2", tenant, transfer_id
    )
    if row is None:
        raise NotFound(f"transfer {transfer_id!r} not found", transfer=transfer_id)
    target_name = {
        "agent": cv.agent_name(row["target_id"]),
        "queue": cv.queue_name(row["target_id"]),
        "department": f"departments/{row['target_id']}",
    }[row["target"]]
    out = routing_pb2.Transfer(
        name=cv.transfer_name(transfer_id),
        conversation=cv.conversation_name(row["conversation_id"]),
        from_agent=cv.agent_name(row["from_agent"]),
        note=row["note"],
        state=cv.transfer_state_to_proto(row["outcome"], row["target"]),
    )
    setattr(out, row["target"], target_name)
    for field, column in (("deadline", "deadline"), ("create_time", "requested_at")):
        stamp = cv.timestamp(row[column])
        if stamp is not None:
            getattr(out, field).CopyFrom(stamp)
    return out


class _AgentView:
    """What one agent's stream knows: their offers, transfers and owned conversations."""

    def __init__(self, api: ApiContext, tenant: str, agent_id: str) -> None:
        self.api = api
        self.tenant = tenant
        self.agent_id = agent_id
        self.offers: set[str] = set()
        self.transfers: set[str] = set()
        self.owned: set[str] = set()

    async def load(self) -> list[tuple[str, str]]:
        """Seed from the store; the agent's open offers as (offer id, conversation id)."""
        pool = self.api.pool
        self.owned = {
            r["conversation_id"]
            for r in await pool.fetch(
                """SELECT conversation_id FROM conversations
                   WHERE tenant_id = $1 AND owner_agent_id = $2""",
                self.tenant,
                self.agent_id,
            )
        }
        offers = await pool.fetch(
            """SELECT offer_id, conversation_id FROM offers WHERE tenant_id = $1
               AND outcome IS NULL AND $2 = ANY(agent_ids) ORDER BY made_at""",
            self.tenant,
            self.agent_id,
        )
        self.offers = {r["offer_id"] for r in offers}
        transfers = await pool.fetch(
            """SELECT transfer_id FROM transfers WHERE tenant_id = $1 AND outcome IS NULL
               AND (from_agent = $2 OR (target = 'agent' AND target_id = $2))""",
            self.tenant,
            self.agent_id,
        )
        self.transfers = {r["transfer_id"] for r in transfers}
        return [(r["offer_id"], r["conversation_id"]) for r in offers]

    def _assignment(
        self, conversation_id: str, state: m.ConversationState, reason: str
    ) -> dict[str, Any]:
        return {
            "assignment_changed": agent_service_pb2.AssignmentChanged(
                conversation=cv.conversation_name(conversation_id),
                state=cv.state_to_proto(state),
                reason=reason,
            )
        }

    async def translate(
        self, messages: MessageIndex, event_id: int, event: ev.Event
    ) -> dict[str, Any] | None:
        """The agent's view of one event (one AgentEvent payload), or None."""
        me, S = self.agent_id, m.ConversationState
        match event:
            case ev.OfferMade() if me in event.agent_ids:
                self.offers.add(event.offer_id)
                offer = await offer_proto(
                    self.api.pool,
                    self.tenant,
                    event.offer_id,
                    event.conversation_id,
                    event.deadline,
                )
                return {"offer": offer}
            case ev.OfferAccepted() if event.offer_id in self.offers:
                self.offers.discard(event.offer_id)
                if event.agent_id == me:
                    self.owned.add(event.conversation_id)
                    return self._assignment(event.conversation_id, S.ACTIVE, "offer_accepted")
                rescinded = agent_service_pb2.OfferRescinded(
                    offer=cv.offer_name(event.offer_id), reason="accepted_elsewhere"
                )
                return {"offer_rescinded": rescinded}
            case ev.OfferDeclined() if self.agent_id in event.agent_ids:
                self.offers.discard(event.offer_id)
                rescinded = agent_service_pb2.OfferRescinded(
                    offer=cv.offer_name(event.offer_id), reason=event.reason.value
                )
                return {"offer_rescinded": rescinded}
            case ev.ConversationAssigned():
                if event.agent_id == me:
                    self.owned.add(event.conversation_id)
                    return self._assignment(event.conversation_id, S.ACTIVE, event.via)
                if event.conversation_id in self.owned:
                    self.owned.discard(event.conversation_id)
                    return self._assignment(event.conversation_id, S.ACTIVE, "reassigned")
            case ev.TransferRequested() if me in (event.to_agent, event.from_agent):
                self.transfers.add(event.transfer_id)
                if event.to_agent == me:
                    transfer = await transfer_proto(self.api.pool, self.tenant, event.transfer_id)
                    return {"transfer_request": transfer}
            case ev.TransferResolved() if event.transfer_id in self.transfers:
                self.transfers.discard(event.transfer_id)
                transfer = await transfer_proto(self.api.pool, self.tenant, event.transfer_id)
                if event.outcome is m.TransferOutcome.ACCEPTED:
                    if transfer.agent == cv.agent_name(me):
                        self.owned.add(event.conversation_id)
                    else:
                        self.owned.discard(event.conversation_id)
                return {"transfer_resolved": transfer}
            case ev.ConversationTransferred() if event.conversation_id in self.owned:
                self.owned.discard(event.conversation_id)
                return self._assignment(event.conversation_id, S.QUEUED, "transfer")
            case ev.ConversationEnded() if event.conversation_id in self.owned:
                if event.wrap_up_until is not None:
                    return self._assignment(event.conversation_id, S.WRAP_UP, event.reason.value)
                self.owned.discard(event.conversation_id)
                return self._assignment(event.conversation_id, S.CLOSED, event.reason.value)
            case ev.WrapUpFinished() if event.conversation_id in self.owned:
                self.owned.discard(event.conversation_id)
                return self._assignment(event.conversation_id, S.CLOSED, "agent_ended")
            case ev.ConversationReturnedToBot() if event.conversation_id in self.owned:
                self.owned.discard(event.conversation_id)
                return self._assignment(event.conversation_id, S.BOT, "auto_mode")
            case ev.ConversationQueued() if event.conversation_id in self.owned:
                self.owned.discard(event.conversation_id)
                return self._assignment(event.conversation_id, S.QUEUED, event.reason.value)
            case ev.AgentIdleNotified() if event.agent_id == me:
                reminder = agent_service_pb2.Reminder(
                    kind=agent_service_pb2.REMINDER_KIND_AGENT_IDLE, since=cv.timestamp(event.at)
                )
                return {"reminder": reminder}
            case ev.AgentStatusChanged() if event.agent_id == me:
                changed = agent_service_pb2.StatusChanged(
                    status=cv.status_to_proto(event.status),
                    custom_status=event.custom_status or "",
                    reason=event.reason,
                )
                return {"status_changed": changed}
            case ev.TypingChanged(typist=m.Sender.CUSTOMER) if event.conversation_id in self.owned:
                return {"typing": conversation_pb2.Typing(active=event.active)}
            case ev.ReceiptRecorded(reader=m.Sender.CUSTOMER) if (
                event.conversation_id in self.owned
            ):
                return {"receipt": receipt(event)}
            case ev.MessageRecorded(sender=m.Sender.CUSTOMER | m.Sender.BOT) if (
                event.conversation_id in self.owned
            ):
                record = await messages.lookup(self.api.pool, self.tenant, event_id, event)
                if record is not None:
                    return {"message": message_to_proto(record)}
        return None


_SHOWN_TO_AGENTS: Final = (
    ev.OfferMade,
    ev.OfferAccepted,
    ev.OfferDeclined,
    ev.ConversationAssigned,
    ev.TransferRequested,
    ev.TransferResolved,
    ev.ConversationTransferred,
    ev.ConversationEnded,
    ev.WrapUpFinished,
    ev.ConversationReturnedToBot,
    ev.ConversationQueued,
    ev.AgentIdleNotified,
    ev.AgentStatusChanged,
    ev.TypingChanged,
    ev.ReceiptRecorded,
    ev.MessageRecorded,
)
"""The events ``_AgentView.translate`` has a case for; keep the two in step."""


def may_concern(me: str) -> Callable[[ev.Event], bool]:
    """A cheap, stateless prefilter of ``me``'s stream (``Subscription`` accepts): False only
    for events ``_AgentView.translate`` would surely ignore, so a tenant's many agent streams
    do not all wake for every event. Whatever depends on the view's state passes."""
    tests: dict[type, Callable[[Any], bool]] = dict.fromkeys(_SHOWN_TO_AGENTS, lambda _: True)
    tests |= {
        ev.OfferMade: lambda e: me in e.agent_ids,
        ev.OfferDeclined: lambda e: me in e.agent_ids,
        ev.AgentStatusChanged: lambda e: e.agent_id == me,
        ev.AgentIdleNotified: lambda e: e.agent_id == me,
        ev.TransferRequested: lambda e: me in (e.to_agent, e.from_agent),
        ev.MessageRecorded: lambda e: e.sender is not m.Sender.AGENT,
        ev.TypingChanged: lambda e: e.typist is m.Sender.CUSTOMER,
        ev.ReceiptRecorded: lambda e: e.reader is m.Sender.CUSTOMER,
    }

    def accepts(event: ev.Event) -> bool:
        test = tests.get(type(event))
        return test is not None and test(event)

    return accepts


class AgentServicer(agent_service_pb2_grpc.AgentServiceServicer):
    """AgentService over an ``ApiContext`` (role AGENT; supervisors may read)."""

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

    def _agent(self, context: cv.Ctx) -> tuple[str, str]:
        """(tenant, agent id) of an agent caller; ``PermissionDenied`` for anyone else."""
        who = self._caller_of(context)
        if who.role != "agent" or not who.agent_id:
            raise PermissionDenied("only an agent credential may do this")
        return who.tenant, who.agent_id

    def _reader(self, context: cv.Ctx) -> Caller:
        who = self._caller_of(context)
        if who.role == "agent" and not who.agent_id:
            raise PermissionDenied("an agent credential without an agent")
        return who

    async def _conversation(
        self, tenant: str, conversation_id: str
    ) -> conversation_pb2.Conversation:
        return await load_conversation(self._api.pool, tenant, conversation_id)

    @cv.guarded
    async def SetStatus(
        self, request: agent_service_pb2.SetStatusRequest, context: cv.Ctx
    ) -> agent_service_pb2.SetStatusResponse:
        tenant, me = self._agent(context)
        if request.custom_status:
            status = m.AgentStatus.AWAY  # replaced by the custom status's base
            if request.status != agent_pb2.AGENT_STATUS_UNSPECIFIED:
                status = cv.parse_status(request.status)
        else:
            status = cv.parse_status(request.status)
        cv.check(
            await self._api.submit(
                c.SetAgentStatus(
                    tenant=tenant,
                    agent_id=me,
                    status=status,
                    custom_status=request.custom_status or None,
                )
            )
        )
        return agent_service_pb2.SetStatusResponse(
            agent=await load_agent(self._api.pool, tenant, me)
        )

    @cv.guarded_stream
    async def StreamEvents(
        self, request: agent_service_pb2.StreamEventsRequest, context: cv.Ctx
    ) -> AsyncIterator[agent_service_pb2.StreamEventsResponse]:
        tenant, me = self._agent(context)
        feed = self._api.feeds.feed(tenant)
        view = _AgentView(self._api, tenant, me)
        after = request.resume_after_event_id or None
        subscription = feed.subscribe(after, accepts=may_concern(me))
        try:
            open_offers = await view.load()
            if after is None and open_offers:
                position = feed.last_id
                events = []
                for offer_id, conversation_id in open_offers:
                    offer = await offer_proto(
                        self._api.pool, tenant, offer_id, conversation_id, None
                    )
                    events.append(
                        agent_service_pb2.AgentEvent(
                            event_id=position, conversation=offer.conversation, offer=offer
                        )
                    )
                yield agent_service_pb2.StreamEventsResponse(events=events)
            async for item in subscription:
                payload = await view.translate(self._messages, item.event_id, item.event)
                if payload is None:
                    continue
                conversation_id = getattr(item.event, "conversation_id", "")
                event = agent_service_pb2.AgentEvent(
                    event_id=item.event_id,
                    time=cv.timestamp(item.event.at),
                    conversation=cv.conversation_name(conversation_id) if conversation_id else "",
                    **payload,
                )
                yield agent_service_pb2.StreamEventsResponse(events=[event])
        finally:
            subscription.close()

    @cv.guarded
    async def AcceptOffer(
        self, request: agent_service_pb2.AcceptOfferRequest, context: cv.Ctx
    ) -> agent_service_pb2.AcceptOfferResponse:
        tenant, me = self._agent(context)
        offer_id = cv.parse_offer(request.offer)
        await self._require_offer(tenant, offer_id)
        outcome = cv.check(
            await self._api.submit(c.AcceptOffer(tenant=tenant, offer_id=offer_id, agent_id=me)),
            gone_reason="OFFER_GONE",
        )
        accepted = next(e for e in outcome.events if isinstance(e, ev.OfferAccepted))
        return agent_service_pb2.AcceptOfferResponse(
            conversation=await self._conversation(tenant, accepted.conversation_id)
        )

    async def _require_offer(self, tenant: str, offer_id: str) -> None:
        found = await self._api.pool.fetchval(
            "SELECT 1 FROM offers WHERE tenant_id = $1 AND offer_id = $2", tenant, offer_id
        )
        if found is None:
            raise NotFound(f"offer {offer_id!r} not found", offer=offer_id)

    @cv.guarded
    async def RejectOffer(
        self, request: agent_service_pb2.RejectOfferRequest, context: cv.Ctx
    ) -> agent_service_pb2.RejectOfferResponse:
        tenant, me = self._agent(context)
        offer_id = cv.parse_offer(request.offer)
        await self._require_offer(tenant, offer_id)
        cv.check(
            await self._api.submit(c.RejectOffer(tenant=tenant, offer_id=offer_id, agent_id=me)),
            gone_reason="OFFER_GONE",
        )
        return agent_service_pb2.RejectOfferResponse()

    @cv.guarded
    async def TakeConversation(
        self, request: agent_service_pb2.TakeConversationRequest, context: cv.Ctx
    ) -> agent_service_pb2.TakeConversationResponse:
        tenant, me = self._agent(context)
        conversation_id = cv.parse_conversation(request.conversation)
        cv.check(
            await self._api.submit(
                c.TakeConversation(tenant=tenant, agent_id=me, conversation_id=conversation_id)
            )
        )
        return agent_service_pb2.TakeConversationResponse(
            conversation=await self._conversation(tenant, conversation_id)
        )

    @cv.guarded
    async def SendMessage(
        self, request: agent_service_pb2.SendMessageRequest, context: cv.Ctx
    ) -> agent_service_pb2.SendMessageResponse:
        tenant, me = self._agent(context)
        conversation_id = cv.parse_conversation(request.conversation)
        validate_text(request.text, request.attachments)
        conversation = await self._conversation(tenant, conversation_id)
        stored, duplicate = await record_message(
            self._api,
            self._messages,
            NewMessage(
                tenant=tenant,
                conversation_id=conversation_id,
                channel=conversation.channel,
                sender="agent",
                agent_id=me,
                content=request.text,
                provider_message_id=f"request:{request.request_id}" if request.request_id else None,
                attachments=attachments_from_proto(request.attachments),
            ),
            m.Sender.AGENT,
        )
        return agent_service_pb2.SendMessageResponse(
            message=message_to_proto(stored), duplicate=duplicate
        )

    @cv.guarded
    async def RequestTransfer(
        self, request: agent_service_pb2.RequestTransferRequest, context: cv.Ctx
    ) -> agent_service_pb2.RequestTransferResponse:
        tenant, me = self._agent(context)
        conversation_id = cv.parse_conversation(request.conversation)
        which = request.WhichOneof("target")
        if which == "agent":
            target, target_id = m.TransferTarget.AGENT, cv.parse_agent(request.agent)
        elif which == "queue":
            target, target_id = m.TransferTarget.QUEUE, cv.parse_queue(request.queue)
        elif which == "department":
            target = m.TransferTarget.DEPARTMENT
            target_id = cv.parse_name("departments", request.department, field="department")
        else:
            raise InvalidArgument("a transfer needs a target", field="target")
        outcome = cv.check(
            await self._api.submit(
                c.RequestTransfer(
                    tenant=tenant,
                    agent_id=me,
                    conversation_id=conversation_id,
                    target=target,
                    target_id=target_id,
                    note=request.note,
                )
            )
        )
        transfer_id = next(
            e.transfer_id
            for e in outcome.events
            if isinstance(e, ev.TransferRequested | ev.ConversationTransferred)
        )
        return agent_service_pb2.RequestTransferResponse(
            transfer=await transfer_proto(self._api.pool, tenant, transfer_id)
        )

    @cv.guarded
    async def AnswerTransfer(
        self, request: agent_service_pb2.AnswerTransferRequest, context: cv.Ctx
    ) -> agent_service_pb2.AnswerTransferResponse:
        tenant, me = self._agent(context)
        transfer_id = cv.parse_transfer(request.transfer)
        await transfer_proto(self._api.pool, tenant, transfer_id)  # NOT_FOUND first
        cv.check(
            await self._api.submit(
                c.AnswerTransfer(
                    tenant=tenant, agent_id=me, transfer_id=transfer_id, accept=request.accept
                )
            )
        )
        return agent_service_pb2.AnswerTransferResponse(
            transfer=await transfer_proto(self._api.pool, tenant, transfer_id)
        )

    @cv.guarded
    async def CancelTransfer(
        self, request: agent_service_pb2.CancelTransferRequest, context: cv.Ctx
    ) -> agent_service_pb2.CancelTransferResponse:
        tenant, me = self._agent(context)
        transfer_id = cv.parse_transfer(request.transfer)
        await transfer_proto(self._api.pool, tenant, transfer_id)
        cv.check(
            await self._api.submit(
                c.CancelTransfer(tenant=tenant, agent_id=me, transfer_id=transfer_id)
            )
        )
        return agent_service_pb2.CancelTransferResponse(
            transfer=await transfer_proto(self._api.pool, tenant, transfer_id)
        )

    @cv.guarded
    async def SetConversationMode(
        self, request: agent_service_pb2.SetConversationModeRequest, context: cv.Ctx
    ) -> agent_service_pb2.SetConversationModeResponse:
        tenant, me = self._agent(context)
        conversation_id = cv.parse_conversation(request.conversation)
        mode = cv.parse_mode(request.mode)
        cv.check(
            await self._api.submit(
                c.SetMode(tenant=tenant, agent_id=me, conversation_id=conversation_id, mode=mode)
            )
        )
        return agent_service_pb2.SetConversationModeResponse(
            conversation=await self._conversation(tenant, conversation_id)
        )

    @cv.guarded
    async def EndConversation(
        self, request: agent_service_pb2.EndConversationRequest, context: cv.Ctx
    ) -> agent_service_pb2.EndConversationResponse:
        tenant, me = self._agent(context)
        conversation_id = cv.parse_conversation(request.conversation)
        outcome = cv.parse_outcome(request.outcome)
        cv.check(
            await self._api.submit(
                c.EndConversation(
                    tenant=tenant, agent_id=me, conversation_id=conversation_id, outcome=outcome
                )
            )
        )
        return agent_service_pb2.EndConversationResponse(
            conversation=await self._conversation(tenant, conversation_id)
        )

    @cv.guarded
    async def FinishWrapUp(
        self, request: agent_service_pb2.FinishWrapUpRequest, context: cv.Ctx
    ) -> agent_service_pb2.FinishWrapUpResponse:
        tenant, me = self._agent(context)
        conversation_id = cv.parse_conversation(request.conversation)
        cv.check(
            await self._api.submit(
                c.FinishWrapUp(tenant=tenant, agent_id=me, conversation_id=conversation_id)
            )
        )
        return agent_service_pb2.FinishWrapUpResponse(
            conversation=await self._conversation(tenant, conversation_id)
        )

    @cv.guarded
    async def AddNote(
        self, request: agent_service_pb2.AddNoteRequest, context: cv.Ctx
    ) -> agent_service_pb2.AddNoteResponse:
        tenant, me = self._agent(context)
        conversation_id = cv.parse_conversation(request.conversation)
        cv.require(request.text, "text")
        await self._conversation(tenant, conversation_id)
        note = await self._api.records.add_note(tenant, conversation_id, me, request.text)
        return agent_service_pb2.AddNoteResponse(
            note=conversation_pb2.Note(
                name=f"{cv.conversation_name(conversation_id)}/notes/{note.note_id}",
                author=cv.agent_name(me),
                text=note.body,
                create_time=cv.timestamp(note.created_at),
            )
        )

    @cv.guarded
    async def UpdateTags(
        self, request: agent_service_pb2.UpdateTagsRequest, context: cv.Ctx
    ) -> agent_service_pb2.UpdateTagsResponse:
        tenant, _ = self._agent(context)
        conversation_id = cv.parse_conversation(request.conversation)
        if any(not t for t in (*request.add_tags, *request.remove_tags)):
            raise InvalidArgument("a tag cannot be empty", field="add_tags")
        cv.check(
            await self._api.submit(
                c.TagConversation(
                    tenant=tenant,
                    conversation_id=conversation_id,
                    add=frozenset(request.add_tags),
                    remove=frozenset(request.remove_tags),
                )
            )
        )
        conversation = await self._conversation(tenant, conversation_id)
        return agent_service_pb2.UpdateTagsResponse(tags=list(conversation.tags))

    @cv.guarded
    async def ListMyConversations(
        self, request: agent_service_pb2.ListMyConversationsRequest, context: cv.Ctx
    ) -> agent_service_pb2.ListMyConversationsResponse:
        """Conversations the agent owns (or, with ``states``, last served in those states),
        most recently assigned first."""
        tenant, me = self._agent(context)
        size = request.page_size or 50
        if not 1 <= size <= 500:
            raise InvalidArgument("page_size must be 1 to 500", field="page_size")
        states = [cv.parse_state(s).value for s in request.states] or list(_HELD)
        args: list[Any] = [tenant, me, states]
        where = "c.tenant_id = $1 AND c.last_agent_id = $2 AND c.state = ANY($3::text[])"
        if request.page_token:
            at, conversation_id = decode_page_token(request.page_token)
            args += [at, conversation_id]
            where += " AND (coalesce(c.assigned_at, c.created_at), c.conversation_id) < ($4, $5)"
        rows = await self._api.pool.fetch(
            f"{CONVERSATION_SQL} WHERE {where}"
            f" ORDER BY coalesce(c.assigned_at, c.created_at) DESC, c.conversation_id DESC"
            f" LIMIT {size + 1}",
            *args,
        )
        token = ""
        if len(rows) > size:
            last = rows[size - 1]
            token = encode_page_token(
                last["assigned_at"] or last["created_at"], last["conversation_id"]
            )
        return agent_service_pb2.ListMyConversationsResponse(
            conversations=[conversation_from_row(r) for r in rows[:size]], next_page_token=token
        )

    @cv.guarded
    async def GetConversation(
        self, request: agent_service_pb2.GetConversationRequest, context: cv.Ctx
    ) -> agent_service_pb2.GetConversationResponse:
        who = self._reader(context)
        conversation_id = cv.parse_conversation(request.name, "name")
        return agent_service_pb2.GetConversationResponse(
            conversation=await self._conversation(who.tenant, conversation_id)
        )

    @cv.guarded
    async def ListMessages(
        self, request: agent_service_pb2.ListMessagesRequest, context: cv.Ctx
    ) -> agent_service_pb2.ListMessagesResponse:
        """The transcript, oldest first; the page token is the last message id sent."""
        who = self._reader(context)
        conversation_id = cv.parse_conversation(request.parent, "parent")
        size = request.page_size or 100
        if not 1 <= size <= 500:
            raise InvalidArgument("page_size must be 1 to 500", field="page_size")
        after = 0
        if request.page_token:
            if not request.page_token.isdigit():
                raise InvalidArgument("the page token is not one this list issued")
            after = int(request.page_token)
        await self._conversation(who.tenant, conversation_id)
        transcript = await self._api.records.transcript(who.tenant, conversation_id)
        rest = [r for r in transcript if r.message_id > after]
        page = rest[:size]
        token = str(page[-1].message_id) if len(rest) > size else ""
        return agent_service_pb2.ListMessagesResponse(
            messages=[message_to_proto(r) for r in page], next_page_token=token
        )

    @cv.guarded
    async def NotifyTyping(
        self, request: agent_service_pb2.AgentServiceNotifyTypingRequest, context: cv.Ctx
    ) -> agent_service_pb2.AgentServiceNotifyTypingResponse:
        tenant, agent_id = self._agent(context)
        conversation_id = cv.parse_conversation(request.conversation)
        await self._conversation(tenant, conversation_id)
        command = c.NotifyTyping(
            tenant=tenant,
            conversation_id=conversation_id,
            typist=m.Sender.AGENT,
            active=request.active,
            agent_id=agent_id,
        )
        cv.check(await self._api.submit(command))
        return agent_service_pb2.AgentServiceNotifyTypingResponse()

    @cv.guarded
    async def MarkRead(
        self, request: agent_service_pb2.AgentServiceMarkReadRequest, context: cv.Ctx
    ) -> agent_service_pb2.AgentServiceMarkReadResponse:
        tenant, agent_id = self._agent(context)
        conversation_id, message_id = cv.parse_message(request.message)
        record = await load_message(self._api.pool, tenant, message_id)
        if record.conversation_id != conversation_id:
            raise NotFound(f"message {request.message!r} not found")
        command = c.RecordReceipt(
            tenant=tenant,
            conversation_id=conversation_id,
            reader=m.Sender.AGENT,
            message_id=message_id,
            status="read",
            agent_id=agent_id,
        )
        cv.check(await self._api.submit(command))
        return agent_service_pb2.AgentServiceMarkReadResponse()
