"""Conversations opening, messages and their idempotency keys, receipts and typing."""

from __future__ import annotations

from core.routing import commands as c
from core.routing import events as ev
from core.routing.errors import (
    AlreadyExists,
    CapacityExceeded,
    Duplicate,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ProfileNeeded,
)
from core.routing.model import (
    MAX_OPTION_ID,
    PREVIEW_LENGTH,
    CloseReason,
    MessageBody,
    Outcome,
    QueueReason,
    Sender,
    SystemMessage,
)
from core.routing.router_parts.base import (
    MAX_ATTACHMENTS,
    MAX_MESSAGE_TEXT,
    MAX_PROVIDER_ID,
    RouterBase,
    S,
)
from core.routing.state import (
    EXCLUSIVE,
    Conversation,
    to_units,
)
from core.routing.timers import TimerKind

MAX_CANNED_REPLY_ID = 64
"""Characters of a message's ``canned_reply_id`` at most (the API's id syntax)."""


class MessagesMixin(RouterBase):
    """Conversations opening, messages and their idempotency keys, receipts and typing."""

    def _start(self, cmd: c.StartConversation | c.ReceiveMessage) -> None:
        """Start a conversation, with its first message if there is one (both or neither)."""
        first = cmd.message if isinstance(cmd, c.ReceiveMessage) else cmd.first_message
        if not cmd.conversation_id or not cmd.channel or not cmd.customer_id:
            raise InvalidArgument("a conversation needs an id, a channel and a customer")
        if first is not None:
            self._check_new_message(cmd.channel, first)
        self._check_profile(cmd.customer.profile)
        if cmd.conversation_id in self.conversations:
            raise AlreadyExists(
                f"conversation {cmd.conversation_id!r} exists", conversation_id=cmd.conversation_id
            )
        current = self.open_conversations.get((cmd.customer_id, cmd.channel))
        if current is not None:
            raise AlreadyExists(
                "the customer already has an open conversation on this channel",
                open_conversation=current,
            )
        queue_id = self._resolve_queue(cmd.queue_id, cmd.region)
        match = self._bot_match(
            cmd.channel,
            new=True,
            text=first.text if first is not None else "",
            reference=cmd.reference,
            queue_id=queue_id,
        )
        if queue_id is None and not cmd.with_bot and match is None:
            raise FailedPrecondition(
                "no queue given and the tenant has no region rule or default queue for it"
            )
        if (
            isinstance(cmd, c.ReceiveMessage)
            and cmd.require_profile
            and cmd.customer.profile is None
        ):
            raise ProfileNeeded("read the customer's profile: this message starts a conversation")
        self._require_not_blocked(cmd.customer, cmd.channel, cmd.customer_id)
        self._emit(
            ev.ConversationStarted(
                tenant=self.tenant,
                at=self.clock.now(),
                conversation_id=cmd.conversation_id,
                channel=cmd.channel,
                customer_id=cmd.customer_id,
                region=cmd.region,
                language=cmd.language or self.settings.default_language,
                priority=cmd.priority,
                tags=cmd.tags,
                with_bot=cmd.with_bot or match is not None,
                queue_id=queue_id,
                customer=cmd.customer,
                reference=cmd.reference,
                page=cmd.page,
                referrer=cmd.referrer,
            )
        )
        conv = self.conversations[cmd.conversation_id]
        if first is not None:
            self._emit_message(conv, Sender.CUSTOMER, None, first)
        if match is not None:  # a bot answers: it greets, and it hands off when it must
            self._start_flow(conv, match, first.text if first is not None else "")
            return
        self._say(conv, SystemMessage.WELCOME)
        if not cmd.with_bot:
            assert queue_id is not None
            self._enqueue(conv, queue_id, QueueReason.REQUESTED)

    def _receive_message(self, cmd: c.ReceiveMessage) -> None:
        self._check_new_message(cmd.channel, cmd.message)
        current = self.open_conversations.get((cmd.customer_id, cmd.channel))
        if current is None:
            self._start(cmd)
        else:
            self._record_message(
                c.RecordMessage(
                    tenant=cmd.tenant,
                    conversation_id=current,
                    sender=Sender.CUSTOMER,
                    message=cmd.message,
                )
            )

    def _request_agent(self, cmd: c.RequestAgent) -> None:
        conv = self._conversation(cmd.conversation_id)
        self._require_state(conv, S.BOT)
        queue_id = self._resolve_queue(cmd.queue_id or conv.queue_id, conv.region)
        if queue_id is None:
            raise FailedPrecondition("no queue given and the tenant has no default queue")
        self._enqueue(conv, queue_id, QueueReason.REQUESTED, priority=cmd.priority)

    def _reopen(self, cmd: c.ReopenConversation) -> None:
        conv = self._conversation(cmd.conversation_id)
        self._require_state(conv, S.CLOSED, S.ABANDONED)
        self._check_profile(cmd.profile)
        current = self.open_conversations.get((conv.customer_id, conv.channel))
        if current is not None:
            raise AlreadyExists(
                "the customer has another open conversation on this channel",
                open_conversation=current,
            )
        queue_id = self._resolve_queue(cmd.queue_id or conv.queue_id, conv.region)
        if queue_id is None:
            raise FailedPrecondition("no queue given and the tenant has no default queue")
        if cmd.profile is not None and cmd.profile != conv.customer.profile:
            self._show_profile(conv, cmd.profile)
        self._enqueue(conv, queue_id, QueueReason.REOPENED)

    def _open_for_agent(self, cmd: c.OpenForAgent) -> None:
        """Everything is checked before the first event, so a refusal changes nothing."""
        agent = self._agent(cmd.agent_id)
        self._require_online(agent)
        self._check_profile(cmd.customer.profile)
        conv = self.conversations.get(cmd.conversation_id)
        if conv is None:
            if not cmd.conversation_id or not cmd.channel or not cmd.customer_id:
                # naming only an id asks to reopen: this one is not held (or never was)
                raise NotFound(
                    f"conversation {cmd.conversation_id!r} not found",
                    conversation_id=cmd.conversation_id,
                )
            channel, customer_id, region = cmd.channel, cmd.customer_id, cmd.region
            queue_id = self._resolve_queue(cmd.queue_id, region)
        else:
            self._require_state(conv, S.CLOSED, S.ABANDONED)
            channel, customer_id, region = conv.channel, conv.customer_id, conv.region
            queue_id = self._resolve_queue(cmd.queue_id or conv.queue_id, region)
        current = self.open_conversations.get((customer_id, channel))
        if current is not None:
            raise AlreadyExists(
                "the customer has an open conversation on this channel",
                open_conversation=current,
            )
        if queue_id is None:
            raise FailedPrecondition("no queue given and the tenant has no default queue")
        queue = self.queues[queue_id]
        step = next((key for key in queue.plan if key.admits(agent.profile)), None)
        if step is None:
            raise FailedPrecondition(
                f"agent {agent.agent_id!r} meets no step of queue {queue_id!r}",
                agent_id=agent.agent_id,
                queue_id=queue_id,
            )
        cost = conv.cost if conv is not None else self._cost_of(channel)
        if not agent.fits(cost):
            raise CapacityExceeded(
                f"agent {agent.agent_id!r} has no room for another conversation",
                agent_id=agent.agent_id,
            )
        if conv is None:
            self._emit(
                ev.ConversationStarted(
                    tenant=self.tenant,
                    at=self.clock.now(),
                    conversation_id=cmd.conversation_id,
                    channel=channel,
                    customer_id=customer_id,
                    region=region,
                    language=cmd.language or self.settings.default_language,
                    priority=0,
                    tags=cmd.tags,
                    with_bot=False,
                    queue_id=queue_id,
                    customer=cmd.customer,
                )
            )
            conv = self.conversations[cmd.conversation_id]
            reason = QueueReason.REQUESTED
        else:
            profile = cmd.customer.profile
            if profile is not None and profile != conv.customer.profile:
                self._show_profile(conv, profile)
            reason = QueueReason.REOPENED
        # one step, the agent's: the conversation is theirs before anyone else could be offered it
        self._enqueue(conv, queue_id, reason, plan=(step,), route=False)
        self._assign(conv, agent, via="follow_up", by=cmd.by, override=False)

    def _check_party(self, conv: Conversation, party: Sender, agent_id: str | None) -> None:
        """The customer, or the agent who owns ``conv``, is the one acting."""
        if party is Sender.AGENT:
            if agent_id is None:
                raise InvalidArgument("name the agent")
            self._require_owner(conv, agent_id)
        elif party is not Sender.CUSTOMER:
            raise InvalidArgument("only the customer or the owning agent can do this")

    def _record_receipt(self, cmd: c.RecordReceipt) -> None:
        conv = self._conversation(cmd.conversation_id)
        self._check_party(conv, cmd.reader, cmd.agent_id)
        if cmd.status not in ("delivered", "read"):
            raise InvalidArgument("a receipt is delivered or read")
        self._emit(
            ev.ReceiptRecorded(
                tenant=self.tenant,
                at=self.clock.now(),
                conversation_id=conv.conversation_id,
                reader=cmd.reader,
                message_id=cmd.message_id,
                status=cmd.status,
                agent_id=cmd.agent_id,
                owner=conv.owner,
            )
        )

    def _notify_typing(self, cmd: c.NotifyTyping) -> None:
        conv = self._conversation(cmd.conversation_id)
        if conv.state.is_terminal:
            raise FailedPrecondition(f"conversation {conv.conversation_id!r} is closed")
        self._check_party(conv, cmd.typist, cmd.agent_id)
        self._emit(
            ev.TypingChanged(
                tenant=self.tenant,
                at=self.clock.now(),
                conversation_id=conv.conversation_id,
                typist=cmd.typist,
                active=cmd.active,
                agent_id=cmd.agent_id,
                owner=conv.owner,
            )
        )

    def _check_new_message(
        self, channel: str, body: MessageBody, sender: Sender = Sender.CUSTOMER
    ) -> None:
        """Refuse a malformed message, or one whose idempotency key was recorded before.
        Choices ride on agents' and bots' messages; a pick (``selected_option_id``) on the
        customer's."""
        if not body.text and not body.attachments:
            raise InvalidArgument("a message needs text or an attachment", field="text")
        if len(body.text) > MAX_MESSAGE_TEXT:
            raise InvalidArgument(f"text is over {MAX_MESSAGE_TEXT} characters", field="text")
        if len(body.attachments) > MAX_ATTACHMENTS:
            raise InvalidArgument(f"at most {MAX_ATTACHMENTS} attachments", field="attachments")
        if body.choices is not None:
            if sender not in (Sender.AGENT, Sender.BOT):
                raise InvalidArgument("only agents and bots offer choices", field="choices")
            problem = body.choices.problem()
            if problem is not None:
                raise InvalidArgument(problem, field="choices")
        if body.selected_option_id:
            if sender is not Sender.CUSTOMER:
                raise InvalidArgument(
                    "only the customer picks an option", field="selected_option_id"
                )
            if len(body.selected_option_id) > MAX_OPTION_ID:
                raise InvalidArgument(
                    f"an option id has at most {MAX_OPTION_ID} characters",
                    field="selected_option_id",
                )
        canned = body.canned_reply_id
        if canned is not None and not 1 <= len(canned) <= MAX_CANNED_REPLY_ID:
            raise InvalidArgument(
                f"a canned reply id has 1 to {MAX_CANNED_REPLY_ID} characters",
                field="canned_reply_id",
            )
        key = body.provider_message_id
        if key is not None:
            if not key or len(key) > MAX_PROVIDER_ID:
                raise InvalidArgument(
                    f"a provider message id has 1 to {MAX_PROVIDER_ID} characters",
                    field="provider_message_id",
                )
            known = self.message_keys.get((channel, key))
            if known is not None:
                raise Duplicate(
                    "this message was recorded before",
                    message_id=known[0],
                    conversation_id=known[1],
                )

    def _emit_message(
        self, conv: Conversation, sender: Sender, agent_id: str | None, body: MessageBody
    ) -> None:
        self._emit(
            ev.MessageRecorded(
                tenant=self.tenant,
                at=self.clock.now(),
                conversation_id=conv.conversation_id,
                sender=sender,
                agent_id=agent_id,
                message_id=self.message_seq + 1,
                body=body,
                channel=conv.channel,
                owner=conv.owner,
            )
        )

    def _record_message(self, cmd: c.RecordMessage) -> None:
        conv = self._conversation(cmd.conversation_id)
        self._check_new_message(conv.channel, cmd.message, cmd.sender)
        if conv.state.is_terminal:
            raise FailedPrecondition(
                f"conversation {conv.conversation_id!r} is closed",
                conversation_id=conv.conversation_id,
            )
        if cmd.sender is Sender.AGENT:
            if cmd.agent_id is None:
                raise InvalidArgument("an agent message names its agent")
            self._require_state(conv, S.ACTIVE)
            self._require_owner(conv, cmd.agent_id)
        elif cmd.sender is Sender.BOT:
            self._require_state(conv, S.BOT)
        else:
            self._require_not_blocked(
                conv.customer, conv.channel, conv.customer_id, conv.conversation_id
            )
        self._emit_message(conv, cmd.sender, cmd.agent_id, cmd.message)
        if cmd.sender is Sender.CUSTOMER and conv.owner is None:
            self._bot_hears(conv, cmd.message)
        elif cmd.sender is Sender.CUSTOMER and conv.owner is not None:
            owner = self.agents[conv.owner]
            custom = (
                self.settings.custom_status(owner.custom_status) if owner.custom_status else None
            )
            if custom is not None and custom.auto_reply:
                self._say(conv, SystemMessage.AGENT_AUTO_REPLY, text=custom.auto_reply)

    def _customer_left(self, cmd: c.CustomerLeft) -> None:
        conv = self._conversation(cmd.conversation_id)
        self._require_state(conv, S.BOT, S.QUEUED, S.OFFERED, S.ACTIVE)
        if conv.state is S.ACTIVE:
            self._finish(conv, CloseReason.CUSTOMER_LEFT, None)
        elif conv.state is S.BOT:
            self._close_waiting(conv, CloseReason.CUSTOMER_LEFT, None)
        else:
            displaced = self._rescind_offer(conv)
            self._emit(
                ev.ConversationAbandoned(
                    tenant=self.tenant, at=self.clock.now(), conversation_id=conv.conversation_id
                )
            )
            for agent in displaced:
                self._pull(agent)

    def _close_waiting(
        self, conv: Conversation, reason: CloseReason, outcome: Outcome | None, by: str = ""
    ) -> None:
        """Close a conversation nobody owns (bot, queued, offered)."""
        displaced = self._rescind_offer(conv)
        self._emit(
            ev.ConversationEnded(
                tenant=self.tenant,
                at=self.clock.now(),
                conversation_id=conv.conversation_id,
                reason=reason,
                outcome=outcome,
                by=by,
            )
        )
        for agent in displaced:
            self._pull(agent)

    def _cost_of(self, channel: str) -> int:
        """What a conversation on ``channel`` costs an agent's capacity."""
        if channel in self.settings.exclusive_channels:
            return EXCLUSIVE
        return to_units(self.settings.channel_weights.get(channel, 1.0))

    def _on_started(self, e: ev.ConversationStarted) -> None:
        self.conversations[e.conversation_id] = Conversation(
            e.conversation_id,
            self._next("conversation"),
            e.channel,
            self._cost_of(e.channel),
            e.customer_id,
            e.region,
            e.language,
            e.priority,
            e.tags,
            e.at,
        )
        self.conversations[e.conversation_id].queue_id = e.queue_id
        self.conversations[e.conversation_id].customer = e.customer
        self.conversations[e.conversation_id].reference = e.reference
        self.open_conversations[e.customer_id, e.channel] = e.conversation_id
        self.customer_conversations.setdefault(e.customer_id, set()).add(e.conversation_id)

    def _on_message(self, e: ev.MessageRecorded) -> None:
        conv = self.conversations[e.conversation_id]
        s = self.settings
        live = conv.state is S.ACTIVE
        if e.sender is Sender.AGENT:
            if conv.first_response_at is None:
                conv.first_response_at = e.at
            self.agents[e.agent_id or ""].last_activity_at = e.at
            self._set_deadline(conv, TimerKind.AGENT_IDLE, None)
            if conv.last_sender != Sender.AGENT or TimerKind.CUSTOMER_IDLE not in conv.deadlines:
                # Idle time counts from the first agent message the customer has not answered.
                remind = s.customer_idle_remind
                conv.reminded = False
                self._set_deadline(
                    conv, TimerKind.CUSTOMER_IDLE, e.at + remind if remind and live else None
                )
        elif e.sender is Sender.CUSTOMER:
            conv.reminded = False
            self._set_deadline(conv, TimerKind.CUSTOMER_IDLE, None)
            if conv.last_sender != Sender.CUSTOMER or TimerKind.AGENT_IDLE not in conv.deadlines:
                notify = s.agent_idle_notify
                self._set_deadline(
                    conv, TimerKind.AGENT_IDLE, e.at + notify if notify and live else None
                )
        conv.last_sender = e.sender
        self.message_seq = max(self.message_seq, e.message_id)
        key = e.body.provider_message_id
        if key is not None:
            self.message_keys[conv.channel, key] = (e.message_id, conv.conversation_id)
            conv.message_keys.append((conv.channel, key))
        if e.sender is Sender.CUSTOMER and not conv.preview:
            conv.preview = e.body.text[:PREVIEW_LENGTH]

    def _on_other_side_only(self, e: ev.Event) -> None:
        pass  # for the transcript and the other side's screen, not for routing

    def _on_system_message(self, e: ev.SystemMessageSent) -> None:
        self.message_seq = max(self.message_seq, e.message_id)

    def _on_customer_idle_reminded(self, e: ev.CustomerIdleReminded) -> None:
        conv = self.conversations[e.conversation_id]
        conv.reminded = True
        close = self.settings.customer_idle_close
        self._set_deadline(conv, TimerKind.CUSTOMER_IDLE, e.at + close if close else None)

    def _on_agent_idle_notified(self, e: ev.AgentIdleNotified) -> None:
        self.conversations[e.conversation_id].deadlines.pop(TimerKind.AGENT_IDLE, None)

    def _on_forgotten(self, e: ev.ConversationForgotten) -> None:
        conv = self.conversations.pop(e.conversation_id)
        for key in conv.message_keys:
            self.message_keys.pop(key, None)
        mine = self.customer_conversations[conv.customer_id]
        mine.discard(conv.conversation_id)
        if not mine:
            del self.customer_conversations[conv.customer_id]
        served = self.last_served.get(conv.customer_id)
        if served is not None and e.at - served[1] > self._sticky_horizon:
            del self.last_served[conv.customer_id]
