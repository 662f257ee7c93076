"""BotService over real gRPC and PostgreSQL through the SDK: each validation rule refused with
its field path and nothing stored, drafts edited in place and active bots as new versions,
delete refused while active, previews of every step kind, who may call it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass

import asyncpg
import pytest
from google.protobuf import duration_pb2, field_mask_pb2
from google.rpc import error_details_pb2
from usher.client import (
    AdminClient,
    BotClient,
    CustomerClient,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from usher.v1 import admin_service_pb2 as admin_pb
from usher.v1 import bot_pb2 as b
from usher.v1 import bot_service_pb2 as pb
from usher.v1 import channel_pb2, conversation_pb2, customer_pb2, queue_pb2
from usher.v1 import customer_service_pb2 as cs

from core.api.bot_service import INSECURE_ENV
from core.bots import codec, webhook
from core.store.bots import BotChanged, Bots
from tests.integration.api_kit import Running, running

T = "acme"


@dataclass
class Desk:
    api: Running
    pool: asyncpg.Pool
    bots: BotClient
    agent_bots: BotClient

    async def create(self, bot: b.Bot, bot_id: str = "helper") -> pb.CreateBotResponse:
        return await self.bots.create_bot(pb.CreateBotRequest(bot_id=bot_id, bot=bot))

    async def stored(self) -> int:
        found: int = await self.pool.fetchval("SELECT count(*) FROM bot_versions")
        return found


@pytest.fixture
async def desk(pool: asyncpg.Pool, redis_url: str) -> AsyncIterator[Desk]:
    async with running(pool, redis_url, with_core=True) as api, AsyncExitStack() as stack:
        admin = await stack.enter_async_context(
            AdminClient(api.target, await api.token(T, "admin"))
        )
        for channel_id, kind in (
            ("wa", channel_pb2.CHANNEL_TYPE_WHATSAPP),
            ("line1", channel_pb2.CHANNEL_TYPE_LINE),
            ("web", channel_pb2.CHANNEL_TYPE_WEB_CHAT),
        ):
            await admin.create_channel(
                admin_pb.CreateChannelRequest(
                    channel_id=channel_id, channel=channel_pb2.Channel(type=kind)
                )
            )
        customers = await stack.enter_async_context(
            CustomerClient(api.target, await api.token(T, "supervisor"))
        )
        await customers.create_custom_field(
            cs.CreateCustomFieldRequest(
                field_id="order_no",
                field=customer_pb2.CustomField(
                    type=customer_pb2.CUSTOM_FIELD_TYPE_NUMBER, enabled=True
                ),
            )
        )
        supervisor = await stack.enter_async_context(
            BotClient(api.target, await api.token(T, "supervisor"))
        )
        agent = await stack.enter_async_context(
            BotClient(api.target, await api.token(T, "agent", "ann"))
        )
        yield Desk(api, pool, supervisor, agent)


# --- building bots -----------------------------------------------------------------------------


def say(step_id: str, text: str, next_step: str = "") -> b.BotStep:
    return b.BotStep(
        id=step_id, message=b.MessageStep(content=b.BotContent(body=text), next=next_step)
    )


def choice(step_id: str, *options: tuple[str, str, str], **kwargs: object) -> b.BotStep:
    return b.BotStep(
        id=step_id,
        choice=b.ChoiceStep(
            content=b.BotContent(body="Pick one"),
            options=[b.BotOption(id=i, title=t, next=n) for i, t, n in options],
            **kwargs,  # type: ignore[arg-type]
        ),
    )


def bot(*steps: b.BotStep, channels: tuple[str, ...] = ("wa",), **flow: object) -> b.Bot:
    return b.Bot(
        display_name="Helper",
        channels=[f"channels/{c}" for c in channels],
        triggers=[b.BotTrigger(new_conversation=b.NewConversationTrigger())],
        flow=b.BotFlow(
            start_step=steps[0].id,
            steps=list(steps),
            default_reply="Sorry, I did not get that.",
            max_misses=3,
            **flow,  # type: ignore[arg-type]
        ),
    )


def violations(error: InvalidArgument) -> dict[str, str]:
    found = error.detail(error_details_pb2.BadRequest)
    assert found is not None
    return {v.field: v.description for v in found.field_violations}


def hook(url: str) -> b.BotStep:
    return b.BotStep(id="h", webhook=b.WebhookStep(url=url, fallback="bye"))


BAD: dict[str, tuple[Callable[[], b.Bot], str]] = {
    "a step leading nowhere": (
        lambda: bot(say("a", "hi", "nowhere")),
        "bot.flow.steps[0].message.next",
    ),
    "a loop without a customer turn": (
        lambda: bot(
            say("a", "hi", "b"),
            b.BotStep(
                id="b",
                condition=b.ConditionStep(
                    branches=[
                        b.BotBranch(
                            condition=b.BotCondition(tag=b.TagCondition(tag="vip")), next="a"
                        )
                    ],
                    otherwise="a",
                ),
            ),
        ),
        "bot.flow.steps[0]",
    ),
    "four WhatsApp buttons": (
        lambda: bot(
            choice(
                "menu",
                *((f"o{i}", f"Option {i}", "menu") for i in range(4)),
                style=conversation_pb2.CHOICE_STYLE_BUTTONS,
            )
        ),
        "bot.flow.steps[0].choice.options",
    ),
    "a WhatsApp button title over 20": (
        lambda: bot(choice("menu", ("a", "A title far too long for a button", "menu"))),
        "bot.flow.steps[0].choice.options[0].title",
    ),
    "a WhatsApp row title over 24": (
        lambda: bot(
            choice(
                "menu",
                ("a", "A title far too long for a list row", "menu"),
                style=conversation_pb2.CHOICE_STYLE_LIST,
            )
        ),
        "bot.flow.steps[0].choice.options[0].title",
    ),
    "eleven options": (
        lambda: bot(choice("menu", *((f"o{i}", f"O{i}", "menu") for i in range(11)))),
        "bot.flow.steps[0].choice.options",
    ),
    "a LINE quick reply label over 20": (
        lambda: bot(
            choice("menu", ("a", "A label far too long for LINE", "menu")), channels=("line1",)
        ),
        "bot.flow.steps[0].choice.options[0].title",
    ),
    "a webhook over http": (
        lambda: bot(hook("http://example.com/hook"), say("bye", "bye")),
        "bot.flow.steps[0].webhook.url",
    ),
    "a webhook to this machine over http without the setting": (
        lambda: bot(hook("http://127.0.0.1:9/hook"), say("bye", "bye")),
        "bot.flow.steps[0].webhook.url",
    ),
    "an unknown customer field": (
        lambda: bot(
            b.BotStep(
                id="q",
                question=b.QuestionStep(content=b.BotContent(body="Which?"), field="shoe_size"),
            )
        ),
        "bot.flow.steps[0].question.field",
    ),
    "an unknown channel": (lambda: bot(say("a", "hi"), channels=("pigeon",)), "bot.channels[0]"),
    "a pattern that is not RE2": (
        lambda: b.Bot(
            channels=["channels/wa"],
            triggers=[
                b.BotTrigger(phrase=b.PhraseTrigger(text="(a+", match=b.PHRASE_MATCH_PATTERN))
            ],
            flow=b.BotFlow(start_step="a", steps=[say("a", "hi")]),
        ),
        "bot.triggers[0].phrase.text",
    ),
    "a text over 4096": (
        lambda: bot(say("a", "x" * 4097)),
        "bot.flow.steps[0].message.content.body",
    ),
    "over 200 steps": (
        lambda: bot(*(say(f"s{i}", "hi", f"s{i + 1}") for i in range(200)), say("s200", "end")),
        "bot.flow.steps",
    ),
    "a step of no kind": (
        lambda: bot(say("a", "hi", "b"), b.BotStep(id="b")),
        "bot.flow.steps[1]",
    ),
    "two actions after an end": (
        lambda: bot(
            b.BotStep(
                id="a",
                actions=b.ActionsStep(
                    actions=[
                        b.BotAction(end=b.EndAction()),
                        b.BotAction(set_tags=b.SetTagsAction(add=["x"])),
                    ]
                ),
            )
        ),
        "bot.flow.steps[0].actions.actions[0].end",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
async def test_each_rule_is_refused_with_its_field_path_and_changes_nothing(
    desk: Desk, case: str
) -> None:
    build, field = BAD[case]
    with pytest.raises(InvalidArgument) as raised:
        await desk.create(build())
    assert field in violations(raised.value), violations(raised.value)
    assert await desk.stored() == 0


async def test_a_webhook_to_this_machine_is_allowed_by_the_test_setting(
    pool: asyncpg.Pool, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(INSECURE_ENV, "1")
    async with (
        running(pool, redis_url, with_core=True) as api,
        BotClient(api.target, await api.token(T, "admin")) as bots,
    ):
        created = await bots.create_bot(
            pb.CreateBotRequest(
                bot_id="local",
                bot=bot(hook("http://127.0.0.1:9/hook"), say("bye", "bye"), channels=("web_chat",)),
            )
        )
        assert created.bot.flow.steps[0].webhook.url == "http://127.0.0.1:9/hook"
        with pytest.raises(InvalidArgument):  # other hosts still need https
            await bots.create_bot(
                pb.CreateBotRequest(
                    bot_id="remote",
                    bot=bot(hook("http://example.com/h"), say("bye", "bye"), channels=("sms",)),
                )
            )


async def test_an_unreachable_step_warns_in_a_draft_and_refuses_activation(desk: Desk) -> None:
    created = await desk.create(bot(say("a", "hi"), say("lost", "nobody comes here")))
    assert [w.field for w in created.warnings] == ["bot.flow.steps[1]"]
    assert created.bot.state == b.BOT_STATE_DRAFT and created.bot.webhook_secret
    with pytest.raises(InvalidArgument) as raised:
        await desk.bots.activate_bot(pb.ActivateBotRequest(name="bots/helper"))
    assert "flow.steps[1]" in violations(raised.value)
    got = await desk.bots.get_bot(pb.GetBotRequest(name="bots/helper"))
    assert got.bot.state == b.BOT_STATE_DRAFT and not got.bot.webhook_secret


async def test_a_draft_edits_in_place_and_an_active_bot_as_a_new_version(desk: Desk) -> None:
    await desk.create(bot(say("a", "first")))
    edited = await desk.bots.update_bot(
        pb.UpdateBotRequest(
            bot=b.Bot(name="bots/helper", display_name="Greeter"),
            update_mask=field_mask_pb2.FieldMask(paths=["display_name"]),
        )
    )
    assert (edited.bot.version, edited.bot.display_name) == (1, "Greeter")
    assert edited.bot.flow.steps[0].message.content.body == "first"

    active = await desk.bots.activate_bot(pb.ActivateBotRequest(name="bots/helper"))
    assert (active.bot.state, active.bot.version) == (b.BOT_STATE_ACTIVE, 1)

    changed = bot(say("a", "second"))
    changed.name = "bots/helper"
    second = await desk.bots.update_bot(
        pb.UpdateBotRequest(bot=changed, update_mask=field_mask_pb2.FieldMask(paths=["flow"]))
    )
    assert (second.bot.version, second.bot.state) == (2, b.BOT_STATE_ACTIVE)
    assert second.bot.display_name == "Greeter"
    old = await desk.bots.get_bot(pb.GetBotRequest(name="bots/helper", version=1))
    assert old.bot.flow.steps[0].message.content.body == "first"
    newest = await desk.bots.get_bot(pb.GetBotRequest(name="bots/helper"))
    assert newest.bot.flow.steps[0].message.content.body == "second"
    listed = await desk.bots.list_bots(pb.ListBotsRequest())
    assert [(x.name, x.version) for x in listed.bots] == [("bots/helper", 2)]

    # an active bot's edit is validated as served: an unreachable step is refused
    with pytest.raises(InvalidArgument):
        await desk.bots.update_bot(
            pb.UpdateBotRequest(
                bot=b.Bot(
                    name="bots/helper",
                    flow=b.BotFlow(
                        start_step="a",
                        steps=[say("a", "x"), say("lost", "y")],
                        default_reply="?",
                    ),
                ),
                update_mask=field_mask_pb2.FieldMask(paths=["flow"]),
            )
        )
    assert await desk.stored() == 2


async def test_an_active_bot_cannot_be_deleted_only_paused(desk: Desk) -> None:
    await desk.create(bot(say("a", "hi")))
    await desk.bots.activate_bot(pb.ActivateBotRequest(name="bots/helper"))
    with pytest.raises(FailedPrecondition):
        await desk.bots.delete_bot(pb.DeleteBotRequest(name="bots/helper"))
    assert await desk.stored() == 1
    paused = await desk.bots.pause_bot(pb.PauseBotRequest(name="bots/helper"))
    assert paused.bot.state == b.BOT_STATE_PAUSED
    await desk.bots.delete_bot(pb.DeleteBotRequest(name="bots/helper"))
    with pytest.raises(NotFound):
        await desk.bots.get_bot(pb.GetBotRequest(name="bots/helper"))
    assert await desk.stored() == 0


async def test_a_draft_cannot_be_paused(desk: Desk) -> None:
    await desk.create(bot(say("a", "hi")))
    with pytest.raises(FailedPrecondition):
        await desk.bots.pause_bot(pb.PauseBotRequest(name="bots/helper"))


async def test_agents_may_not_manage_bots(desk: Desk) -> None:
    with pytest.raises(PermissionDenied):
        await desk.agent_bots.create_bot(pb.CreateBotRequest(bot_id="x", bot=bot(say("a", "hi"))))
    with pytest.raises(PermissionDenied):
        await desk.agent_bots.list_bots(pb.ListBotsRequest())


# --- previews ----------------------------------------------------------------------------------


def tour() -> b.Bot:
    """A flow with every kind of step."""
    return bot(
        say("hello", "Welcome!", "route"),
        b.BotStep(
            id="route",
            condition=b.ConditionStep(
                branches=[
                    b.BotBranch(
                        condition=b.BotCondition(business_hours=b.BusinessHoursCondition()),
                        next="menu",
                        negate=True,
                    ),
                    b.BotBranch(
                        condition=b.BotCondition(tag=b.TagCondition(tag="vip")), next="vip"
                    ),
                ],
                otherwise="menu",
            ),
        ),
        say("vip", "Hello again, valued customer.", "menu"),
        choice("menu", ("faq", "Ask a question", "ask"), ("order", "My order", "order")),
        b.BotStep(
            id="ask",
            question=b.QuestionStep(content=b.BotContent(body="What is your question?"), next="kb"),
        ),
        b.BotStep(id="kb", knowledge=b.KnowledgeStep(otherwise="human")),
        b.BotStep(
            id="order",
            question=b.QuestionStep(
                content=b.BotContent(body="Your order number?"),
                field="order_no",
                invalid_reply="An order number is digits only.",
                next="lookup",
            ),
        ),
        b.BotStep(
            id="lookup",
            webhook=b.WebhookStep(
                url="https://orders.example.com/status",
                timeout=duration_pb2.Duration(seconds=3),
                next="thanks",
                fallback="human",
                allowed_next=["human"],
            ),
        ),
        say("thanks", "Anything else? Write menu.", "done"),
        b.BotStep(
            id="done",
            actions=b.ActionsStep(
                actions=[
                    b.BotAction(set_tags=b.SetTagsAction(add=["self-served"])),
                    b.BotAction(end=b.EndAction(close_conversation=True)),
                ]
            ),
        ),
        b.BotStep(
            id="human",
            actions=b.ActionsStep(
                actions=[
                    b.BotAction(
                        set_field=b.SetFieldAction(
                            field="company", value=customer_pb2.CustomFieldValue(string_value="?")
                        )
                    ),
                    b.BotAction(
                        hand_off=b.HandOffAction(
                            queue="queues/support",
                            skills=[queue_pb2.SkillRequirement(skill="skills/orders", min_level=3)],
                            priority=5,
                        )
                    ),
                ]
            ),
        ),
        handoff_text="Let me find you a person.",
        could_not_answer=b.HandOffAction(queue="queues/support"),
    )


def texts(turn: pb.PreviewTurn) -> list[str]:
    return [o.reply.content.body for o in turn.outputs if o.WhichOneof("kind") == "reply"]


def kinds(turn: pb.PreviewTurn) -> list[str]:
    return [str(o.WhichOneof("kind")) for o in turn.outputs]


async def preview(desk: Desk, **request: object) -> list[pb.PreviewTurn]:
    answer = await desk.bots.preview_bot(pb.PreviewBotRequest(name="bots/tour", **request))  # type: ignore[arg-type]
    return list(answer.turns)


async def test_preview_runs_every_kind_of_step_and_creates_nothing(desk: Desk) -> None:
    await desk.create(tour(), "tour")
    vip = pb.PreviewContext(tags=["vip"], language="en")
    turns = await preview(
        desk,
        context=vip,
        inputs=[
            pb.PreviewInput(text="2"),  # "My order" by number
            pb.PreviewInput(text="A12"),  # not a number
            pb.PreviewInput(text="12345"),
        ],
        effect_answers=[
            pb.PreviewEffectAnswer(
                webhook=pb.PreviewWebhookAnswer(
                    status_code=200, body=json.dumps({"text": "Order 12345 ships today."})
                )
            )
        ],
    )
    start, pick, wrong, number, answered = turns
    assert texts(start) == ["Welcome!", "Hello again, valued customer.", "Pick one"]
    assert [o.id for o in start.outputs[2].reply.options] == ["faq", "order"]
    assert start.waiting == pb.BOT_WAITING_CUSTOMER and start.step == "menu"
    assert texts(pick) == ["Your order number?"]
    assert texts(wrong) == ["An order number is digits only."] and wrong.misses == 1
    assert kinds(number) == ["fields_set", "webhook_call"]
    assert number.outputs[0].fields_set.values["order_no"].number_value == 12345
    call = number.outputs[1].webhook_call
    assert call.url == "https://orders.example.com/status" and call.timeout.seconds == 3
    sent = json.loads(call.body)
    assert sent["fields"] == {"order_no": 12345.0} and sent["tags"] == ["vip"]
    assert number.waiting == pb.BOT_WAITING_EFFECT
    assert answered.cause == pb.PREVIEW_TURN_CAUSE_EFFECT_ANSWER
    assert texts(answered) == ["Order 12345 ships today.", "Anything else? Write menu."]
    assert kinds(answered)[-2:] == ["tags_set", "end"]
    assert answered.outputs[-1].end.close_conversation
    assert answered.waiting == pb.BOT_WAITING_NOTHING
    count = await desk.pool.fetchval("SELECT count(*) FROM conversations")
    assert count == 0


async def test_preview_knowledge_answers_and_falls_back(desk: Desk) -> None:
    await desk.create(tour(), "tour")
    turns = await preview(
        desk,
        context=pb.PreviewContext(out_of_hours=True, language="zh-Hant"),
        inputs=[
            pb.PreviewInput(option_id="faq"),
            pb.PreviewInput(text="幾點開門?"),
        ],
        effect_answers=[
            pb.PreviewEffectAnswer(
                knowledge=pb.PreviewKnowledgeAnswer(answer="朝九晚六", confident=False)
            )
        ],
    )
    start, pick, asked, answered = turns
    assert texts(start) == ["Welcome!", "Pick one"]  # closed: straight to the menu
    assert texts(pick) == ["What is your question?"]
    search = asked.outputs[0].knowledge_search
    assert (search.query, search.language) == ("幾點開門?", "zh-Hant")
    # not confident: the step's otherwise, a hand-off with what was collected
    hand_off = answered.outputs[-1].hand_off
    assert (hand_off.queue, hand_off.priority, hand_off.reason) == (
        "queues/support",
        5,
        "bot_handoff",
    )
    assert [s.skill for s in hand_off.skills] == ["skills/orders"]
    assert hand_off.fields["company"].string_value == "?"


async def test_preview_skips_unanswered_effects_and_refuses_wrong_answers(desk: Desk) -> None:
    await desk.create(tour(), "tour")
    turns = await preview(
        desk, inputs=[pb.PreviewInput(option_id="order"), pb.PreviewInput(text="7")]
    )
    skipped = turns[-1]
    assert skipped.cause == pb.PREVIEW_TURN_CAUSE_EFFECT_SKIPPED
    assert skipped.outputs[-1].WhichOneof("kind") == "hand_off"  # the webhook's fallback
    with pytest.raises(InvalidArgument) as raised:
        await preview(
            desk,
            inputs=[pb.PreviewInput(option_id="order"), pb.PreviewInput(text="7")],
            effect_answers=[
                pb.PreviewEffectAnswer(knowledge=pb.PreviewKnowledgeAnswer(answer="x"))
            ],
        )
    assert "effect_answers[0]" in violations(raised.value)


async def test_preview_offers_a_human_after_too_many_misses(desk: Desk) -> None:
    await desk.create(tour(), "tour")
    turns = await preview(desk, inputs=[pb.PreviewInput(text="blah")] * 3)
    first, second, third = turns[1:]
    assert texts(first) == ["Sorry, I did not get that.", "Pick one"]
    assert second.misses == 2
    assert texts(third) == ["Let me find you a person."]
    assert third.outputs[-1].hand_off.reason == "bot_could_not_answer"
    assert third.waiting == pb.BOT_WAITING_NOTHING


async def test_the_webhook_signature_is_an_hmac_of_the_body(desk: Desk) -> None:
    created = await desk.create(tour(), "tour")
    secret = created.bot.webhook_secret
    assert len(secret) == 64
    body = b'{"bot":"tour"}'
    assert webhook.verify(secret, body, webhook.signature(secret, body))
    assert not webhook.verify(secret, body + b" ", webhook.signature(secret, body))


async def test_a_paused_bot_edits_as_one_new_version_until_served_again(desk: Desk) -> None:
    await desk.create(bot(say("a", "v1")))
    await desk.bots.activate_bot(pb.ActivateBotRequest(name="bots/helper"))
    await desk.bots.pause_bot(pb.PauseBotRequest(name="bots/helper"))

    async def edit(text: str) -> b.Bot:
        changed = bot(say("a", text))
        changed.name = "bots/helper"
        mask = field_mask_pb2.FieldMask(paths=["flow"])
        return (await desk.bots.update_bot(pb.UpdateBotRequest(bot=changed, update_mask=mask))).bot

    assert (await edit("v2")).version == 2  # v1 was served: kept
    assert (await edit("v2, again")).version == 2  # v2 never served: in place
    served = await desk.bots.activate_bot(pb.ActivateBotRequest(name="bots/helper"))
    assert (served.bot.state, served.bot.version) == (b.BOT_STATE_ACTIVE, 2)
    assert (await edit("v3")).version == 3
    assert await desk.stored() == 3


async def test_two_editors_of_one_version_cannot_both_write(desk: Desk) -> None:
    await desk.create(bot(say("a", "v1")))
    store = Bots(desk.pool)
    read = await store.get(T, "helper")
    assert read is not None
    changed = codec.bot_from_proto(bot(say("a", "mine")), bot_id="helper", fields={})
    await store.save(T, changed, expected=read.bot.version, by="credentials/one")
    await desk.bots.activate_bot(pb.ActivateBotRequest(name="bots/helper"))
    await store.save(T, changed, expected=1, by="credentials/one")  # served: now version 2
    with pytest.raises(BotChanged):
        await store.save(T, changed, expected=1, by="credentials/two")  # read before that
    with pytest.raises(NotFound):
        await desk.bots.get_bot(pb.GetBotRequest(name="bots/helper", version=9))
