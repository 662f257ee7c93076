"""Bots in the engine: the served versions (tenant configuration, like queues), the triggers
that start a flow, and each conversation's flow, moved by the pure interpreter
(``core.bots.interpreter``) in the command that carries its input.

A turn is recorded as ``BotTurned`` (the flow's new state, what it wrote to the customer's
record, the effect it awaits), then its replies as ``MessageRecorded`` (sender BOT, with their
choices), then a hand-off (``BotHandedOff``, and the conversation queues like any other) or an
end (``BotEnded``, and with ``close`` the conversation closes as ``bot_resolved``). I/O is an
effect (``BotEffectRequested``): the runtime performs it after the commit and answers with
``AnswerBotEffect``, which moves the flow on.

When a flow runs: a new conversation whose trigger fires (instead of its queue); a customer
message while no agent owns the conversation (with the bot, waiting in a queue, offered) and no
flow runs, when a phrase or keyword trigger fires; and an agent's hand-back (``SetMode`` AUTO),
which resumes the conversation's last bot (else the bot a new conversation on its channel
gets) at its ``returned`` step, else at its start. A flow stops when an agent gets the
conversation, when it queues for another reason, and when it is over.
"""

from __future__ import annotations

import dataclasses
from typing import Final

from core.bots import codec, triggers
from core.bots import interpreter as it
from core.bots.flow import (
    RETURNED_STEP,
    Bot,
    BotStatus,
    FieldValue,
    HandOffAction,
    HandOffReason,
    KeywordTrigger,
    NewConversationTrigger,
    OutOfHoursTrigger,
    PhraseTrigger,
    ReferenceTrigger,
    Trigger,
)
from core.routing import commands as c
from core.routing import events as ev
from core.routing.effects import BotEffectRequested
from core.routing.errors import InvalidArgument
from core.routing.hours import HoursStatus, status_at
from core.routing.model import (
    Attachment,
    ChoiceStyle,
    CloseReason,
    HandOffCard,
    MessageBody,
    MessageChoices,
    MessageOption,
    QueueReason,
    Sender,
)
from core.routing.router_parts.base import MAX_MESSAGE_TEXT, RouterBase, S
from core.routing.state import BotRun, Conversation

RETURNED: Final = "returned"
"""The trigger kind of a flow an agent's hand-back started."""
TRIGGER_KINDS: Final[dict[type, str]] = {
    NewConversationTrigger: "new_conversation",
    PhraseTrigger: "phrase",
    ReferenceTrigger: "reference",
    OutOfHoursTrigger: "out_of_hours",
    KeywordTrigger: "keyword",
}
_WITHOUT_OWNER: Final = (S.BOT, S.QUEUED, S.OFFERED)
"""States in which a bot may answer: no agent owns the conversation."""


def trigger_kind(trigger: Trigger) -> str:
    return TRIGGER_KINDS[type(trigger)]


def reply_body(reply: it.Reply) -> MessageBody:
    """A bot's reply as a message: the body, with a choice's title as its header; a reply
    without choices says its title, body and footer as paragraphs."""
    content = reply.content
    attachments = tuple(
        Attachment(
            sha256=m.sha256, name=m.name, content_type=m.content_type, size=m.size, uri=m.uri
        )
        for m in content.media
    )
    choices = None
    if reply.options:
        text = content.body or content.title or reply.button_text or "…"
        choices = MessageChoices(
            options=tuple(MessageOption(o.id, o.title, o.description) for o in reply.options),
            style=ChoiceStyle(reply.style.value),
            button_text=reply.button_text,
            header=content.title if content.body else "",
            footer=content.footer,
        )
    else:
        text = "\n\n".join(part for part in (content.title, content.body, content.footer) if part)
    if not text and not attachments:
        text = "…"
    return MessageBody(text=text[:MAX_MESSAGE_TEXT], attachments=attachments, choices=choices)


def _effect_of(bot: Bot, conversation_id: str, tenant: str, run: BotRun) -> BotEffectRequested:
    pending = run.pending
    return BotEffectRequested(
        tenant=tenant,
        conversation_id=conversation_id,
        bot_id=bot.id,
        version=bot.version,
        effect=run.state.effect,
        webhook=pending if isinstance(pending, it.WebhookCall) else None,
        knowledge=pending if isinstance(pending, it.KnowledgeSearch) else None,
    )


class BotsMixin(RouterBase):
    """Published bots, triggers, and flows in conversations (see the module docstring)."""

    # --- configuration ----------------------------------------------------------------------

    def _publish_bot(self, cmd: c.PublishBot) -> None:
        try:
            bot = codec.bot_from_json(cmd.bot)
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidArgument(f"not a bot version: {exc}", field="bot") from None
        if bot.status is BotStatus.DRAFT:
            raise InvalidArgument("a draft is not served", field="bot")
        if bot.flow.step(bot.flow.start) is None:
            raise InvalidArgument("the flow's start is not one of its steps", field="bot")
        held = self.bots.get(bot.id)
        if held is not None and (
            bot.version < held.version or (bot.version, bot.status) == (held.version, held.status)
        ):
            return  # held already, or older than what is held (a late retry)
        self._emit(ev.BotPublished(tenant=self.tenant, at=self.clock.now(), bot=cmd.bot))

    def _pause_bot(self, cmd: c.PauseBot) -> None:
        held = self.bots.get(cmd.bot_id)
        if held is None or held.status is BotStatus.PAUSED:
            return
        self._emit(ev.BotPaused(tenant=self.tenant, at=self.clock.now(), bot_id=cmd.bot_id))

    def _remove_bot(self, cmd: c.RemoveBot) -> None:
        if cmd.bot_id in self.bots:
            self._emit(ev.BotRemoved(tenant=self.tenant, at=self.clock.now(), bot_id=cmd.bot_id))

    def _on_bot_published(self, e: ev.BotPublished) -> None:
        bot = codec.bot_from_json(e.bot)
        self.bots[bot.id] = bot

    def _on_bot_paused(self, e: ev.BotPaused) -> None:
        self.bots[e.bot_id] = dataclasses.replace(self.bots[e.bot_id], status=BotStatus.PAUSED)

    def _on_bot_removed(self, e: ev.BotRemoved) -> None:
        del self.bots[e.bot_id]

    # --- triggers ------------------------------------------------------------------------------

    def _queue_for(self, queue_id: str | None, region: str) -> str | None:
        """The queue a conversation would wait in (its own, else the tenant's rules), if any;
        never raising."""
        if queue_id is not None and queue_id in self.queues:
            return queue_id
        for candidate in (self.settings.region_queues.get(region), self.settings.default_queue):
            if candidate in self.queues:
                return candidate
        return None

    def _open_now(self, queue_id: str | None) -> bool:
        """Whether the business is open: the hours of the queue a conversation would wait in
        (no queue, or one without hours: always open; a break is open)."""
        queue = self.queues.get(queue_id) if queue_id is not None else None
        if queue is None:
            return True
        return status_at(queue.settings.hours, self.clock.now()) is not HoursStatus.CLOSED

    def _bot_match(
        self, channel: str, *, new: bool, text: str, reference: str, queue_id: str | None
    ) -> triggers.Match | None:
        """The active bot and trigger an arrival starts (``core.bots.triggers.choose``)."""
        if not self.bots:
            return None
        arrival = triggers.Arrival(
            channel=channel,
            new_conversation=new,
            text=text,
            reference=reference,
            open=self._open_now(queue_id),
        )
        return triggers.choose(self.bots.values(), arrival)

    # --- flows ---------------------------------------------------------------------------------

    def _context(self, conv: Conversation) -> it.Context:
        profile = conv.customer.profile
        tags = conv.tags
        fields: dict[str, FieldValue] = {}
        if profile is not None:
            tags = tags.union(profile.tags) if profile.tags else tags
            fields = {f.key: f.value for f in profile.fields}
        return it.Context(
            channel=conv.channel,
            language=conv.language,
            open=self._open_now(self._queue_for(conv.queue_id, conv.region)),
            tags=tags,
            fields=fields,
            conversation_id=conv.conversation_id,
            customer_id=conv.customer_id,
            now=round(self.clock.now(), 3),
        )

    def _start_flow(self, conv: Conversation, match: triggers.Match, text: str) -> None:
        self._run_flow(conv, match.bot, match.step, trigger_kind(match.trigger), text)

    def _run_flow(
        self, conv: Conversation, bot: Bot, step: str, trigger: str, text: str = ""
    ) -> None:
        run = (conv.bot.run if conv.bot is not None else 0) + 1
        context = self._context(conv)
        try:
            turn = it.start(bot, context, step=step, text=text)
        except it.FlowError:  # a flow the interpreter cannot run: people take over
            turn = _broken(bot, it.BotState(bot_id=bot.id, version=bot.version, step=step))
        self._carry_out(conv, bot, run, turn, trigger)

    def _advance_flow(self, conv: Conversation, given: it.Input) -> None:
        run = conv.bot
        assert run is not None
        try:
            turn = it.advance(run.bot, run.state, given, self._context(conv))
        except it.FlowError:
            turn = _broken(run.bot, run.state)
        if not turn.outputs and turn.state == run.state:
            return  # nothing to do (an effect's answer will reply)
        self._carry_out(conv, run.bot, run.run, turn)

    def _carry_out(
        self, conv: Conversation, bot: Bot, run: int, turn: it.Turn, trigger: str = ""
    ) -> None:
        """Record the turn and do what it says, in order."""
        fields: dict[str, FieldValue] = {}
        added: list[str] = []
        removed: list[str] = []
        for output in turn.outputs:
            if isinstance(output, it.FieldsSet):
                fields.update(output.values)
            elif isinstance(output, it.TagsSet):
                added = [t for t in added if t not in output.remove] + [
                    t for t in output.add if t not in added
                ]
                removed = [t for t in removed if t not in output.add] + [
                    t for t in output.remove if t not in removed
                ]
        effect = turn.effect
        self._emit(
            ev.BotTurned(
                tenant=self.tenant,
                at=self.clock.now(),
                conversation_id=conv.conversation_id,
                customer_id=conv.customer_id,
                bot_id=bot.id,
                version=bot.version,
                run=run,
                state=turn.state,
                trigger=trigger,
                webhook=effect if isinstance(effect, it.WebhookCall) else None,
                knowledge=effect if isinstance(effect, it.KnowledgeSearch) else None,
                fields=tuple(sorted(fields.items())),
                tags_added=tuple(added),
                tags_removed=tuple(removed),
            )
        )
        if fields or added or removed:  # consoles show what the bot wrote, at once
            self._bot_wrote(conv, tuple(sorted(fields.items())), tuple(added), tuple(removed))
        for output in turn.outputs:
            if isinstance(output, it.Reply):
                if conv.state in _WITHOUT_OWNER:
                    self._emit_message(conv, Sender.BOT, None, reply_body(output))
            elif isinstance(output, it.HandOff):
                self._hand_off(conv, bot, run, output)
            elif isinstance(output, it.Ended):
                self._end_flow(conv, bot, run, output)
        current = conv.bot
        if effect is not None and current is not None and current.pending is not None:
            self._effects.append(_effect_of(bot, conv.conversation_id, self.tenant, current))

    def _hand_off(self, conv: Conversation, bot: Bot, run: int, hand_off: it.HandOff) -> None:
        queue_id = self._queue_for(hand_off.queue or conv.queue_id, conv.region)
        skills = tuple((s.skill, s.min_level) for s in hand_off.skills if s.skill in self.skills)
        self._emit(
            ev.BotHandedOff(
                tenant=self.tenant,
                at=self.clock.now(),
                conversation_id=conv.conversation_id,
                bot_id=bot.id,
                version=bot.version,
                run=run,
                reason=hand_off.reason.value,
                queue_id=queue_id or "",
                skills=skills,
                priority=hand_off.priority,
                fields=hand_off.fields,
                agent_ids=self._viewers(conv),
            )
        )
        if conv.state is S.BOT and queue_id is not None:
            self._enqueue(
                conv,
                queue_id,
                QueueReason.BOT_HANDOFF,
                priority=conv.priority + hand_off.priority,
                wanted=frozenset(skills),
            )

    def _end_flow(self, conv: Conversation, bot: Bot, run: int, ended: it.Ended) -> None:
        close = ended.close and conv.state in _WITHOUT_OWNER
        self._emit(
            ev.BotEnded(
                tenant=self.tenant,
                at=self.clock.now(),
                conversation_id=conv.conversation_id,
                bot_id=bot.id,
                version=bot.version,
                run=run,
                closed=close,
            )
        )
        if close:
            self._close_waiting(conv, CloseReason.BOT_RESOLVED, None)

    def _bot_hears(self, conv: Conversation, body: MessageBody) -> None:
        """A customer message while no agent owns the conversation: the running flow's input,
        else perhaps a phrase or keyword trigger's start."""
        if conv.owner is not None or conv.state not in _WITHOUT_OWNER:
            return
        run = conv.bot
        if run is not None and run.running:
            if run.state.waiting is it.Waiting.CUSTOMER:
                given: it.Input = (
                    it.OptionPick(body.selected_option_id, body.text)
                    if body.selected_option_id
                    else it.CustomerText(body.text)
                )
                self._advance_flow(conv, given)
            return  # waiting for an effect: its answer replies
        match = self._bot_match(
            conv.channel,
            new=False,
            text=body.text,
            reference="",
            queue_id=self._queue_for(conv.queue_id, conv.region),
        )
        if match is not None:
            self._start_flow(conv, match, body.text)

    def _bot_returns(self, conv: Conversation) -> None:
        """An agent handed the conversation back: its last bot resumes (else the bot a new
        conversation on its channel gets), at its ``returned`` step or its start."""
        bot = None
        if conv.bot is not None:
            held = self.bots.get(conv.bot.bot.id)
            if held is not None and held.status is BotStatus.ACTIVE:
                bot = held
        if bot is None:
            match = self._bot_match(
                conv.channel,
                new=True,
                text="",
                reference="",
                queue_id=self._queue_for(conv.queue_id, conv.region),
            )
            bot = match.bot if match is not None else None
        if bot is None:
            return
        step = RETURNED_STEP if bot.flow.step(RETURNED_STEP) is not None else bot.flow.start
        self._run_flow(conv, bot, step, RETURNED)

    def _answer_bot_effect(self, cmd: c.AnswerBotEffect) -> None:
        conv = self._conversation(cmd.conversation_id)
        if len(cmd.text) > MAX_MESSAGE_TEXT:
            raise InvalidArgument(f"text is over {MAX_MESSAGE_TEXT} characters", field="text")
        run = conv.bot
        if (
            run is None
            or run.state.waiting is not it.Waiting.EFFECT
            or run.state.effect != cmd.effect
            or run.pending is None
        ):
            return  # late, repeated or unasked: changes nothing
        given: it.Input
        if isinstance(run.pending, it.WebhookCall):
            given = it.WebhookResult(
                effect=cmd.effect, ok=cmd.ok, next_step=cmd.next_step, text=cmd.text
            )
        else:
            given = it.KnowledgeResult(
                effect=cmd.effect,
                ok=cmd.ok,
                answer=cmd.text,
                confident=cmd.confident,
                article=cmd.article,
            )
        self._advance_flow(conv, given)

    def pending_bot_effects(self) -> list[BotEffectRequested]:
        """The effects the tenant's flows wait for: what a restarted runtime issues again."""
        found = []
        for conv in self.conversations.values():
            run = conv.bot
            if run is not None and run.state.waiting is it.Waiting.EFFECT and run.pending:
                found.append(_effect_of(run.bot, conv.conversation_id, self.tenant, run))
        return found

    # --- appliers ------------------------------------------------------------------------------

    def _on_bot_turned(self, e: ev.BotTurned) -> None:
        conv = self.conversations[e.conversation_id]
        previous = conv.bot
        if previous is not None and previous.run == e.run:
            bot, trigger = previous.bot, previous.trigger
        else:
            bot, trigger = self.bots[e.bot_id], e.trigger
        waiting = e.state.waiting is it.Waiting.EFFECT
        conv.bot = BotRun(
            bot=bot,
            state=e.state,
            run=e.run,
            trigger=trigger,
            pending=(e.webhook or e.knowledge or (previous.pending if previous else None))
            if waiting
            else None,
        )

    def _on_bot_flow_over(self, e: ev.BotHandedOff | ev.BotEnded) -> None:
        # the flow's last BotTurned already says it is over; its offers show a hand-off
        if isinstance(e, ev.BotHandedOff):
            self.conversations[e.conversation_id].hand_off = HandOffCard.card(
                bot_id=e.bot_id, version=e.version, reason=e.reason, fields=e.fields, at=e.at
            )

    def _stop_flow(self, conv: Conversation) -> None:
        """The flow stops where it is (an agent has the conversation, or it is over)."""
        run = conv.bot
        if run is not None and run.running:
            state = dataclasses.replace(run.state, waiting=it.Waiting.NOTHING, effect=0)
            conv.bot = dataclasses.replace(run, state=state, pending=None)


def _broken(bot: Bot, state: it.BotState) -> it.Turn:
    """The turn of a flow the interpreter refused (not a validated one): hand off as not
    answered, to the flow's could-not-answer target."""
    target: HandOffAction = bot.flow.could_not_answer
    over = dataclasses.replace(state, waiting=it.Waiting.NOTHING, effect=0)
    hand_off = it.HandOff(
        step=state.step,
        reason=HandOffReason.COULD_NOT_ANSWER,
        queue=target.queue,
        skills=target.skills,
        priority=target.priority,
        fields=state.fields,
    )
    return it.Turn(over, (hand_off,))
