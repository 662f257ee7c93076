"""Bots, states and turns between their three forms: ``usher.v1`` protos, the frozen values of
``core.bots.flow`` / ``core.bots.interpreter``, and JSON.

- JSON (``to_plain`` / ``from_plain``, ``bot_document`` / ``bot_from_document``,
  ``state_to_json`` / ``state_from_json``): any of the bots' values as plain JSON-able data,
  a member of a union tagged with ``"kind"`` (the proto's oneof name). Stored flows carry
  ``SCHEMA_VERSION``; a reader refuses a newer one it does not know.
- protos (``bot_from_proto`` / ``bot_to_proto``, ``output_to_proto``): the wire contract.
  ``bot_from_proto`` resolves the customer fields steps name to their types (``fields``) and
  raises ``Malformed`` with every structural problem (a step of no kind, a malformed resource
  name) at once; whether the bot makes sense is ``core.bots.validate``'s question.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import types
import typing
from collections.abc import Mapping
from enum import Enum
from typing import Any, Final

from google.protobuf import duration_pb2
from usher.v1 import bot_pb2 as pb
from usher.v1 import bot_service_pb2 as spb
from usher.v1 import conversation_pb2, customer_pb2, queue_pb2

from core.bots import flow as f
from core.bots import interpreter as it

SCHEMA_VERSION: Final = 1
"""The version of the stored JSON form of a bot's definition."""

_TAGS: Final[Mapping[type, str]] = {
    f.NewConversationTrigger: "new_conversation",
    f.PhraseTrigger: "phrase",
    f.ReferenceTrigger: "reference",
    f.OutOfHoursTrigger: "out_of_hours",
    f.KeywordTrigger: "keyword",
    **f.STEP_KINDS,
    f.BusinessHoursCondition: "business_hours",
    f.ChannelCondition: "channel",
    f.TagCondition: "tag",
    f.FieldCondition: "field",
    f.LanguageCondition: "language",
    f.SetTagsAction: "set_tags",
    f.SetFieldAction: "set_field",
    f.HandOffAction: "hand_off",
    f.EndAction: "end",
    it.CustomerText: "text",
    it.OptionPick: "option",
    it.WebhookResult: "webhook_result",
    it.KnowledgeResult: "knowledge_result",
    it.Reply: "reply",
    it.FieldsSet: "fields_set",
    it.TagsSet: "tags_set",
    it.WebhookCall: "webhook_call",
    it.KnowledgeSearch: "knowledge_search",
    it.HandOff: "hand_off",
    it.Ended: "end",
}


class Malformed(ValueError):
    """A bot's proto that cannot be read: ``violations`` maps field paths to problems."""

    def __init__(self, violations: Mapping[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in violations.items()))
        self.violations = dict(violations)


# --- JSON ------------------------------------------------------------------------------------


def to_plain(value: Any) -> Any:
    """``value`` (a bots' value, or a tuple, mapping or scalar of them) as JSON-able data."""
    if isinstance(value, Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {
            field.name: to_plain(getattr(value, field.name))
            for field in dataclasses.fields(value)
            if field.init
        }
        tag = _TAGS.get(type(value))
        if tag is not None:
            out["kind"] = tag
        return out
    if isinstance(value, tuple | list | frozenset | set):
        items = sorted(value) if isinstance(value, frozenset | set) else value
        return [to_plain(v) for v in items]
    if isinstance(value, Mapping):
        return {str(k): to_plain(v) for k, v in value.items()}
    return value


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def from_plain(kind: Any, data: Any) -> Any:
    """The value of type ``kind`` that ``to_plain`` gave ``data`` for (``ValueError`` if
    ``data`` is not one)."""
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        return _union(typing.get_args(kind), data)
    if origin is tuple:
        args = typing.get_args(kind)
        if not isinstance(data, list):
            raise ValueError(f"expected a list, got {type(data).__name__}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(from_plain(args[0], item) for item in data)
        if len(args) != len(data):
            raise ValueError(f"expected {len(args)} items")
        return tuple(from_plain(a, item) for a, item in zip(args, data, strict=True))
    if origin is frozenset:
        return frozenset(from_plain(typing.get_args(kind)[0], item) for item in data)
    if origin in (Mapping, dict):
        _, value_kind = typing.get_args(kind)
        return {str(k): from_plain(value_kind, v) for k, v in dict(data).items()}
    if isinstance(kind, type) and issubclass(kind, Enum):
        return kind(data)
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        if not isinstance(data, dict):
            raise ValueError(f"expected an object for {kind.__name__}")
        hints = _hints(kind)
        given = {
            field.name: from_plain(hints[field.name], data[field.name])
            for field in dataclasses.fields(kind)
            if field.init and field.name in data
        }
        return kind(**given)
    if kind is float:
        if isinstance(data, bool) or not isinstance(data, int | float):
            raise ValueError("expected a number")
        return float(data)
    if kind is int:
        if isinstance(data, bool) or not isinstance(data, int):
            raise ValueError("expected an integer")
        return data
    if kind in (str, bool) and not isinstance(data, kind):
        raise ValueError(f"expected {kind.__name__}")
    return data


def _union(members: tuple[Any, ...], data: Any) -> Any:
    if data is None and type(None) in members:
        return None
    tagged = {_TAGS[m]: m for m in members if isinstance(m, type) and m in _TAGS}
    if tagged and isinstance(data, dict):
        member = tagged.get(data.get("kind", ""))
        if member is None:
            raise ValueError(f"unknown kind {data.get('kind')!r}")
        return from_plain(member, data)
    others = [m for m in members if m is not type(None)]
    if len(others) == 1:
        return from_plain(others[0], data)
    # a field value: str | float | bool | tuple[str, ...]
    if isinstance(data, bool):
        return data
    if isinstance(data, int | float):
        return float(data)
    if isinstance(data, str):
        return data
    if isinstance(data, list) and all(isinstance(v, str) for v in data):
        return tuple(data)
    raise ValueError("not a value of the union")


def bot_document(bot: f.Bot) -> dict[str, Any]:
    """What a version stores: name, channels, triggers and flow (id, version and status are
    the store's columns)."""
    return {
        "name": bot.name,
        "channels": list(bot.channels),
        "triggers": to_plain(bot.triggers),
        "flow": to_plain(bot.flow),
    }


def bot_from_document(
    document: Mapping[str, Any],
    schema: int,
    *,
    bot_id: str,
    version: int,
    status: f.BotStatus,
) -> f.Bot:
    if schema != SCHEMA_VERSION:
        raise ValueError(f"bot schema {schema} is not one this server reads")
    return f.Bot(
        id=bot_id,
        version=version,
        status=status,
        name=str(document.get("name", "")),
        channels=tuple(str(c) for c in document.get("channels", ())),
        triggers=from_plain(tuple[f.Trigger, ...], document.get("triggers", [])),
        flow=from_plain(f.Flow, document["flow"]),
    )


def bot_to_json(bot: f.Bot) -> str:
    """A whole bot version (with id, version and status) as JSON, for events and snapshots."""
    document = {
        "schema": SCHEMA_VERSION,
        "id": bot.id,
        "version": bot.version,
        "status": bot.status.value,
        **bot_document(bot),
    }
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


def bot_from_json(text: str | bytes) -> f.Bot:
    document = json.loads(text)
    return bot_from_document(
        document,
        int(document.get("schema", 0)),
        bot_id=str(document["id"]),
        version=int(document["version"]),
        status=f.BotStatus(document["status"]),
    )


def state_to_json(state: it.BotState) -> str:
    return json.dumps(to_plain(state), ensure_ascii=False, separators=(",", ":"))


def state_from_json(text: str | bytes) -> it.BotState:
    state: it.BotState = from_plain(it.BotState, json.loads(text))
    return state


# --- protos: values --------------------------------------------------------------------------


def value_to_proto(value: f.FieldValue) -> customer_pb2.CustomFieldValue:
    if isinstance(value, bool):
        return customer_pb2.CustomFieldValue(bool_value=value)
    if isinstance(value, int | float):
        return customer_pb2.CustomFieldValue(number_value=float(value))
    if isinstance(value, tuple):
        return customer_pb2.CustomFieldValue(list_value=customer_pb2.StringList(values=value))
    return customer_pb2.CustomFieldValue(string_value=value)


def value_from_proto(value: customer_pb2.CustomFieldValue) -> f.FieldValue | None:
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        return value.string_value
    if kind == "number_value":
        return value.number_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "list_value":
        return tuple(value.list_value.values)
    return None


_MATCH: Final = {
    pb.PHRASE_MATCH_UNSPECIFIED: f.PhraseMatch.EXACT,
    pb.PHRASE_MATCH_EXACT: f.PhraseMatch.EXACT,
    pb.PHRASE_MATCH_CONTAINS: f.PhraseMatch.CONTAINS,
    pb.PHRASE_MATCH_PATTERN: f.PhraseMatch.PATTERN,
}
_MATCH_TO: Final = {v: k for k, v in _MATCH.items() if k != pb.PHRASE_MATCH_UNSPECIFIED}
_STYLE: Final = {
    conversation_pb2.CHOICE_STYLE_UNSPECIFIED: f.ChoiceStyle.AUTO,
    conversation_pb2.CHOICE_STYLE_BUTTONS: f.ChoiceStyle.BUTTONS,
    conversation_pb2.CHOICE_STYLE_LIST: f.ChoiceStyle.LIST,
}
_STYLE_TO: Final = {v: k for k, v in _STYLE.items()}
_OPERATOR: Final = {
    pb.FIELD_OPERATOR_UNSPECIFIED: f.FieldOperator.IS_SET,
    pb.FIELD_OPERATOR_IS_SET: f.FieldOperator.IS_SET,
    pb.FIELD_OPERATOR_EQUALS: f.FieldOperator.EQUALS,
    pb.FIELD_OPERATOR_CONTAINS: f.FieldOperator.CONTAINS,
}
_OPERATOR_TO: Final = {v: k for k, v in _OPERATOR.items() if k != pb.FIELD_OPERATOR_UNSPECIFIED}
STATE_TO_PROTO: Final = {
    f.BotStatus.DRAFT: pb.BOT_STATE_DRAFT,
    f.BotStatus.ACTIVE: pb.BOT_STATE_ACTIVE,
    f.BotStatus.PAUSED: pb.BOT_STATE_PAUSED,
}
WAITING_TO_PROTO: Final = {
    it.Waiting.CUSTOMER: spb.BOT_WAITING_CUSTOMER,
    it.Waiting.EFFECT: spb.BOT_WAITING_EFFECT,
    it.Waiting.NOTHING: spb.BOT_WAITING_NOTHING,
}


# --- protos: reading a bot -------------------------------------------------------------------


class _Reader:
    """Reads a ``usher.v1.Bot``, noting structural problems by field path."""

    def __init__(self, fields: Mapping[str, f.FieldSpec], prefix: str) -> None:
        self.fields = fields
        self.prefix = prefix
        self.problems: dict[str, str] = {}

    def problem(self, path: str, description: str) -> None:
        self.problems.setdefault(self.prefix + path, description)

    def name(self, collection: str, value: str, path: str) -> str:
        head = f"{collection}/"
        if not value.startswith(head) or not value[len(head) :] or "/" in value[len(head) :]:
            self.problem(path, f"must look like {collection}/{{id}}")
            return value
        return value[len(head) :]

    def spec(self, key: str) -> f.FieldSpec:
        return self.fields.get(key) or f.FieldSpec(key=key)

    def content(self, p: pb.BotContent) -> f.Content:
        return f.Content(
            title=p.title,
            body=p.body,
            footer=p.footer,
            media=tuple(
                f.Media(
                    uri=m.uri,
                    content_type=m.content_type,
                    name=m.name,
                    sha256=m.sha256,
                    size=m.size,
                )
                for m in p.media
            ),
        )

    def bot(self, p: pb.Bot, bot_id: str) -> f.Bot:
        channels = tuple(
            self.name("channels", c, f"channels[{i}]") for i, c in enumerate(p.channels)
        )
        triggers = tuple(self.trigger(t, f"triggers[{i}]") for i, t in enumerate(p.triggers))
        return f.Bot(
            id=bot_id, name=p.display_name, channels=channels, triggers=triggers, flow=self.flow(p)
        )

    def trigger(self, p: pb.BotTrigger, path: str) -> f.Trigger:
        kind = p.WhichOneof("kind")
        if kind == "phrase":
            return f.PhraseTrigger(text=p.phrase.text, match=_MATCH[p.phrase.match], step=p.step)
        if kind == "reference":
            return f.ReferenceTrigger(reference=p.reference.reference, step=p.step)
        if kind == "out_of_hours":
            return f.OutOfHoursTrigger(step=p.step)
        if kind == "keyword":
            return f.KeywordTrigger(keywords=tuple(p.keyword.keywords), step=p.step)
        if kind is None:
            self.problem(path, "choose a kind of trigger")
        return f.NewConversationTrigger(step=p.step)

    def flow(self, p: pb.Bot) -> f.Flow:
        flow = p.flow
        steps = tuple(self.step(s, f"flow.steps[{i}]") for i, s in enumerate(flow.steps))
        return f.Flow(
            start=flow.start_step,
            steps=steps,
            default_reply=flow.default_reply,
            max_misses=flow.max_misses if p.HasField("flow") else f.DEFAULT_MAX_MISSES,
            handoff_text=flow.handoff_text,
            could_not_answer=self.hand_off(flow.could_not_answer, "flow.could_not_answer"),
        )

    def hand_off(self, p: pb.HandOffAction, path: str) -> f.HandOffAction:
        queue = self.name("queues", p.queue, f"{path}.queue") if p.queue else ""
        skills = tuple(
            f.SkillNeed(
                skill=self.name("skills", s.skill, f"{path}.skills[{i}].skill"),
                min_level=s.min_level or 1,
            )
            for i, s in enumerate(p.skills)
        )
        return f.HandOffAction(queue=queue, skills=skills, priority=p.priority)

    def step(self, p: pb.BotStep, path: str) -> f.Step:
        kind = p.WhichOneof("kind")
        if kind == "choice":
            c = p.choice
            return f.ChoiceStep(
                id=p.id,
                content=self.content(c.content),
                options=tuple(
                    f.Option(id=o.id, title=o.title, description=o.description, next=o.next)
                    for o in c.options
                ),
                style=_STYLE.get(c.style, f.ChoiceStyle.AUTO),
                button_text=c.button_text,
                no_match_reply=c.no_match_reply,
            )
        if kind == "question":
            q = p.question
            return f.QuestionStep(
                id=p.id,
                content=self.content(q.content),
                field=self.spec(q.field) if q.field else None,
                invalid_reply=q.invalid_reply,
                next=q.next,
            )
        if kind == "condition":
            c2 = p.condition
            return f.ConditionStep(
                id=p.id,
                branches=tuple(
                    self.branch(b, f"{path}.condition.branches[{i}]")
                    for i, b in enumerate(c2.branches)
                ),
                otherwise=c2.otherwise,
            )
        if kind == "knowledge":
            k = p.knowledge
            return f.KnowledgeStep(id=p.id, language=k.language, next=k.next, otherwise=k.otherwise)
        if kind == "webhook":
            w = p.webhook
            timeout = (
                w.timeout.seconds * 1000 + w.timeout.nanos // 1_000_000
                if w.HasField("timeout")
                else f.DEFAULT_WEBHOOK_TIMEOUT_MS
            )
            return f.WebhookStep(
                id=p.id,
                url=w.url,
                timeout_ms=timeout,
                next=w.next,
                fallback=w.fallback,
                allowed_next=tuple(w.allowed_next),
            )
        if kind == "actions":
            return f.ActionsStep(
                id=p.id,
                actions=tuple(
                    self.action(a, f"{path}.actions.actions[{i}]")
                    for i, a in enumerate(p.actions.actions)
                ),
                next=p.actions.next,
            )
        if kind is None:
            self.problem(path, "choose a kind of step")
        return f.MessageStep(id=p.id, content=self.content(p.message.content), next=p.message.next)

    def branch(self, p: pb.BotBranch, path: str) -> f.Branch:
        c = p.condition
        kind = c.WhichOneof("kind")
        condition: f.Condition
        if kind == "channel":
            condition = f.ChannelCondition(
                channels=tuple(
                    self.name("channels", ch, f"{path}.condition.channel.channels[{i}]")
                    for i, ch in enumerate(c.channel.channels)
                )
            )
        elif kind == "tag":
            condition = f.TagCondition(tag=c.tag.tag)
        elif kind == "field":
            condition = f.FieldCondition(
                field=self.spec(c.field.field),
                operator=_OPERATOR[c.field.operator],
                value=c.field.value,
            )
        elif kind == "language":
            condition = f.LanguageCondition(languages=tuple(c.language.languages))
        else:
            if kind is None:
                self.problem(f"{path}.condition", "choose a kind of condition")
            condition = f.BusinessHoursCondition()
        return f.Branch(condition=condition, next=p.next, negate=p.negate)

    def action(self, p: pb.BotAction, path: str) -> f.Action:
        kind = p.WhichOneof("kind")
        if kind == "set_tags":
            return f.SetTagsAction(add=tuple(p.set_tags.add), remove=tuple(p.set_tags.remove))
        if kind == "set_field":
            value = value_from_proto(p.set_field.value)
            if value is None:
                self.problem(f"{path}.set_field.value", "required")
                value = ""
            return f.SetFieldAction(field=self.spec(p.set_field.field), value=value)
        if kind == "hand_off":
            return self.hand_off(p.hand_off, f"{path}.hand_off")
        if kind is None:
            self.problem(path, "choose a kind of action")
        return f.EndAction(close=p.end.close_conversation)


def bot_from_proto(
    p: pb.Bot, *, bot_id: str, fields: Mapping[str, f.FieldSpec], prefix: str = ""
) -> f.Bot:
    """The bot ``p`` describes (a draft of version 1; the store sets both), its steps' fields
    resolved in ``fields``; ``Malformed`` (paths under ``prefix``) if it cannot be read."""
    reader = _Reader(fields, prefix)
    bot = reader.bot(p, bot_id)
    if reader.problems:
        raise Malformed(reader.problems)
    return bot


# --- protos: writing a bot -------------------------------------------------------------------


def _content(c: f.Content) -> pb.BotContent:
    return pb.BotContent(
        title=c.title,
        body=c.body,
        footer=c.footer,
        media=[
            conversation_pb2.Attachment(
                uri=m.uri, content_type=m.content_type, name=m.name, sha256=m.sha256, size=m.size
            )
            for m in c.media
        ],
    )


def _hand_off(h: f.HandOffAction) -> pb.HandOffAction:
    return pb.HandOffAction(
        queue=f"queues/{h.queue}" if h.queue else "",
        skills=[
            queue_pb2.SkillRequirement(skill=f"skills/{s.skill}", min_level=s.min_level)
            for s in h.skills
        ],
        priority=h.priority,
    )


def _trigger(t: f.Trigger) -> pb.BotTrigger:
    if isinstance(t, f.PhraseTrigger):
        return pb.BotTrigger(
            step=t.step, phrase=pb.PhraseTrigger(text=t.text, match=_MATCH_TO[t.match])
        )
    if isinstance(t, f.ReferenceTrigger):
        return pb.BotTrigger(step=t.step, reference=pb.ReferenceTrigger(reference=t.reference))
    if isinstance(t, f.OutOfHoursTrigger):
        return pb.BotTrigger(step=t.step, out_of_hours=pb.OutOfHoursTrigger())
    if isinstance(t, f.KeywordTrigger):
        return pb.BotTrigger(step=t.step, keyword=pb.KeywordTrigger(keywords=t.keywords))
    return pb.BotTrigger(step=t.step, new_conversation=pb.NewConversationTrigger())


def _condition(c: f.Condition) -> pb.BotCondition:
    if isinstance(c, f.ChannelCondition):
        return pb.BotCondition(
            channel=pb.ChannelCondition(channels=[f"channels/{ch}" for ch in c.channels])
        )
    if isinstance(c, f.TagCondition):
        return pb.BotCondition(tag=pb.TagCondition(tag=c.tag))
    if isinstance(c, f.FieldCondition):
        return pb.BotCondition(
            field=pb.FieldCondition(
                field=c.field.key, operator=_OPERATOR_TO[c.operator], value=c.value
            )
        )
    if isinstance(c, f.LanguageCondition):
        return pb.BotCondition(language=pb.LanguageCondition(languages=c.languages))
    return pb.BotCondition(business_hours=pb.BusinessHoursCondition())


def _action(a: f.Action) -> pb.BotAction:
    if isinstance(a, f.SetTagsAction):
        return pb.BotAction(set_tags=pb.SetTagsAction(add=a.add, remove=a.remove))
    if isinstance(a, f.SetFieldAction):
        return pb.BotAction(
            set_field=pb.SetFieldAction(field=a.field.key, value=value_to_proto(a.value))
        )
    if isinstance(a, f.HandOffAction):
        return pb.BotAction(hand_off=_hand_off(a))
    return pb.BotAction(end=pb.EndAction(close_conversation=a.close))


def _step(s: f.Step) -> pb.BotStep:
    if isinstance(s, f.MessageStep):
        return pb.BotStep(id=s.id, message=pb.MessageStep(content=_content(s.content), next=s.next))
    if isinstance(s, f.ChoiceStep):
        return pb.BotStep(
            id=s.id,
            choice=pb.ChoiceStep(
                content=_content(s.content),
                style=_STYLE_TO[s.style],
                options=[
                    pb.BotOption(id=o.id, title=o.title, description=o.description, next=o.next)
                    for o in s.options
                ],
                button_text=s.button_text,
                no_match_reply=s.no_match_reply,
            ),
        )
    if isinstance(s, f.QuestionStep):
        return pb.BotStep(
            id=s.id,
            question=pb.QuestionStep(
                content=_content(s.content),
                field=s.field.key if s.field else "",
                invalid_reply=s.invalid_reply,
                next=s.next,
            ),
        )
    if isinstance(s, f.ConditionStep):
        return pb.BotStep(
            id=s.id,
            condition=pb.ConditionStep(
                branches=[
                    pb.BotBranch(condition=_condition(b.condition), next=b.next, negate=b.negate)
                    for b in s.branches
                ],
                otherwise=s.otherwise,
            ),
        )
    if isinstance(s, f.KnowledgeStep):
        return pb.BotStep(
            id=s.id,
            knowledge=pb.KnowledgeStep(language=s.language, next=s.next, otherwise=s.otherwise),
        )
    if isinstance(s, f.WebhookStep):
        timeout = duration_pb2.Duration()
        timeout.FromMilliseconds(s.timeout_ms)
        return pb.BotStep(
            id=s.id,
            webhook=pb.WebhookStep(
                url=s.url,
                timeout=timeout,
                next=s.next,
                fallback=s.fallback,
                allowed_next=s.allowed_next,
            ),
        )
    return pb.BotStep(
        id=s.id, actions=pb.ActionsStep(actions=[_action(a) for a in s.actions], next=s.next)
    )


def bot_to_proto(bot: f.Bot) -> pb.Bot:
    """``bot`` on the wire (without its times and secret, which the store knows)."""
    flow = bot.flow
    return pb.Bot(
        name=f"bots/{bot.id}",
        display_name=bot.name,
        channels=[f"channels/{c}" for c in bot.channels],
        state=STATE_TO_PROTO[bot.status],
        triggers=[_trigger(t) for t in bot.triggers],
        flow=pb.BotFlow(
            start_step=flow.start,
            steps=[_step(s) for s in flow.steps],
            default_reply=flow.default_reply,
            max_misses=flow.max_misses,
            handoff_text=flow.handoff_text,
            could_not_answer=_hand_off(flow.could_not_answer),
        ),
        version=bot.version,
    )


# --- protos: a turn's outputs ------------------------------------------------------------------


def output_to_proto(output: it.Output) -> spb.BotOutput:
    if isinstance(output, it.Reply):
        return spb.BotOutput(
            step=output.step,
            reply=spb.BotReply(
                content=_content(output.content),
                options=[
                    conversation_pb2.MessageOption(
                        id=o.id, title=o.title, description=o.description
                    )
                    for o in output.options
                ],
                style=_STYLE_TO[output.style],
                button_text=output.button_text,
            ),
        )
    if isinstance(output, it.FieldsSet):
        return spb.BotOutput(
            fields_set=spb.BotFieldsSet(values={k: value_to_proto(v) for k, v in output.values})
        )
    if isinstance(output, it.TagsSet):
        return spb.BotOutput(tags_set=pb.SetTagsAction(add=output.add, remove=output.remove))
    if isinstance(output, it.WebhookCall):
        timeout = duration_pb2.Duration()
        timeout.FromMilliseconds(output.timeout_ms)
        return spb.BotOutput(
            step=output.step,
            webhook_call=spb.BotWebhookCall(url=output.url, body=output.body, timeout=timeout),
        )
    if isinstance(output, it.KnowledgeSearch):
        return spb.BotOutput(
            step=output.step,
            knowledge_search=spb.BotKnowledgeSearch(query=output.query, language=output.language),
        )
    if isinstance(output, it.HandOff):
        target = _hand_off(
            f.HandOffAction(queue=output.queue, skills=output.skills, priority=output.priority)
        )
        return spb.BotOutput(
            step=output.step,
            hand_off=spb.BotHandOff(
                queue=target.queue,
                skills=target.skills,
                priority=target.priority,
                reason=output.reason.value,
                fields={k: value_to_proto(v) for k, v in output.fields},
            ),
        )
    return spb.BotOutput(step=output.step, end=pb.EndAction(close_conversation=output.close))
