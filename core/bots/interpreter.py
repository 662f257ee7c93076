"""The bot flow interpreter: pure, deterministic, no I/O, no clock.

``start(bot, context)`` begins a flow; ``advance(bot, state, input, context)`` moves it on one
input: a customer's text, an option they picked, or the answer to an effect the flow asked for.
Each returns one ``Turn``: the new ``BotState`` and the outputs to carry out, in order (replies,
field and tag sets, at most one effect request, a hand-off, the end).

The shard runs this beside the routing engine, in the command that carries the input, and
records the turn as events: where a customer is in a flow is then rebuilt from the event log
like all routing state, and the shard's idempotency makes a redelivered input produce one turn.
I/O is an effect: a turn that needs a webhook call or a knowledge-base search ends waiting for
it (``Waiting.EFFECT``, ``state.effect`` its id); the runtime performs it outside the shard and
submits the answer, which resumes the flow (a failure takes the step's fallback). An answer whose
id is not the one awaited (late, repeated) changes nothing and says nothing. A customer message
that arrives while an effect is awaited gets no turn of its own: the effect's answer replies.

Every input produces exactly one turn, and a turn is finite: a validated flow has no loop
without a customer turn (``core.bots.validate``), and the interpreter refuses to enter a step
twice in one turn (``FlowLoop``) should it be handed a flow that was not validated.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeAlias

from core.bots import fields as bot_fields
from core.bots.flow import (
    ActionsStep,
    Bot,
    Branch,
    BusinessHoursCondition,
    ChannelCondition,
    ChoiceStep,
    ChoiceStyle,
    ConditionStep,
    Content,
    EndAction,
    FieldCondition,
    FieldOperator,
    FieldValue,
    HandOffAction,
    HandOffReason,
    KnowledgeStep,
    LanguageCondition,
    MessageStep,
    Option,
    QuestionStep,
    SetFieldAction,
    SetTagsAction,
    SkillNeed,
    Step,
    TagCondition,
    WebhookStep,
)

# --- what the interpreter is given ---------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Context:
    """The conversation as the flow may look at it; times come in here, never from a clock."""

    channel: str = ""
    language: str = ""
    open: bool = True
    """Whether the business is open now."""
    tags: frozenset[str] = frozenset()
    """The customer's tags (the flow's own changes are added by the interpreter)."""
    fields: Mapping[str, FieldValue] = field(default_factory=dict)
    """The customer's field values (the flow's own are added by the interpreter)."""
    conversation_id: str = ""
    customer_id: str = ""
    now: float = 0.0
    """Seconds since the epoch, for the webhook's body."""


@dataclass(frozen=True, slots=True)
class CustomerText:
    text: str


@dataclass(frozen=True, slots=True)
class OptionPick:
    """The customer picked an offered option (``usher.v1.Message.selected_option_id``)."""

    option_id: str
    text: str = ""
    """What the channel showed as the customer's words."""


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookResult:
    """The answer to ``WebhookCall`` ``effect`` (``core.bots.webhook.parse_response``)."""

    effect: int
    ok: bool
    next_step: str = ""
    text: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class KnowledgeResult:
    """The answer to ``KnowledgeSearch`` ``effect``: the best article's answer and whether the
    search is confident enough for the bot to say it."""

    effect: int
    ok: bool
    answer: str = ""
    confident: bool = False
    article: str = ""


Input: TypeAlias = CustomerText | OptionPick | WebhookResult | KnowledgeResult


# --- where a flow is --------------------------------------------------------------------------


class Waiting(StrEnum):
    CUSTOMER = "customer"
    """For the customer's text or pick, at ``step``."""
    EFFECT = "effect"
    """For the answer to effect ``effect``, at ``step``."""
    NOTHING = "nothing"
    """The flow is over (ended or handed off) at ``step``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BotState:
    """Where a conversation is in a flow: all the interpreter needs besides the bot and the
    context. Serializable (``core.bots.codec.state_to_json``)."""

    bot_id: str
    version: int
    step: str = ""
    waiting: Waiting = Waiting.NOTHING
    misses: int = 0
    """Customer turns not understood in a row."""
    fields: tuple[tuple[str, FieldValue], ...] = ()
    """Field values the flow collected or set, by key."""
    tags_added: tuple[str, ...] = ()
    tags_removed: tuple[str, ...] = ()
    last_text: str = ""
    """The customer's last text (a knowledge search's query)."""
    effect: int = 0
    """The id of the effect awaited (0: none)."""
    effects: int = 0
    """Effects requested so far (ids are 1, 2, ...)."""

    @property
    def over(self) -> bool:
        return self.waiting is Waiting.NOTHING


# --- what it answers --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReplyOption:
    id: str
    title: str
    description: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Reply:
    """A bot message; with ``options``, choices the customer picks from."""

    step: str
    content: Content
    options: tuple[ReplyOption, ...] = ()
    style: ChoiceStyle = ChoiceStyle.AUTO
    button_text: str = ""


@dataclass(frozen=True, slots=True)
class FieldsSet:
    """Write these values to the customer's record."""

    values: tuple[tuple[str, FieldValue], ...]


@dataclass(frozen=True, slots=True)
class TagsSet:
    add: tuple[str, ...]
    remove: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookCall:
    """Effect: POST ``body`` to ``url`` signed with the bot's secret
    (``core.bots.webhook.signed_request``), within ``timeout_ms``."""

    effect: int
    step: str
    url: str
    body: str
    timeout_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class KnowledgeSearch:
    """Effect: search the tenant's knowledge base for ``query`` in ``language``."""

    effect: int
    step: str
    query: str
    language: str


@dataclass(frozen=True, slots=True, kw_only=True)
class HandOff:
    """Hand the conversation to people, with what the bot collected."""

    step: str
    reason: HandOffReason
    queue: str = ""
    skills: tuple[SkillNeed, ...] = ()
    priority: int = 0
    fields: tuple[tuple[str, FieldValue], ...] = ()


@dataclass(frozen=True, slots=True)
class Ended:
    """The flow is over; with ``close`` the conversation closes, resolved by the bot."""

    step: str
    close: bool = False


Effect: TypeAlias = WebhookCall | KnowledgeSearch
Output: TypeAlias = Reply | FieldsSet | TagsSet | WebhookCall | KnowledgeSearch | HandOff | Ended


@dataclass(frozen=True, slots=True)
class Turn:
    state: BotState
    outputs: tuple[Output, ...] = ()

    @property
    def replies(self) -> tuple[Reply, ...]:
        return tuple(o for o in self.outputs if isinstance(o, Reply))

    @property
    def effect(self) -> Effect | None:
        return next((o for o in self.outputs if isinstance(o, WebhookCall | KnowledgeSearch)), None)

    @property
    def hand_off(self) -> HandOff | None:
        return next((o for o in self.outputs if isinstance(o, HandOff)), None)

    @property
    def ended(self) -> Ended | None:
        return next((o for o in self.outputs if isinstance(o, Ended)), None)


class FlowError(ValueError):
    """The bot is not one the interpreter can run (it was not validated, or the state is of
    another bot or version)."""


class FlowLoop(FlowError):
    """A step would be entered twice in one turn: a loop without a customer turn."""


# --- the interpreter ----------------------------------------------------------------------------


def start(bot: Bot, context: Context, *, step: str = "", text: str = "") -> Turn:
    """Begin ``bot``'s flow at ``step`` (empty: the flow's start), ``text`` being the message
    that started it, if any (a knowledge step's first query)."""
    state = BotState(bot_id=bot.id, version=bot.version, last_text=text)
    run = _Run(bot, state, context)
    return run.turn(run.go(step or bot.flow.start))


def advance(bot: Bot, state: BotState, given: Input, context: Context) -> Turn:
    """Move ``state`` on by one input. ``bot`` must be the version the state started with."""
    if (state.bot_id, state.version) != (bot.id, bot.version):
        raise FlowError(
            f"state of {state.bot_id} v{state.version} given to {bot.id} v{bot.version}"
        )
    idle = Turn(state)
    if state.over:
        return idle
    step = bot.flow.step(state.step)
    if step is None:
        raise FlowError(f"no step {state.step!r} in {bot.id} v{bot.version}")
    run = _Run(bot, state, context)
    if isinstance(given, WebhookResult | KnowledgeResult):
        if state.waiting is not Waiting.EFFECT or given.effect != state.effect:
            return idle  # late, repeated or unasked: already answered or never asked
        run.effect = 0
        return run.turn(run.answered(step, given))
    if state.waiting is not Waiting.CUSTOMER:
        return idle  # the awaited effect's answer will reply
    return run.turn(run.heard(step, given))


_Pending: TypeAlias = str
"""The id of the step the run stopped at."""


class _Run:
    """One turn's work on a mutable copy of the state."""

    def __init__(self, bot: Bot, state: BotState, context: Context) -> None:
        self.bot = bot
        self.flow = bot.flow
        self.context = context
        self.outputs: list[Output] = []
        self.fields = dict(state.fields)
        self.added = list(state.tags_added)
        self.removed = list(state.tags_removed)
        self.misses = state.misses
        self.last_text = state.last_text
        self.effect = state.effect
        self.effects = state.effects
        self.step = state.step
        self.waiting = state.waiting

    def turn(self, _: _Pending) -> Turn:
        state = BotState(
            bot_id=self.bot.id,
            version=self.bot.version,
            step=self.step,
            waiting=self.waiting,
            misses=self.misses,
            fields=tuple(sorted(self.fields.items())),
            tags_added=tuple(self.added),
            tags_removed=tuple(self.removed),
            last_text=self.last_text,
            effect=self.effect,
            effects=self.effects,
        )
        return Turn(state, tuple(self.outputs))

    # --- stopping ---------------------------------------------------------------------------

    def wait(self, step: Step, waiting: Waiting) -> _Pending:
        self.step, self.waiting = step.id, waiting
        return step.id

    def end(self, at: str, *, close: bool = False) -> _Pending:
        self.step, self.waiting, self.effect = at, Waiting.NOTHING, 0
        self.outputs.append(Ended(at, close))
        return at

    def hand_off(self, at: str, reason: HandOffReason, target: HandOffAction) -> _Pending:
        self.outputs.append(
            HandOff(
                step=at,
                reason=reason,
                queue=target.queue,
                skills=target.skills,
                priority=target.priority,
                fields=tuple(sorted(self.fields.items())),
            )
        )
        self.step, self.waiting, self.effect = at, Waiting.NOTHING, 0
        return at

    def say(self, step: str, text: str) -> None:
        if text:
            self.outputs.append(Reply(step=step, content=Content(body=text)))

    def present(self, step: ChoiceStep) -> None:
        self.outputs.append(
            Reply(
                step=step.id,
                content=step.content,
                options=tuple(ReplyOption(o.id, o.title, o.description) for o in step.options),
                style=step.style,
                button_text=step.button_text,
            )
        )

    def miss(self, step: Step, reply: str) -> _Pending:
        """The customer was not understood at ``step``: the default reply and wait there, or
        after ``max_misses`` in a row the offer of a human."""
        self.misses += 1
        if self.flow.max_misses and self.misses >= self.flow.max_misses:
            self.say(step.id, self.flow.handoff_text)
            return self.hand_off(
                step.id, HandOffReason.COULD_NOT_ANSWER, self.flow.could_not_answer
            )
        said = reply or self.flow.default_reply
        self.say(step.id, said)
        if isinstance(step, ChoiceStep):
            self.present(step)
        elif isinstance(step, QuestionStep) and not said:
            self.outputs.append(Reply(step=step.id, content=step.content))
        return self.wait(step, Waiting.CUSTOMER)

    # --- running steps ------------------------------------------------------------------------

    def go(self, step_id: str) -> _Pending:
        """Run from ``step_id`` until a step waits or the flow is over."""
        seen: set[str] = set()
        at = self.step
        while True:
            if not step_id:
                return self.end(at)
            step = self.flow.step(step_id)
            if step is None:
                raise FlowError(f"no step {step_id!r} in {self.bot.id} v{self.bot.version}")
            if step_id in seen:
                raise FlowLoop(f"step {step_id!r} entered twice in one turn")
            seen.add(step_id)
            at = step_id
            if isinstance(step, MessageStep):
                self.outputs.append(Reply(step=step.id, content=step.content))
                step_id = step.next
            elif isinstance(step, ChoiceStep):
                self.present(step)
                return self.wait(step, Waiting.CUSTOMER)
            elif isinstance(step, QuestionStep):
                self.outputs.append(Reply(step=step.id, content=step.content))
                return self.wait(step, Waiting.CUSTOMER)
            elif isinstance(step, ConditionStep):
                step_id = self.branch(step)
            elif isinstance(step, KnowledgeStep):
                if not self.last_text.strip():
                    if step.otherwise:
                        step_id = step.otherwise
                        continue
                    return self.miss(step, "")
                return self.request(
                    step,
                    KnowledgeSearch(
                        effect=self.effects + 1,
                        step=step.id,
                        query=self.last_text,
                        language=step.language or self.context.language,
                    ),
                )
            elif isinstance(step, WebhookStep):
                return self.request(
                    step,
                    WebhookCall(
                        effect=self.effects + 1,
                        step=step.id,
                        url=step.url,
                        body=self.webhook_body(step, self.effects + 1),
                        timeout_ms=step.timeout_ms,
                    ),
                )
            else:
                done = self.act(step)
                if done is not None:
                    return done
                step_id = step.next

    def request(self, step: Step, effect: Effect) -> _Pending:
        self.effects = self.effect = effect.effect
        self.outputs.append(effect)
        return self.wait(step, Waiting.EFFECT)

    def act(self, step: ActionsStep) -> _Pending | None:
        """Do the step's actions; the stop if one ends the flow."""
        for action in step.actions:
            if isinstance(action, SetTagsAction):
                for tag in action.add:
                    if tag in self.removed:
                        self.removed.remove(tag)
                    if tag not in self.added:
                        self.added.append(tag)
                for tag in action.remove:
                    if tag in self.added:
                        self.added.remove(tag)
                    if tag not in self.removed:
                        self.removed.append(tag)
                self.outputs.append(TagsSet(action.add, action.remove))
            elif isinstance(action, SetFieldAction):
                self.fields[action.field.key] = action.value
                self.outputs.append(FieldsSet(((action.field.key, action.value),)))
            elif isinstance(action, HandOffAction):
                return self.hand_off(step.id, HandOffReason.FLOW, action)
            elif isinstance(action, EndAction):
                return self.end(step.id, close=action.close)
        return None

    # --- inputs -------------------------------------------------------------------------------

    def heard(self, step: Step, given: CustomerText | OptionPick) -> _Pending:
        """The customer wrote or picked something while ``step`` waited for them."""
        text = given.text if isinstance(given, CustomerText) else (given.text or given.option_id)
        self.last_text = text
        if isinstance(step, ChoiceStep):
            option = _picked(step.options, given)
            if option is None:
                return self.miss(step, step.no_match_reply)
            self.misses = 0
            return self.go(option.next)
        if isinstance(step, QuestionStep):
            if step.field is not None:
                value = bot_fields.parse_answer(step.field, text)
                if isinstance(value, bot_fields.Invalid):
                    return self.miss(step, step.invalid_reply)
                self.fields[step.field.key] = value
                self.outputs.append(FieldsSet(((step.field.key, value),)))
            self.misses = 0
            return self.go(step.next)
        if isinstance(step, KnowledgeStep):
            return self.go(step.id)
        raise FlowError(f"step {step.id!r} does not wait for the customer")

    def answered(self, step: Step, given: WebhookResult | KnowledgeResult) -> _Pending:
        """The awaited effect of ``step`` was answered."""
        if isinstance(step, KnowledgeStep):
            if isinstance(given, KnowledgeResult) and given.ok and given.confident:
                self.misses = 0
                self.say(step.id, given.answer)
                return self.go(step.next) if step.next else self.wait(step, Waiting.CUSTOMER)
            if step.otherwise:
                return self.go(step.otherwise)
            return self.miss(step, "")
        if isinstance(step, WebhookStep):
            if not isinstance(given, WebhookResult) or not given.ok:
                return self.go(step.fallback)
            if given.next_step and given.next_step not in step.allowed_next:
                return self.go(step.fallback)
            self.say(step.id, given.text)
            return self.go(given.next_step or step.next)
        raise FlowError(f"step {step.id!r} awaits no effect")

    # --- conditions ---------------------------------------------------------------------------

    def branch(self, step: ConditionStep) -> str:
        for branch in step.branches:
            if self.holds(branch) != branch.negate:
                return branch.next
        return step.otherwise

    def holds(self, branch: Branch) -> bool:
        condition = branch.condition
        context = self.context
        if isinstance(condition, BusinessHoursCondition):
            return context.open
        if isinstance(condition, ChannelCondition):
            return context.channel in condition.channels
        if isinstance(condition, TagCondition):
            tags = (set(context.tags) | set(self.added)) - set(self.removed)
            return condition.tag in tags
        if isinstance(condition, LanguageCondition):
            return _language_in(context.language, condition.languages)
        return _field_holds(condition, {**context.fields, **self.fields})

    def webhook_body(self, step: WebhookStep, effect: int) -> str:
        """The JSON a webhook receives: deterministic (keys sorted, no spaces)."""
        context = self.context
        tags = sorted((set(context.tags) | set(self.added)) - set(self.removed))
        document = {
            "bot": self.bot.id,
            "version": self.bot.version,
            "step": step.id,
            "effect": effect,
            "conversation": context.conversation_id,
            "customer": context.customer_id,
            "channel": context.channel,
            "language": context.language,
            "text": self.last_text,
            "fields": {k: _json_value(v) for k, v in sorted(self.fields.items())},
            "tags": tags,
            "time": context.now,
        }
        return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _json_value(value: FieldValue) -> object:
    return list(value) if isinstance(value, tuple) else value


def _picked(options: tuple[Option, ...], given: CustomerText | OptionPick) -> Option | None:
    """The option a pick names (by id), or a text names (by id, title or number, ignoring case
    and surrounding spaces)."""
    if isinstance(given, OptionPick):
        return next((o for o in options if o.id == given.option_id), None)
    said = given.text.strip().casefold()
    if not said:
        return None
    for option in options:
        if said in (option.id.casefold(), option.title.strip().casefold()):
            return option
    if said.isascii() and said.isdigit() and 1 <= int(said) <= len(options):
        return options[int(said) - 1]
    return None


def _language_in(language: str, wanted: tuple[str, ...]) -> bool:
    tag = language.casefold()
    return any(tag == w.casefold() or tag.startswith(w.casefold() + "-") for w in wanted if w)


def _field_holds(condition: FieldCondition, values: Mapping[str, FieldValue]) -> bool:
    value = values.get(condition.field.key)
    if value is None or value == "" or value == ():
        return False
    if condition.operator is FieldOperator.IS_SET:
        return True
    wanted = condition.value.strip().casefold()
    if condition.operator is FieldOperator.EQUALS:
        if isinstance(value, tuple):
            return any(v.casefold() == wanted for v in value)
        return bot_fields.as_text(value).casefold() == wanted
    return wanted in bot_fields.as_text(value).casefold()
