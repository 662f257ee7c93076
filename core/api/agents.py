"""AgentService: the agent consoles' door. Every call acts as the agent the credential names.

Contracts:

- Who may read or change which conversation is ``core.api.policy``'s one table: an agent reads
  what it owns, was offered, served, is a transfer's party to or waits in a queue it serves
  (else NOT_FOUND, exactly as a missing conversation) and changes what its relation allows
  (else PERMISSION_DENIED, nothing stored); supervisors and admins may read any of their
  tenant's. SILENT (monitoring) is the supervisors' and refused to agents.
- Commands are the engine's; a refused one answers with its code and changes nothing. An offer
  that is gone (taken, expired, rescinded) answers ``FAILED_PRECONDITION`` with reason
  ``OFFER_GONE``; one that never existed ``NOT_FOUND``; of two agents accepting one broadcast
  offer exactly one wins. Answers are built from the command's outcome, not read back.
- ``SendMessage`` records the message with its command (idempotent on ``request_id``, kept as
  the message's key ``request:{request_id}``); refused, it stores nothing. With
  ``canned_reply_id`` the door renders the reply for the conversation and counts its use once
  per message (``core.api.canned_messages``).
- ``StreamEvents`` is the tenant feed seen by the agent (``core.api.agent_view``), with the
  feed's event ids, so a resume loses nothing and repeats nothing. Opened at 0 it first sends
  their open offers in one response, all with the current feed position as ``event_id`` (they
  are state, not events; a client that drops repeated ids keeps only the first of them).
- ``NotifyTyping`` / ``MarkRead`` become engine events relayed to the customer's gateway on
  ``StreamOutbound``; the customer's typing and reads arrive on the agent's stream.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from usher.v1 import agent_pb2, agent_service_pb2, agent_service_pb2_grpc

from core.api import choices, door, policy, profiles
from core.api import convert as cv
from core.api import resources as res
from core.api.agent_view import agent_event, may_concern
from core.api.canned_messages import CannedMessages
from core.api.client_info import client_address
from core.api.context import ApiContext, Caller
from core.api.conversations import (
    CallerOf,
    default_caller,
    validate_key,
    validate_tags,
    validate_text,
)
from core.api.errors import abort
from core.api.note_values import conversation_note_to_proto, files_from_proto
from core.api.profile_values import set_profile
from core.routing import commands as c
from core.routing import events as ev
from core.routing import model as m
from core.routing.errors import InvalidArgument, NotFound, PermissionDenied, RoutingError
from core.runtime.shard import Outcome
from core.store import bot_runs, conversation_notes
from core.store.access import Access
from core.store.canned_replies import CannedReplies
from core.store.conversation_notes import ConversationNotes
from core.store.records import decode_page_token, encode_page_token

_HELD = ("active", "wrap_up")
MAX_EVENTS_PER_RESPONSE = 100
"""Events a stream response gathers when several are ready at once (one write, not many)."""
MAX_NOTE = 10_000
T = TypeVar("T")


class AgentServicer(agent_service_pb2_grpc.AgentServiceServicer):
    """AgentService over an ``ApiContext`` (role AGENT; supervisors and admins may read). Which
    conversation an agent may read or change is ``core.api.policy``'s (``_authorize`` before a
    door-checked change or read; ``_engine_checked`` around a command the engine authorizes)."""

    def __init__(self, api: ApiContext, *, caller_of: CallerOf = default_caller) -> None:
        self._api = api
        self._caller_of = caller_of
        self._access = Access(api.pool)
        self._canned = CannedMessages(CannedReplies(api.pool))
        self._notes = ConversationNotes(api.pool)

    def _agent(self, context: cv.Ctx) -> tuple[str, str]:
        """(tenant, agent id) of an agent caller; ``PermissionDenied`` for anyone else."""
        who = self._caller_of(context)
        if who.role != "agent" or not who.agent_id:
            raise PermissionDenied("only an agent credential may do this")
        return who.tenant, who.agent_id

    def _acting(self, context: cv.Ctx) -> Caller:
        """The agent caller (as ``_agent``), whole."""
        self._agent(context)
        return self._caller_of(context)

    def _reader(self, context: cv.Ctx) -> Caller:
        who = self._caller_of(context)
        if who.role == "agent" and not who.agent_id:
            raise PermissionDenied("an agent credential without an agent")
        return who

    # --- authorization (core.api.policy) ------------------------------------------------------

    async def _verdict(self, who: Caller, rpc: str, conversation_id: str) -> policy.Verdict | None:
        """The policy's verdict on ``who`` calling ``rpc`` on the conversation; None if the
        tenant has no such conversation. Only an agent's relations are read."""
        relations: frozenset[policy.Relation] = frozenset()
        if who.role == policy.Role.AGENT and who.agent_id:
            facts = await self._access.facts(who.tenant, conversation_id, who.agent_id)
            if facts is None:
                return None
            relations = policy.relations_of(facts)
        return policy.decide(who.role, rpc, relations)

    async def _authorize(self, who: Caller, rpc: str, conversation_id: str) -> None:
        """Refuse before anything happens unless the policy allows ``rpc``: a conversation the
        caller may not read is answered exactly as one that does not exist."""
        verdict = await self._verdict(who, rpc, conversation_id)
        if verdict is None or verdict is policy.Verdict.NOT_FOUND:
            raise NotFound(
                f"conversation {conversation_id!r} not found", conversation_id=conversation_id
            )
        if verdict is policy.Verdict.PERMISSION_DENIED:
            raise PermissionDenied(
                f"{who.role} {who.agent_id or who.credential_id!r} may not do this to "
                f"conversation {conversation_id!r}",
                conversation_id=conversation_id,
            )

    async def _engine_checked(
        self, who: Caller, rpc: str, conversation_id: str, attempt: Callable[[], Awaitable[T]]
    ) -> T:
        """Run a command the engine authorizes itself (the rule is ``engine_checked``). When it
        refuses for the conversation's state, a caller the policy does not allow is told
        ``PERMISSION_DENIED`` instead (a stranger learns nothing of the state); the facts are
        read only then, so the allowed path costs no read."""
        try:
            return await attempt()
        except (cv.Refused, RoutingError) as exc:
            code = exc.failure.code if isinstance(exc, cv.Refused) else exc.code
            if code != "FAILED_PRECONDITION":
                raise
            verdict = await self._verdict(who, rpc, conversation_id)
            if verdict is policy.Verdict.PERMISSION_DENIED:
                raise PermissionDenied(
                    f"agent {who.agent_id!r} may not do this to conversation {conversation_id!r}",
                    conversation_id=conversation_id,
                ) from None
            raise

    async def _offer_command(self, command: c.AcceptOffer | c.RejectOffer) -> Outcome:
        """An offer command; an offer the engine does not hold is gone, or never was."""
        outcome = await self._api.submit(command)
        failure = outcome.failure
        if (
            failure is not None
            and failure.code == "FAILED_PRECONDITION"
            and not await self._api.reads.offer_exists(command.tenant, command.offer_id)
        ):
            raise NotFound(f"offer {command.offer_id!r} not found", offer=command.offer_id)
        return cv.check(outcome, gone_reason="OFFER_GONE")

    async def _transfer_command(
        self, command: c.AnswerTransfer | c.CancelTransfer
    ) -> agent_service_pb2.AnswerTransferResponse:
        outcome = await self._api.submit(command)
        failure = outcome.failure
        if (
            failure is not None
            and failure.code == "FAILED_PRECONDITION"
            and await self._api.reads.transfer(command.tenant, command.transfer_id) is None
        ):
            raise NotFound(
                f"transfer {command.transfer_id!r} not found", transfer=command.transfer_id
            )
        cv.check(outcome)
        resolved = next(e for e in outcome.events if isinstance(e, ev.TransferResolved))
        return agent_service_pb2.AnswerTransferResponse(transfer=res.transfer_from_event(resolved))

    # --- status and events --------------------------------------------------------------------

    @cv.guarded
    async def SetStatus(
        self, request: agent_service_pb2.SetStatusRequest, context: cv.Ctx
    ) -> agent_service_pb2.SetStatusResponse:
        tenant, me = self._agent(context)
        if len(request.custom_status) > 100:
            raise InvalidArgument(
                "a custom status has at most 100 characters", field="custom_status"
            )
        status: m.AgentStatus | None = None  # with a custom status alone: its base
        if not request.custom_status or request.status != agent_pb2.AGENT_STATUS_UNSPECIFIED:
            status = cv.parse_status(request.status)
        outcome = await door.run(
            self._api,
            c.SetAgentStatus(
                tenant=tenant,
                agent_id=me,
                status=status,
                custom_status=request.custom_status or None,
                client_address=client_address(context),  # a browser's via the web port
            ),
        )
        assert outcome.agent is not None
        return agent_service_pb2.SetStatusResponse(agent=res.agent_from_view(outcome.agent))

    @cv.guarded_stream
    async def StreamEvents(
        self, request: agent_service_pb2.StreamEventsRequest, context: cv.Ctx
    ) -> AsyncIterator[agent_service_pb2.StreamEventsResponse]:
        tenant, me = self._agent(context)
        feed = self._api.feeds.feed(tenant)
        after = request.resume_after_event_id or None
        subscription = feed.subscribe(after, accepts=may_concern(me))
        try:
            if after is None:
                opening = await self._open_offers(tenant, me, feed.last_id)
                if opening:
                    yield agent_service_pb2.StreamEventsResponse(events=opening)
            gathered: list[agent_service_pb2.AgentEvent] = []
            async for item in subscription:
                payload = agent_event(me, item.event)
                if payload is not None:
                    conversation_id = getattr(item.event, "conversation_id", "")
                    gathered.append(
                        agent_service_pb2.AgentEvent(
                            event_id=item.event_id,
                            time=cv.timestamp(item.event.at),
                            conversation=cv.conversation_name(conversation_id)
                            if conversation_id
                            else "",
                            **payload,
                        )
                    )
                if gathered and (
                    len(gathered) >= MAX_EVENTS_PER_RESPONSE or not subscription.ready()
                ):
                    yield agent_service_pb2.StreamEventsResponse(events=gathered)
                    gathered = []
        finally:
            subscription.close()

    async def _open_offers(
        self, tenant: str, me: str, position: int
    ) -> list[agent_service_pb2.AgentEvent]:
        events = []
        for offer in await self._api.reads.open_offers(tenant, me):
            row = await self._api.reads.conversation(tenant, offer.conversation_id)
            conversation = None if row is None else res.conversation_from_row(row)
            proto = res.offer_from_stored(offer, conversation)
            if row is not None:  # the profile as the offer showed it, read once at the opening
                set_profile(proto, await profiles.read(self._api, tenant, row["customer_id"]))
            hand_off = await bot_runs.last_hand_off(self._api.pool, tenant, offer.conversation_id)
            if hand_off is not None:
                proto.bot_hand_off.CopyFrom(res.hand_off_from_card(res.hand_off_card(hand_off)))
            events.append(
                agent_service_pb2.AgentEvent(
                    event_id=position, conversation=proto.conversation, offer=proto
                )
            )
        return events

    # --- offers and conversations ---------------------------------------------------------------

    @cv.guarded
    async def AcceptOffer(
        self, request: agent_service_pb2.AcceptOfferRequest, context: cv.Ctx
    ) -> agent_service_pb2.AcceptOfferResponse:
        tenant, me = self._agent(context)
        offer_id = cv.parse_offer(request.offer)
        outcome = await self._offer_command(
            c.AcceptOffer(tenant=tenant, offer_id=offer_id, agent_id=me)
        )
        return agent_service_pb2.AcceptOfferResponse(conversation=door.conversation_of(outcome))

    @cv.guarded
    async def RejectOffer(
        self, request: agent_service_pb2.RejectOfferRequest, context: cv.Ctx
    ) -> agent_service_pb2.RejectOfferResponse:
        tenant, me = self._agent(context)
        offer_id = cv.parse_offer(request.offer)
        await self._offer_command(c.RejectOffer(tenant=tenant, offer_id=offer_id, agent_id=me))
        return agent_service_pb2.RejectOfferResponse()

    @cv.guarded
    async def TakeConversation(
        self, request: agent_service_pb2.TakeConversationRequest, context: cv.Ctx
    ) -> agent_service_pb2.TakeConversationResponse:
        tenant, me = self._agent(context)
        conversation_id = cv.parse_conversation(request.conversation)
        command = c.TakeConversation(tenant=tenant, agent_id=me, conversation_id=conversation_id)
        outcome = await self._engine_checked(
            self._acting(context),
            "AgentService.TakeConversation",
            conversation_id,
            lambda: door.run(self._api, command),
        )
        return agent_service_pb2.TakeConversationResponse(
            conversation=door.conversation_of(outcome)
        )

    @cv.guarded
    async def SendMessage(
        self, request: agent_service_pb2.SendMessageRequest, context: cv.Ctx
    ) -> agent_service_pb2.SendMessageResponse:
        tenant, me = self._agent(context)
        conversation_id = cv.parse_conversation(request.conversation)
        if not request.canned_reply_id:
            validate_text(request.text, request.attachments)
        validate_key(request.request_id, "request_id")
        key = f"request:{request.request_id}" if request.request_id else ""
        offered = choices.of_request(request)
        if request.canned_reply_id:
            body = await self._canned.body(tenant, me, conversation_id, request, key, offered)
        else:
            body = res.body_from_proto(request.text, request.attachments, key, offered=offered)
        command = c.RecordMessage(
            tenant=tenant,
            conversation_id=conversation_id,
            sender=m.Sender.AGENT,
            agent_id=me,
            message=body,
        )
        message, duplicate = await self._engine_checked(
            self._acting(context),
            "AgentService.SendMessage",
            conversation_id,
            lambda: door.record_message(self._api, command),
        )
        await self._canned.count(tenant, conversation_id, message)
        return agent_service_pb2.SendMessageResponse(message=message, duplicate=duplicate)

    @cv.guarded
    async def RequestTransfer(
        self, request: agent_service_pb2.RequestTransferRequest, context: cv.Ctx
    ) -> agent_service_pb2.RequestTransferResponse:
        tenant, me = self._agent(context)
        conversation_id = cv.parse_conversation(request.conversation)
        if len(request.note) > MAX_NOTE:
            raise InvalidArgument(f"a note has at most {MAX_NOTE} characters", field="note")
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
        command = c.RequestTransfer(
            tenant=tenant,
            agent_id=me,
            conversation_id=conversation_id,
            target=target,
            target_id=target_id,
            note=request.note,
        )
        outcome = await self._engine_checked(
            self._acting(context),
            "AgentService.RequestTransfer",
            conversation_id,
            lambda: door.run(self._api, command),
        )
        made = next(
            e
            for e in outcome.events
            if isinstance(e, ev.TransferRequested | ev.ConversationTransferred)
        )
        return agent_service_pb2.RequestTransferResponse(transfer=res.transfer_from_event(made))

    @cv.guarded
    async def AnswerTransfer(
        self, request: agent_service_pb2.AnswerTransferRequest, context: cv.Ctx
    ) -> agent_service_pb2.AnswerTransferResponse:
        tenant, me = self._agent(context)
        transfer_id = cv.parse_transfer(request.transfer)
        return await self._transfer_command(
            c.AnswerTransfer(
                tenant=tenant, agent_id=me, transfer_id=transfer_id, accept=request.accept
            )
        )

    @cv.guarded
    async def CancelTransfer(
        self, request: agent_service_pb2.CancelTransferRequest, context: cv.Ctx
    ) -> agent_service_pb2.CancelTransferResponse:
        tenant, me = self._agent(context)
        transfer_id = cv.parse_transfer(request.transfer)
        answered = await self._transfer_command(
            c.CancelTransfer(tenant=tenant, agent_id=me, transfer_id=transfer_id)
        )
        return agent_service_pb2.CancelTransferResponse(transfer=answered.transfer)

    @cv.guarded
    async def SetConversationMode(
        self, request: agent_service_pb2.SetConversationModeRequest, context: cv.Ctx
    ) -> agent_service_pb2.SetConversationModeResponse:
        tenant, me = self._agent(context)
        conversation_id = cv.parse_conversation(request.conversation)
        mode = cv.parse_mode(request.mode)
        await self._authorize(self._acting(context), policy.mode_rule(mode.value), conversation_id)
        outcome = await door.run(
            self._api,
            c.SetMode(tenant=tenant, agent_id=me, conversation_id=conversation_id, mode=mode),
        )
        return agent_service_pb2.SetConversationModeResponse(
            conversation=door.conversation_of(outcome)
        )

    @cv.guarded
    async def EndConversation(
        self, request: agent_service_pb2.EndConversationRequest, context: cv.Ctx
    ) -> agent_service_pb2.EndConversationResponse:
        tenant, me = self._agent(context)
        conversation_id = cv.parse_conversation(request.conversation)
        outcome = cv.parse_outcome(request.outcome)
        command = c.EndConversation(
            tenant=tenant, agent_id=me, conversation_id=conversation_id, outcome=outcome
        )
        done = await self._engine_checked(
            self._acting(context),
            "AgentService.EndConversation",
            conversation_id,
            lambda: door.run(self._api, command),
        )
        return agent_service_pb2.EndConversationResponse(conversation=door.conversation_of(done))

    @cv.guarded
    async def FinishWrapUp(
        self, request: agent_service_pb2.FinishWrapUpRequest, context: cv.Ctx
    ) -> agent_service_pb2.FinishWrapUpResponse:
        tenant, me = self._agent(context)
        conversation_id = cv.parse_conversation(request.conversation)
        command = c.FinishWrapUp(tenant=tenant, agent_id=me, conversation_id=conversation_id)
        outcome = await self._engine_checked(
            self._acting(context),
            "AgentService.FinishWrapUp",
            conversation_id,
            lambda: door.run(self._api, command),
        )
        return agent_service_pb2.FinishWrapUpResponse(conversation=door.conversation_of(outcome))

    @cv.guarded
    async def AddNote(
        self, request: agent_service_pb2.AddNoteRequest, context: cv.Ctx
    ) -> agent_service_pb2.AddNoteResponse:
        """A note, with its files, kept beside the conversation (``core.store.conversation_notes``;
        not routing state, so no engine command)."""
        tenant, me = self._agent(context)
        conversation_id = cv.parse_conversation(request.conversation)
        files = files_from_proto(request.attachments)
        problems = conversation_notes.check(request.text, files)
        if problems:
            await abort(context, "INVALID_ARGUMENT", "invalid note", violations=problems)
        await self._authorize(self._acting(context), "AgentService.AddNote", conversation_id)
        note = await self._notes.add(tenant, conversation_id, me, request.text, files)
        return agent_service_pb2.AddNoteResponse(note=conversation_note_to_proto(note))

    @cv.guarded
    async def UpdateTags(
        self, request: agent_service_pb2.UpdateTagsRequest, context: cv.Ctx
    ) -> agent_service_pb2.UpdateTagsResponse:
        tenant, _ = self._agent(context)
        conversation_id = cv.parse_conversation(request.conversation)
        add = validate_tags(request.add_tags, "add_tags")
        remove = validate_tags(request.remove_tags, "remove_tags")
        await self._authorize(self._acting(context), "AgentService.UpdateTags", conversation_id)
        outcome = await door.run(
            self._api,
            c.TagConversation(
                tenant=tenant, conversation_id=conversation_id, add=add, remove=remove
            ),
        )
        return agent_service_pb2.UpdateTagsResponse(tags=list(door.conversation_of(outcome).tags))

    # --- reads ------------------------------------------------------------------------------------

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
        after = decode_page_token(request.page_token) if request.page_token else None
        rows = await self._api.reads.agent_conversations(tenant, me, states, size + 1, after)
        token = ""
        if len(rows) > size:
            last = rows[size - 1]
            token = encode_page_token(
                last["assigned_at"] or last["created_at"], last["conversation_id"]
            )
        return agent_service_pb2.ListMyConversationsResponse(
            conversations=[res.conversation_from_row(r) for r in rows[:size]],
            next_page_token=token,
        )

    @cv.guarded
    async def GetConversation(
        self, request: agent_service_pb2.GetConversationRequest, context: cv.Ctx
    ) -> agent_service_pb2.GetConversationResponse:
        who = self._reader(context)
        conversation_id = cv.parse_conversation(request.name, "name")
        await self._authorize(who, "AgentService.GetConversation", conversation_id)
        row = await self._api.reads.conversation(who.tenant, conversation_id)
        if row is None:
            raise NotFound(
                f"conversation {conversation_id!r} not found", conversation_id=conversation_id
            )
        conversation = res.conversation_from_row(row)
        if row["state"] not in ("closed", "abandoned"):  # open: with the customer's profile
            profile = await profiles.read(self._api, who.tenant, row["customer_id"])
            set_profile(conversation, profile)
        hand_off = await bot_runs.last_hand_off(self._api.pool, who.tenant, conversation_id)
        if hand_off is not None:
            conversation.bot_hand_off.CopyFrom(res.bot_hand_off(hand_off))
        return agent_service_pb2.GetConversationResponse(conversation=conversation)

    @cv.guarded
    async def ListMessages(
        self, request: agent_service_pb2.ListMessagesRequest, context: cv.Ctx
    ) -> agent_service_pb2.ListMessagesResponse:
        """The transcript in the order recorded (message ids ascending), one keyset page: the
        page token is the last message id sent, and a page reads only its own rows."""
        who = self._reader(context)
        conversation_id = cv.parse_conversation(request.parent, "parent")
        size = request.page_size or 100
        if not 1 <= size <= 500:
            raise InvalidArgument("page_size must be 1 to 500", field="page_size")
        after = 0
        if request.page_token:
            token = request.page_token
            if not (token.isascii() and token.isdigit()) or len(token) > 18:
                raise InvalidArgument(
                    "the page token is not one this list issued", field="page_token"
                )
            after = int(token)
        await self._authorize(who, "AgentService.ListMessages", conversation_id)
        await door.stored_conversation(self._api, who.tenant, conversation_id)
        rows = await self._api.reads.messages_after(who.tenant, conversation_id, after, size + 1)
        page = rows[:size]
        next_token = str(page[-1].message_id) if len(rows) > size else ""
        return agent_service_pb2.ListMessagesResponse(
            messages=[res.message_from_record(r) for r in page], next_page_token=next_token
        )

    @cv.guarded
    async def ListNotes(
        self, request: agent_service_pb2.ListNotesRequest, context: cv.Ctx
    ) -> agent_service_pb2.ListNotesResponse:
        """The conversation's notes oldest first, one keyset page (the token is the last note
        id sent). Same access as ``ListMessages``."""
        who = self._reader(context)
        conversation_id = cv.parse_conversation(request.parent, "parent")
        size = request.page_size or 100
        if not 1 <= size <= 500:
            raise InvalidArgument("page_size must be 1 to 500", field="page_size")
        after = 0
        if request.page_token:
            token = request.page_token
            if not (token.isascii() and token.isdigit()) or len(token) > 18:
                raise InvalidArgument(
                    "the page token is not one this list issued", field="page_token"
                )
            after = int(token)
        await self._authorize(who, "AgentService.ListNotes", conversation_id)
        await door.stored_conversation(self._api, who.tenant, conversation_id)
        notes = await self._notes.page(who.tenant, conversation_id, after, size + 1)
        page = notes[:size]
        return agent_service_pb2.ListNotesResponse(
            notes=[conversation_note_to_proto(n) for n in page],
            next_page_token=str(page[-1].note_id) if len(notes) > size else "",
        )

    # --- typing and receipts ---------------------------------------------------------------------

    @cv.guarded
    async def NotifyTyping(
        self, request: agent_service_pb2.AgentServiceNotifyTypingRequest, context: cv.Ctx
    ) -> agent_service_pb2.AgentServiceNotifyTypingResponse:
        tenant, agent_id = self._agent(context)
        conversation_id = cv.parse_conversation(request.conversation)
        command = c.NotifyTyping(
            tenant=tenant,
            conversation_id=conversation_id,
            typist=m.Sender.AGENT,
            active=request.active,
            agent_id=agent_id,
        )
        await self._engine_checked(
            self._acting(context),
            "AgentService.NotifyTyping",
            conversation_id,
            lambda: door.run(self._api, command),
        )
        return agent_service_pb2.AgentServiceNotifyTypingResponse()

    @cv.guarded
    async def MarkRead(
        self, request: agent_service_pb2.AgentServiceMarkReadRequest, context: cv.Ctx
    ) -> agent_service_pb2.AgentServiceMarkReadResponse:
        tenant, agent_id = self._agent(context)
        conversation_id, message_id = cv.parse_message(request.message)
        record = await self._api.reads.message(tenant, message_id)
        if record is None or record.conversation_id != conversation_id:
            raise NotFound(f"message {request.message!r} not found", message_id=message_id)
        command = c.RecordReceipt(
            tenant=tenant,
            conversation_id=conversation_id,
            reader=m.Sender.AGENT,
            message_id=message_id,
            status="read",
            agent_id=agent_id,
        )
        await self._engine_checked(
            self._acting(context),
            "AgentService.MarkRead",
            conversation_id,
            lambda: door.run(self._api, command),
        )
        return agent_service_pb2.AgentServiceMarkReadResponse()
