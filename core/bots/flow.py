"""A bot as frozen values: its triggers, its flow of steps, and the settings of a flow.

No I/O and no dependency on the engine: ``core.routing`` may import this package, never the
reverse. Names mirror ``usher.v1.Bot`` (``protos/usher/v1/bot.proto``) so that a validation
problem's path (``flow.steps[3].choice.options[0].title``) reads the same on both sides.

Step references (``next``, ``otherwise``, ``fallback``...) are step ids; an empty reference means
what each step documents (the flow ends, or the step stays where it is). ``core.bots.validate``
decides whether a bot may be stored or served; the interpreter (``core.bots.interpreter``) may
assume a validated bot.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final, TypeAlias

FieldValue: TypeAlias = str | float | bool | tuple[str, ...]
"""A customer field's value, as ``core.store.customer_fields`` holds it."""

DEFAULT_MAX_MISSES: Final = 3
RETURNED_STEP: Final = "returned"
"""The step an agent's hand-back (``SetConversationMode`` AUTO) resumes the flow at, when the
flow has one (else its start): an entry point, like the start and the triggers' steps."""
MAX_WEBHOOK_TIMEOUT_MS: Final = 10_000
DEFAULT_WEBHOOK_TIMEOUT_MS: Final = 5_000


class BotStatus(StrEnum):
    DRAFT = "draft"
    """Never served; edits change it in place."""
    ACTIVE = "active"
    """Served: its triggers start conversations; an edit becomes a new version."""
    PAUSED = "paused"
    """Served before, not now: no trigger starts it; an edit becomes a new version."""


class PhraseMatch(StrEnum):
    EXACT = "exact"
    """The whole message, ignoring case and surrounding spaces."""
    CONTAINS = "contains"
    """Anywhere in the message, ignoring case."""
    PATTERN = "pattern"
    """An RE2 regular expression found in the message, ignoring case (linear time)."""


class ChoiceStyle(StrEnum):
    """As ``usher.v1.ChoiceStyle``: ``AUTO`` lets the channel choose."""

    AUTO = "auto"
    BUTTONS = "buttons"
    LIST = "list"


class FieldOperator(StrEnum):
    IS_SET = "is_set"
    EQUALS = "equals"
    """The value as text equals ``value`` ignoring case (a multiple choice: holds it)."""
    CONTAINS = "contains"
    """The value as text contains ``value`` ignoring case."""


class HandOffReason(StrEnum):
    FLOW = "bot_handoff"
    """A hand-off action of the flow."""
    COULD_NOT_ANSWER = "bot_could_not_answer"
    """The customer was not understood ``max_misses`` times in a row."""


# --- triggers -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class NewConversationTrigger:
    """Every new conversation on one of the bot's channels."""

    step: str = ""
    """Where the flow starts; empty: ``Flow.start``. (Every trigger has it.)"""


@dataclass(frozen=True, slots=True, kw_only=True)
class PhraseTrigger:
    """A customer message that is, contains or matches ``text``."""

    text: str
    match: PhraseMatch = PhraseMatch.EXACT
    step: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReferenceTrigger:
    """A conversation opened from a QR code or a campaign link carrying ``reference``."""

    reference: str
    step: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class OutOfHoursTrigger:
    """A new conversation while the business is closed (``Context.open`` is false)."""

    step: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class KeywordTrigger:
    """Any customer message of a conversation that contains one of ``keywords`` (ignoring
    case), whenever it comes."""

    keywords: tuple[str, ...]
    step: str = ""


Trigger: TypeAlias = (
    NewConversationTrigger | PhraseTrigger | ReferenceTrigger | OutOfHoursTrigger | KeywordTrigger
)


# --- what a step shows ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Media:
    """A file shown with a message (as ``usher.v1.Attachment``)."""

    uri: str
    content_type: str = ""
    name: str = ""
    sha256: str = ""
    size: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Content:
    """A message: a title (a header where the channel has one), a body, a footer, media."""

    title: str = ""
    body: str = ""
    footer: str = ""
    media: tuple[Media, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Option:
    """One choice; a pick of ``id`` (or its title, or its number) goes to ``next``."""

    id: str
    title: str
    description: str = ""
    next: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class FieldSpec:
    """A customer field a step reads or writes, with its type (``core.store.customer_fields``
    TYPES, resolved from the tenant's definitions when the bot is saved; empty: unknown)."""

    key: str
    type: str = ""
    choices: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class SkillNeed:
    skill: str
    min_level: int = 1


# --- steps ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageStep:
    """Say something, then go to ``next`` (empty: the flow ends)."""

    id: str
    content: Content
    next: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ChoiceStep:
    """Offer ``options`` (buttons or a list menu) and wait for a pick. Anything else is a miss:
    ``no_match_reply`` (else the flow's default reply) and the choices again."""

    id: str
    content: Content
    options: tuple[Option, ...]
    style: ChoiceStyle = ChoiceStyle.AUTO
    button_text: str = ""
    """The label of the button that opens a list."""
    no_match_reply: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class QuestionStep:
    """Ask, and wait for free text. With a ``field`` the answer must be a valid value of it
    (else a miss: ``invalid_reply``, else the default reply) and is collected; without, it is
    only remembered as the customer's last text. Then ``next`` (empty: the flow ends)."""

    id: str
    content: Content
    field: FieldSpec | None = None
    invalid_reply: str = ""
    next: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class BusinessHoursCondition:
    """The business is open now (``Context.open``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelCondition:
    channels: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class TagCondition:
    tag: str


@dataclass(frozen=True, slots=True, kw_only=True)
class FieldCondition:
    field: FieldSpec
    operator: FieldOperator = FieldOperator.IS_SET
    value: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class LanguageCondition:
    """The conversation's language is one of ``languages`` or a more specific tag of one
    (``zh`` holds for ``zh-Hant-HK``)."""

    languages: tuple[str, ...]


Condition: TypeAlias = (
    BusinessHoursCondition | ChannelCondition | TagCondition | FieldCondition | LanguageCondition
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Branch:
    condition: Condition
    next: str
    negate: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ConditionStep:
    """Go to the first branch whose condition holds, else ``otherwise``."""

    id: str
    branches: tuple[Branch, ...]
    otherwise: str


@dataclass(frozen=True, slots=True, kw_only=True)
class KnowledgeStep:
    """Search the knowledge base for the customer's last text (an effect). A confident answer
    is said, then ``next`` (empty: wait here for the next question). Otherwise, or when the
    search fails, ``otherwise`` (empty: a miss, and wait here for the next question)."""

    id: str
    language: str = ""
    """The articles' language; empty: the conversation's."""
    next: str = ""
    otherwise: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookStep:
    """POST the conversation's facts to ``url`` (an effect, signed with the bot's secret). A
    2xx JSON answer may say ``text`` (said) and ``next_step`` (one of ``allowed_next``), else
    ``next`` (empty: the flow ends). A failure, a timeout or a step not allowed: ``fallback``."""

    id: str
    url: str
    fallback: str
    timeout_ms: int = DEFAULT_WEBHOOK_TIMEOUT_MS
    next: str = ""
    allowed_next: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class SetTagsAction:
    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class SetFieldAction:
    field: FieldSpec
    value: FieldValue


@dataclass(frozen=True, slots=True, kw_only=True)
class HandOffAction:
    """Hand the conversation to people: ``queue`` (empty: the tenant's default), the skills
    wanted and a priority. Ends the flow."""

    queue: str = ""
    skills: tuple[SkillNeed, ...] = ()
    priority: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class EndAction:
    """The flow ends; with ``close`` the conversation is closed as resolved by the bot."""

    close: bool = False


Action: TypeAlias = SetTagsAction | SetFieldAction | HandOffAction | EndAction


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionsStep:
    """Do ``actions`` in order, then ``next`` (empty: the flow ends). A hand-off or an end may
    only be the last action, and then ``next`` is empty."""

    id: str
    actions: tuple[Action, ...]
    next: str = ""


Step: TypeAlias = (
    MessageStep
    | ChoiceStep
    | QuestionStep
    | ConditionStep
    | KnowledgeStep
    | WebhookStep
    | ActionsStep
)

STEP_KINDS: Final[Mapping[type, str]] = {
    MessageStep: "message",
    ChoiceStep: "choice",
    QuestionStep: "question",
    ConditionStep: "condition",
    KnowledgeStep: "knowledge",
    WebhookStep: "webhook",
    ActionsStep: "actions",
}
"""Each step class's name in the proto's ``oneof kind`` (and in field paths)."""

WAITING_STEPS: Final = (ChoiceStep, QuestionStep)
"""Steps that always wait for the customer."""


# --- the flow and the bot ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Flow:
    """The steps and what happens when the customer is not understood: ``default_reply``
    after a miss, and after ``max_misses`` misses in a row (0: never) ``handoff_text`` and a
    hand-off to ``could_not_answer`` with reason ``bot_could_not_answer``."""

    start: str
    steps: tuple[Step, ...]
    default_reply: str = ""
    max_misses: int = DEFAULT_MAX_MISSES
    handoff_text: str = ""
    could_not_answer: HandOffAction = HandOffAction()
    _index: Mapping[str, Step] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {step.id: step for step in self.steps})

    def step(self, step_id: str) -> Step | None:
        return self._index.get(step_id)

    def __getstate__(self) -> dict[str, object]:
        return {
            "start": self.start,
            "steps": self.steps,
            "default_reply": self.default_reply,
            "max_misses": self.max_misses,
            "handoff_text": self.handoff_text,
            "could_not_answer": self.could_not_answer,
        }

    def __setstate__(self, state: dict[str, object]) -> None:
        for name, value in state.items():
            object.__setattr__(self, name, value)
        self.__post_init__()


@dataclass(frozen=True, slots=True, kw_only=True)
class Bot:
    """One version of a bot: ``id`` and ``version`` name it; ``channels`` are channel ids."""

    id: str
    flow: Flow
    name: str = ""
    channels: tuple[str, ...] = ()
    status: BotStatus = BotStatus.DRAFT
    triggers: tuple[Trigger, ...] = ()
    version: int = 1
