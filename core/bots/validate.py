"""Whether a bot may be stored or served: every problem at once, each with its field path.

``validate(bot, channel_types=...)`` returns ``Problem``s whose ``field`` is the path in
``usher.v1.Bot`` (``flow.steps[2].choice.options[0].title``). Errors refuse the write; warnings
are returned beside a stored draft. The rules:

- references: a step a reference names must exist (``next``, an option's or a branch's step,
  ``otherwise``, ``fallback``, ``allowed_next``, a trigger's ``step``, ``start``); the ones a
  step requires must be set;
- no loop without a customer turn: a cycle of steps none of which waits for the customer
  (a choice or a question; a knowledge step staying for the next question) would run for ever
  inside one turn;
- unreachable steps (from the start, the triggers' steps and ``returned``, where an agent's
  hand-back resumes): a WARNING in a draft, which is work in progress, and an ERROR for what is
  served (``strict``: activating, or editing an active or paused bot), which must be tidy;
- channels: each must be known (a channel of the tenant, or a channel type's name) and what a
  choice step offers must fit each: WhatsApp reply buttons (at most 3, titles of 20), WhatsApp
  list rows (at most 10, titles of 24, descriptions of 72, the list button of 20, a body of
  1,024, a header and footer of 60), LINE quick replies (at most 13, labels of 20);
- webhooks: an ``https`` URL with a host (``http`` to 127.0.0.1, ::1 or localhost only when
  ``allow_insecure_webhooks``), a timeout of 1 ms to 10 s;
- sizes: at most 200 steps, 10 options, 20 branches, 20 actions, 50 triggers; texts at most
  4,096 characters (titles and footers 200); patterns RE2 within ``core.bots.triggers`` caps;
- served bots also need a channel and a default reply.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final
from urllib.parse import urlsplit

from core.bots import fields as bot_fields
from core.bots.flow import (
    RETURNED_STEP,
    STEP_KINDS,
    ActionsStep,
    Bot,
    ChannelCondition,
    ChoiceStep,
    ChoiceStyle,
    ConditionStep,
    Content,
    EndAction,
    FieldCondition,
    FieldSpec,
    HandOffAction,
    KeywordTrigger,
    KnowledgeStep,
    LanguageCondition,
    MessageStep,
    PhraseMatch,
    PhraseTrigger,
    QuestionStep,
    ReferenceTrigger,
    SetFieldAction,
    SetTagsAction,
    Step,
    TagCondition,
    WebhookStep,
)
from core.bots.triggers import BadPattern, compile_pattern

MAX_STEPS: Final = 200
MAX_OPTIONS: Final = 10
MAX_BRANCHES: Final = 20
MAX_ACTIONS: Final = 20
MAX_TRIGGERS: Final = 50
MAX_KEYWORDS: Final = 50
MAX_TEXT: Final = 4_096
MAX_SHORT: Final = 200
MAX_MEDIA: Final = 10
MAX_MISSES: Final = 20
MAX_PRIORITY: Final = 1_000
MAX_TAGS: Final = 50
MAX_TAG: Final = 100
MAX_URL: Final = 2_048
MAX_WEBHOOK_TIMEOUT_MS: Final = 10_000
CHANNEL_TYPES: Final = ("web_chat", "whatsapp", "line", "sms", "email")
LOOPBACK_HOSTS: Final = frozenset({"localhost", "127.0.0.1", "::1"})


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Problem:
    field: str
    description: str
    severity: Severity = Severity.ERROR


@dataclass(frozen=True, slots=True)
class ChannelCaps:
    """What one channel can show of a choice step."""

    name: str
    buttons: int | None = None
    button_title: int | None = None
    rows: int | None = None
    row_title: int | None = None
    row_description: int | None = None
    list_button: int | None = None
    quick_replies: int | None = None
    quick_reply_label: int | None = None
    body: int | None = None
    header: int | None = None
    footer: int | None = None


CAPS: Final[Mapping[str, ChannelCaps]] = {
    "whatsapp": ChannelCaps(
        "WhatsApp",
        buttons=3,
        button_title=20,
        rows=10,
        row_title=24,
        row_description=72,
        list_button=20,
        body=1_024,
        header=60,
        footer=60,
    ),
    "line": ChannelCaps("LINE", quick_replies=13, quick_reply_label=20),
}


def validate(
    bot: Bot,
    *,
    channel_types: Mapping[str, str],
    strict: bool = False,
    allow_insecure_webhooks: bool = False,
) -> list[Problem]:
    """Every problem of ``bot``; ``channel_types`` maps the tenant's channel ids to their types.
    ``strict``: the bot is to be served (unreachable steps are errors; a channel and a default
    reply are required)."""
    return list(_Check(bot, channel_types, strict, allow_insecure_webhooks).run())


def errors(problems: list[Problem]) -> dict[str, str]:
    """The errors among ``problems``, field -> description (the first per field)."""
    found: dict[str, str] = {}
    for problem in problems:
        if problem.severity is Severity.ERROR:
            found.setdefault(problem.field, problem.description)
    return found


def successors(step: Step) -> list[tuple[str, str]]:
    """(field path under the step, step id) of every step ``step`` may lead to (empty ids
    included: the caller decides what empty means)."""
    kind = STEP_KINDS[type(step)]
    if isinstance(step, MessageStep | QuestionStep):
        return [(f"{kind}.next", step.next)]
    if isinstance(step, ChoiceStep):
        return [(f"{kind}.options[{i}].next", o.next) for i, o in enumerate(step.options)]
    if isinstance(step, ConditionStep):
        found = [(f"{kind}.branches[{i}].next", b.next) for i, b in enumerate(step.branches)]
        return [*found, (f"{kind}.otherwise", step.otherwise)]
    if isinstance(step, KnowledgeStep):
        return [(f"{kind}.next", step.next), (f"{kind}.otherwise", step.otherwise)]
    if isinstance(step, WebhookStep):
        found = [(f"{kind}.next", step.next), (f"{kind}.fallback", step.fallback)]
        return found + [(f"{kind}.allowed_next[{i}]", s) for i, s in enumerate(step.allowed_next)]
    return [(f"{kind}.next", step.next)]


def _immediate(step: Step) -> list[str]:
    """The steps ``step`` may run next within the same turn (no customer turn between)."""
    if isinstance(step, ChoiceStep | QuestionStep):
        return []
    return [target for _, target in successors(step) if target]


def loops(steps: tuple[Step, ...]) -> list[list[str]]:
    """The cycles of steps without a customer turn (strongly connected components of the
    same-turn graph with a cycle), each as step ids in a cycle's order."""
    graph = {s.id: [t for t in _immediate(s)] for s in steps}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        # iterative Tarjan: (node, next edge position)
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, position = work.pop()
            if position == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            edges = [t for t in graph.get(node, []) if t in graph]
            if position < len(edges):
                work.append((node, position + 1))
                target = edges[position]
                if target not in index:
                    work.append((target, 0))
                elif target in on_stack:
                    low[node] = min(low[node], index[target])
                continue
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph[node]:
                    found.append(list(reversed(component)))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return found


class _Check:
    def __init__(
        self, bot: Bot, channel_types: Mapping[str, str], strict: bool, insecure: bool
    ) -> None:
        self.bot = bot
        self.flow = bot.flow
        self.strict = strict
        self.insecure = insecure
        self.ids = {s.id for s in bot.flow.steps}
        self.position = {s.id: i for i, s in reversed(list(enumerate(bot.flow.steps)))}
        self.caps: list[ChannelCaps] = []
        self.channel_types = channel_types

    def run(self) -> Iterator[Problem]:
        yield from self.channels()
        yield from self.triggers()
        yield from self.settings()
        yield from self.steps()
        if len(self.flow.steps) <= MAX_STEPS:
            yield from self.graph()

    # --- the bot ------------------------------------------------------------------------------

    def channels(self) -> Iterator[Problem]:
        if self.strict and not self.bot.channels:
            yield Problem("channels", "a bot to be served needs a channel")
        seen: set[str] = set()
        for i, channel in enumerate(self.bot.channels):
            if channel in seen:
                yield Problem(f"channels[{i}]", "named twice")
            seen.add(channel)
            kind = self.channel_types.get(channel)
            if kind is None and channel in CHANNEL_TYPES:
                kind = channel
            if kind is None:
                yield Problem(f"channels[{i}]", "no such channel")
            elif kind in CAPS:
                self.caps.append(CAPS[kind])

    def triggers(self) -> Iterator[Problem]:
        if len(self.bot.triggers) > MAX_TRIGGERS:
            yield Problem("triggers", f"at most {MAX_TRIGGERS}")
            return
        for i, trigger in enumerate(self.bot.triggers):
            where = f"triggers[{i}]"
            if trigger.step:
                yield from self.reference(f"{where}.step", trigger.step)
            if isinstance(trigger, PhraseTrigger):
                if not trigger.text.strip():
                    yield Problem(f"{where}.phrase.text", "required")
                elif trigger.match is PhraseMatch.PATTERN:
                    try:
                        compile_pattern(trigger.text)
                    except BadPattern as exc:
                        yield Problem(f"{where}.phrase.text", str(exc))
                elif len(trigger.text) > MAX_SHORT:
                    yield Problem(f"{where}.phrase.text", f"at most {MAX_SHORT} characters")
            elif isinstance(trigger, KeywordTrigger):
                if not 1 <= len(trigger.keywords) <= MAX_KEYWORDS:
                    yield Problem(f"{where}.keyword.keywords", f"1 to {MAX_KEYWORDS} keywords")
                for j, word in enumerate(trigger.keywords):
                    if not word.strip() or len(word) > MAX_TAG:
                        yield Problem(
                            f"{where}.keyword.keywords[{j}]", f"1 to {MAX_TAG} characters"
                        )
            elif isinstance(trigger, ReferenceTrigger) and not trigger.reference:
                yield Problem(f"{where}.reference.reference", "required")

    def settings(self) -> Iterator[Problem]:
        flow = self.flow
        if self.strict and not flow.default_reply.strip():
            yield Problem("flow.default_reply", "a bot to be served needs a default reply")
        yield from _text("flow.default_reply", flow.default_reply, MAX_TEXT)
        yield from _text("flow.handoff_text", flow.handoff_text, MAX_TEXT)
        if not 0 <= flow.max_misses <= MAX_MISSES:
            yield Problem("flow.max_misses", f"0 (never) to {MAX_MISSES}")
        yield from self.hand_off_target("flow.could_not_answer", flow.could_not_answer)
        if not flow.start:
            yield Problem("flow.start_step", "required")
        else:
            yield from self.reference("flow.start_step", flow.start)

    # --- steps --------------------------------------------------------------------------------

    def steps(self) -> Iterator[Problem]:
        steps = self.flow.steps
        if not steps:
            yield Problem("flow.steps", "a flow needs a step")
            return
        if len(steps) > MAX_STEPS:
            yield Problem("flow.steps", f"at most {MAX_STEPS} steps")
            return
        for i, step in enumerate(steps):
            where = f"flow.steps[{i}]"
            if not step.id:
                yield Problem(f"{where}.id", "required")
            elif self.position[step.id] != i:
                yield Problem(f"{where}.id", f"step {step.id!r} is defined twice")
            yield from self.step(where, step)

    def step(self, where: str, step: Step) -> Iterator[Problem]:
        kind = STEP_KINDS[type(step)]
        at = f"{where}.{kind}"
        if isinstance(step, MessageStep):
            yield from self.content(f"{at}.content", step.content)
            if not step.content.body.strip() and not step.content.media:
                yield Problem(f"{at}.content.body", "a message says something (a body or media)")
        elif isinstance(step, ChoiceStep):
            yield from self.choice(at, step)
        elif isinstance(step, QuestionStep):
            yield from self.content(f"{at}.content", step.content)
            if not step.content.body.strip():
                yield Problem(f"{at}.content.body", "a question asks something")
            yield from _text(f"{at}.invalid_reply", step.invalid_reply, MAX_TEXT)
            if step.field is not None:
                yield from _field(f"{at}.field", step.field)
        elif isinstance(step, ConditionStep):
            yield from self.condition(at, step)
        elif isinstance(step, KnowledgeStep):
            if len(step.language) > 35:
                yield Problem(f"{at}.language", "a BCP 47 tag")
        elif isinstance(step, WebhookStep):
            yield from self.webhook(at, step)
        else:
            yield from self.actions(at, step)
        for path, target in successors(step):
            yield from self.next(f"{where}.{path}", target, required=_required(step, path))

    def next(self, path: str, target: str, *, required: bool) -> Iterator[Problem]:
        if not target:
            if required:
                yield Problem(path, "required: the step it leads to")
            return
        yield from self.reference(path, target)

    def reference(self, path: str, target: str) -> Iterator[Problem]:
        if target not in self.ids:
            yield Problem(path, f"leads nowhere: no step {target[:64]!r}")

    def content(self, where: str, content: Content, *, choice: bool = False) -> Iterator[Problem]:
        yield from _text(f"{where}.title", content.title, MAX_SHORT)
        yield from _text(f"{where}.body", content.body, MAX_TEXT)
        yield from _text(f"{where}.footer", content.footer, MAX_SHORT)
        if len(content.media) > MAX_MEDIA:
            yield Problem(f"{where}.media", f"at most {MAX_MEDIA}")
        for i, media in enumerate(content.media):
            if not media.uri:
                yield Problem(f"{where}.media[{i}].uri", "required")
        if not choice:
            return
        for caps in self.caps:
            if caps.body is not None and len(content.body) > caps.body:
                yield Problem(f"{where}.body", f"{caps.name} shows at most {caps.body} characters")
            if caps.header is not None and len(content.title) > caps.header:
                yield Problem(
                    f"{where}.title", f"{caps.name} shows at most {caps.header} characters"
                )
            if caps.footer is not None and len(content.footer) > caps.footer:
                yield Problem(
                    f"{where}.footer", f"{caps.name} shows at most {caps.footer} characters"
                )

    def choice(self, at: str, step: ChoiceStep) -> Iterator[Problem]:
        yield from self.content(f"{at}.content", step.content, choice=True)
        if not step.content.body.strip():
            yield Problem(f"{at}.content.body", "choices need a text to go with")
        yield from _text(f"{at}.no_match_reply", step.no_match_reply, MAX_TEXT)
        yield from _text(f"{at}.button_text", step.button_text, MAX_SHORT)
        options = step.options
        if not 1 <= len(options) <= MAX_OPTIONS:
            yield Problem(f"{at}.options", f"1 to {MAX_OPTIONS} options")
            return
        ids: set[str] = set()
        for j, option in enumerate(options):
            where = f"{at}.options[{j}]"
            if not option.id:
                yield Problem(f"{where}.id", "required")
            elif option.id in ids:
                yield Problem(f"{where}.id", "two options share this id")
            ids.add(option.id)
            if not option.title.strip():
                yield Problem(f"{where}.title", "required")
            yield from _text(f"{where}.title", option.title, MAX_SHORT)
            yield from _text(f"{where}.description", option.description, MAX_SHORT)
        for caps in self.caps:
            yield from _fits(at, step, caps)

    def condition(self, at: str, step: ConditionStep) -> Iterator[Problem]:
        if not 1 <= len(step.branches) <= MAX_BRANCHES:
            yield Problem(f"{at}.branches", f"1 to {MAX_BRANCHES} branches")
        for j, branch in enumerate(step.branches):
            where = f"{at}.branches[{j}].condition"
            condition = branch.condition
            if isinstance(condition, ChannelCondition) and not condition.channels:
                yield Problem(f"{where}.channel.channels", "at least one channel")
            elif isinstance(condition, TagCondition) and not condition.tag:
                yield Problem(f"{where}.tag.tag", "required")
            elif isinstance(condition, LanguageCondition) and not condition.languages:
                yield Problem(f"{where}.language.languages", "at least one language")
            elif isinstance(condition, FieldCondition):
                yield from _field(f"{where}.field.field", condition.field)

    def webhook(self, at: str, step: WebhookStep) -> Iterator[Problem]:
        problem = _url_problem(step.url, self.insecure)
        if problem:
            yield Problem(f"{at}.url", problem)
        if not 1 <= step.timeout_ms <= MAX_WEBHOOK_TIMEOUT_MS:
            yield Problem(f"{at}.timeout", "more than 0 and at most 10 s")
        if len(step.allowed_next) > MAX_STEPS:
            yield Problem(f"{at}.allowed_next", f"at most {MAX_STEPS}")

    def actions(self, at: str, step: ActionsStep) -> Iterator[Problem]:
        actions = step.actions
        if not 1 <= len(actions) <= MAX_ACTIONS:
            yield Problem(f"{at}.actions", f"1 to {MAX_ACTIONS} actions")
        for j, action in enumerate(actions):
            where = f"{at}.actions[{j}]"
            last = j == len(actions) - 1
            if isinstance(action, SetTagsAction):
                if not action.add and not action.remove:
                    yield Problem(f"{where}.set_tags", "add or remove a tag")
                for name, tags in (("add", action.add), ("remove", action.remove)):
                    if len(tags) > MAX_TAGS:
                        yield Problem(f"{where}.set_tags.{name}", f"at most {MAX_TAGS}")
                    for k, tag in enumerate(tags):
                        if not tag.strip() or len(tag) > MAX_TAG:
                            yield Problem(
                                f"{where}.set_tags.{name}[{k}]", f"1 to {MAX_TAG} characters"
                            )
            elif isinstance(action, SetFieldAction):
                yield from _field(f"{where}.set_field.field", action.field)
                if action.field.type:
                    problem = bot_fields.check(action.field, action.value)
                    if problem:
                        yield Problem(f"{where}.set_field.value", problem)
            else:
                name = "hand_off" if isinstance(action, HandOffAction) else "end"
                if not last:
                    yield Problem(f"{where}.{name}", "ends the flow: only the last action")
                elif step.next:
                    yield Problem(f"{at}.next", f"the step ends with {name}: nothing follows")
                if isinstance(action, HandOffAction):
                    yield from self.hand_off_target(f"{where}.hand_off", action)
                else:
                    assert isinstance(action, EndAction)

    def hand_off_target(self, where: str, target: HandOffAction) -> Iterator[Problem]:
        if not -MAX_PRIORITY <= target.priority <= MAX_PRIORITY:
            yield Problem(f"{where}.priority", f"within +-{MAX_PRIORITY}")
        for k, need in enumerate(target.skills):
            if not 1 <= need.min_level <= 10:
                yield Problem(f"{where}.skills[{k}].min_level", "1 to 10")

    # --- the graph ----------------------------------------------------------------------------

    def graph(self) -> Iterator[Problem]:
        steps = {s.id: s for s in self.flow.steps}
        for cycle in loops(self.flow.steps):
            first = cycle[0]
            shown = " -> ".join([*cycle[:6], first] if len(cycle) <= 6 else [*cycle[:6], "..."])
            yield Problem(
                f"flow.steps[{self.position[first]}]",
                f"a loop without a customer turn: {shown}",
            )
        roots = [self.flow.start, RETURNED_STEP, *(t.step for t in self.bot.triggers if t.step)]
        reached: set[str] = set()
        todo = [r for r in roots if r in steps]
        while todo:
            step_id = todo.pop()
            if step_id in reached:
                continue
            reached.add(step_id)
            todo.extend(t for _, t in successors(steps[step_id]) if t in steps)
        severity = Severity.ERROR if self.strict else Severity.WARNING
        for i, step in enumerate(self.flow.steps):
            if step.id and step.id not in reached and self.position.get(step.id) == i:
                yield Problem(
                    f"flow.steps[{i}]", "unreachable from the start and the triggers", severity
                )


def _required(step: Step, path: str) -> bool:
    """Whether the reference at ``path`` (under the step) must be set."""
    if isinstance(step, ChoiceStep):
        return True
    if isinstance(step, ConditionStep):
        return True
    if isinstance(step, WebhookStep):
        return path.endswith(".fallback") or "allowed_next" in path
    return False


def _text(path: str, text: str, limit: int) -> Iterator[Problem]:
    if len(text) > limit:
        yield Problem(path, f"at most {limit:,} characters")


def _field(path: str, spec: FieldSpec) -> Iterator[Problem]:
    if not spec.key:
        yield Problem(path, "required")
    elif not spec.type:
        yield Problem(path, "no such customer field")


def _fits(at: str, step: ChoiceStep, caps: ChannelCaps) -> Iterator[Problem]:
    """What of ``step``'s choices ``caps``'s channel cannot show."""
    options = step.options
    name = caps.name
    if caps.quick_replies is not None:
        if len(options) > caps.quick_replies:
            yield Problem(f"{at}.options", f"{name} shows at most {caps.quick_replies}")
        limit = caps.quick_reply_label or MAX_SHORT
        for j, option in enumerate(options):
            if len(option.title) > limit:
                yield Problem(
                    f"{at}.options[{j}].title", f"{name} labels are at most {limit} characters"
                )
        return
    if caps.buttons is None or caps.rows is None:
        return
    fits_buttons = len(options) <= caps.buttons and all(
        len(o.title) <= (caps.button_title or MAX_SHORT) and not o.description for o in options
    )
    as_buttons = step.style is ChoiceStyle.BUTTONS or (
        step.style is ChoiceStyle.AUTO and fits_buttons
    )
    if as_buttons:
        if len(options) > caps.buttons:
            yield Problem(f"{at}.options", f"{name} shows at most {caps.buttons} buttons")
        for j, option in enumerate(options):
            if caps.button_title is not None and len(option.title) > caps.button_title:
                yield Problem(
                    f"{at}.options[{j}].title",
                    f"{name} button titles are at most {caps.button_title} characters",
                )
        return
    if len(options) > caps.rows:
        yield Problem(f"{at}.options", f"{name} lists show at most {caps.rows} rows")
    for j, option in enumerate(options):
        if caps.row_title is not None and len(option.title) > caps.row_title:
            yield Problem(
                f"{at}.options[{j}].title",
                f"{name} list rows are at most {caps.row_title} characters",
            )
        if caps.row_description is not None and len(option.description) > caps.row_description:
            yield Problem(
                f"{at}.options[{j}].description",
                f"{name} row descriptions are at most {caps.row_description} characters",
            )
    if caps.list_button is not None and len(step.button_text) > caps.list_button:
        yield Problem(
            f"{at}.button_text", f"{name} list buttons are at most {caps.list_button} characters"
        )


def _url_problem(url: str, insecure: bool) -> str:
    """Why ``url`` may not be a webhook's, or empty."""
    if not url:
        return "required"
    if len(url) > MAX_URL:
        return f"at most {MAX_URL} characters"
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        return "not a URL"
    if parts.username is not None or parts.password is not None:
        return "no credentials in the URL (the request is signed)"
    if not host:
        return "a URL with a host"
    if parts.scheme == "https":
        return ""
    if parts.scheme == "http" and insecure and _loopback(host):
        return ""
    if parts.scheme == "http" and _loopback(host):
        return "must be https (http to this machine only where the server allows it for tests)"
    return "must be https"


def _loopback(host: str) -> bool:
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
