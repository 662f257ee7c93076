"""Bots in the engine: published versions as tenant configuration, each trigger kind, flows
moved by customer messages and by effects' answers, hand-offs into routing, ends, an agent's
hand-back, flows stopping when an agent takes over, and replay rebuilding flows exactly."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from core.bots.flow import (
    ActionsStep,
    BotStatus,
    ChoiceStyle,
    Content,
    FieldSpec,
    FieldValue,
    KeywordTrigger,
    MessageStep,
    OutOfHoursTrigger,
    PhraseMatch,
    PhraseTrigger,
    ReferenceTrigger,
    SetFieldAction,
    SetTagsAction,
)
from core.bots.interpreter import Waiting
from core.routing import Engine, ManualClock, RoutingError
from core.routing import commands as c
from core.routing import events as ev
from core.routing import model as m
from core.routing.effects import BotEffectRequested
from core.routing.invariants import snapshot
from tests.bot_kit import as_json, bot, menu_bot
from tests.unit.engine_kit import Kit, T, of_type

S = m.ConversationState


def kit() -> Kit:
    k = Kit(skills=["billing"])
    k.queue("support")
    k.run(c.ConfigureTenant(tenant=T, settings=m.TenantSettings(default_queue="support")))
    return k


def publish(k: Kit, b: object) -> list[ev.Event]:
    return k.run(c.PublishBot(tenant=T, bot=as_json(b))).events  # type: ignore[arg-type]


def start(k: Kit, cid: str = "c1", text: str | None = None, **fields: object) -> list[ev.Event]:
    first = m.MessageBody(text=text) if text is not None else None
    return k.start(cid, queue_id=None, first_message=first, **fields).events


def say(k: Kit, cid: str, text: str = "", option: str = "") -> list[ev.Event]:
    body = m.MessageBody(text=text or option, selected_option_id=option)
    return k.run(
        c.RecordMessage(tenant=T, conversation_id=cid, sender=m.Sender.CUSTOMER, message=body)
    ).events


def bot_texts(events: list[ev.Event]) -> list[str]:
    return [e.body.text for e in of_type(events, ev.MessageRecorded) if e.sender is m.Sender.BOT]


def replay_equal(k: Kit) -> None:
    rebuilt = Engine(ManualClock())
    rebuilt.replay(k.log)
    assert snapshot(rebuilt.router(T)) == snapshot(k.router)


# --- configuration ----------------------------------------------------------------------------


def test_published_versions_pause_and_removal() -> None:
    k = kit()
    assert of_type(publish(k, menu_bot()), ev.BotPublished)
    assert publish(k, menu_bot()) == []  # held already
    assert of_type(publish(k, menu_bot(version=2)), ev.BotPublished)
    assert publish(k, menu_bot(version=1)) == []  # older than what is held
    assert k.router.bots["menu"].version == 2
    assert of_type(k.run(c.PauseBot(tenant=T, bot_id="menu")).events, ev.BotPaused)
    assert k.run(c.PauseBot(tenant=T, bot_id="menu")).events == []
    assert start(k, "c1", "hi") and k.state("c1") is S.QUEUED  # a paused bot starts nothing
    assert of_type(publish(k, menu_bot(version=2)), ev.BotPublished)  # served again
    assert of_type(k.run(c.RemoveBot(tenant=T, bot_id="menu")).events, ev.BotRemoved)
    assert k.run(c.RemoveBot(tenant=T, bot_id="menu")).events == []
    with pytest.raises(RoutingError):
        publish(k, menu_bot(status=BotStatus.DRAFT))
    with pytest.raises(RoutingError):
        k.run(c.PublishBot(tenant=T, bot="{not json"))
    replay_equal(k)


def test_a_flow_keeps_its_version_while_a_newer_one_is_published() -> None:
    k = kit()
    publish(k, menu_bot())
    start(k, "c1", "hi")
    publish(k, menu_bot(version=2, default_reply="v2 says pick"))
    assert bot_texts(say(k, "c1", "what?"))[0] == "Please pick one of the options."
    start(k, "c2", "hi", customer_id="k2")
    assert bot_texts(say(k, "c2", "what?"))[0] == "v2 says pick"
    replay_equal(k)


# --- triggers ---------------------------------------------------------------------------------


def test_a_new_conversation_starts_the_bot_instead_of_its_queue() -> None:
    k = kit()
    publish(k, menu_bot())
    events = start(k, "c1", "hello")
    assert k.state("c1") is S.BOT
    assert not of_type(events, ev.ConversationQueued)
    assert not of_type(events, ev.SystemMessageSent)  # the bot greets, not the welcome text
    (turned,) = of_type(events, ev.BotTurned)
    assert (turned.trigger, turned.run, turned.state.step) == ("new_conversation", 1, "menu")
    (reply,) = [e for e in of_type(events, ev.MessageRecorded) if e.sender is m.Sender.BOT]
    choices = reply.body.choices
    assert choices is not None and reply.body.text == "How can we help?"
    assert [o.id for o in choices.options] == ["order", "faq", "human", "bye"]
    assert (choices.header, choices.footer, choices.button_text) == ("Welcome", "Acme", "Choose")
    assert events[-1] == reply


def test_other_channels_and_no_bot_go_to_the_queue() -> None:
    k = kit()
    publish(k, menu_bot(channels=("whatsapp",)))
    start(k, "c1", "hello")
    assert k.state("c1") is S.QUEUED


@pytest.mark.parametrize(
    ("match", "pattern", "text", "fires"),
    [
        (PhraseMatch.EXACT, "I want e-billing", "  i want E-BILLING ", True),
        (PhraseMatch.EXACT, "I want e-billing", "I want e-billing now", False),
        (PhraseMatch.CONTAINS, "e-billing", "hello, e-billing please", True),
        (PhraseMatch.PATTERN, r"order\s*#?\d{4,}", "where is order #12345?", True),
        (PhraseMatch.PATTERN, r"order\s*#?\d{4,}", "where is my order?", False),
    ],
)
def test_phrase_triggers(match: PhraseMatch, pattern: str, text: str, fires: bool) -> None:
    k = kit()
    publish(k, menu_bot(triggers=(PhraseTrigger(text=pattern, match=match),)))
    events = start(k, "c1", text)
    assert (k.state("c1") is S.BOT) is fires
    assert bool(of_type(events, ev.BotTurned)) is fires
    if fires:
        assert of_type(events, ev.BotTurned)[0].trigger == "phrase"


def test_a_phrase_in_a_later_message_starts_the_bot_while_waiting() -> None:
    k = kit()
    publish(k, menu_bot(triggers=(PhraseTrigger(text="menu"),)))
    start(k, "c1", "hello")
    assert k.state("c1") is S.QUEUED
    events = say(k, "c1", "MENU")
    assert k.state("c1") is S.QUEUED  # it keeps its place in line while the bot answers
    assert bot_texts(events) == ["How can we help?"]


def test_a_reference_trigger_wins_over_a_new_conversation_trigger() -> None:
    k = kit()
    publish(k, menu_bot("general"))
    qr = bot("qr", (MessageStep(id="hi", content=Content(body="Thanks for scanning!")),))
    publish(k, dataclasses.replace(qr, triggers=(ReferenceTrigger(reference="store-42"),)))
    events = start(k, "c1", "hi", reference="store-42")
    (turned,) = of_type(events, ev.BotTurned)
    assert (turned.bot_id, turned.trigger) == ("qr", "reference")
    assert bot_texts(events) == ["Thanks for scanning!"]
    assert k.state("c1") is S.BOT  # ended without closing: still with the bot
    events = start(k, "c2", "hi", customer_id="k2")
    assert of_type(events, ev.BotTurned)[0].bot_id == "general"
    # the conversation remembers its reference (its row is written from it), through replay
    assert of_type(k.log, ev.ConversationStarted)[0].reference == "store-42"
    assert [k.router.conversations[cid].reference for cid in ("c1", "c2")] == ["store-42", ""]
    rebuilt = Engine(ManualClock())
    rebuilt.replay(k.log)
    assert rebuilt.router(T).conversations["c1"].reference == "store-42"


def test_out_of_hours_trigger_uses_the_queues_hours() -> None:
    k = kit()
    closed_all_week = m.BusinessHours(weekly={})
    k.queue("support", hours=closed_all_week, route_out_of_hours=True)
    night = bot("night", (MessageStep(id="n", content=Content(body="We are closed.")),))
    publish(k, dataclasses.replace(night, triggers=(OutOfHoursTrigger(),)))
    events = start(k, "c1", "hi")
    assert bot_texts(events) == ["We are closed."]
    assert of_type(events, ev.BotTurned)[0].trigger == "out_of_hours"
    k.queue("support")  # always open now
    events = start(k, "c2", "hi", customer_id="k2")
    assert not of_type(events, ev.BotTurned)


def test_keywords_answer_while_no_agent_owns_the_conversation() -> None:
    k = kit()
    price = bot("price", (MessageStep(id="p", content=Content(body="Plans start at $99.")),))
    publish(k, dataclasses.replace(price, triggers=(KeywordTrigger(keywords=("price", "價錢")),)))
    start(k, "c1", "hi")
    assert bot_texts(say(k, "c1", "what is the 價錢?")) == ["Plans start at $99."]
    assert k.state("c1") is S.QUEUED
    k.agent("ann", skills={"billing": 3})
    k.assign("c1")
    assert bot_texts(say(k, "c1", "and the price?")) == []  # Ann answers now


# --- flows -------------------------------------------------------------------------------------


def test_picks_misses_and_could_not_answer() -> None:
    k = kit()
    publish(k, menu_bot(max_misses=2))
    start(k, "c1", "hi")
    events = say(k, "c1", "blah")
    assert bot_texts(events) == ["Please pick one of the options.", "How can we help?"]
    events = say(k, "c1", "still blah")
    assert bot_texts(events) == ["Let me find a person for you."]
    (handed,) = of_type(events, ev.BotHandedOff)
    assert handed.reason == "bot_could_not_answer"
    (queued,) = of_type(events, ev.ConversationQueued)
    assert (queued.reason, queued.queue_id) == (m.QueueReason.BOT_HANDOFF, "support")
    assert k.state("c1") is S.QUEUED


def test_a_question_collects_a_field_and_a_webhook_answers_through_an_effect() -> None:
    k = kit()
    publish(k, menu_bot())
    start(k, "c1", "hi")
    assert bot_texts(say(k, "c1", option="order")) == ["Your e-mail, please?"]
    assert bot_texts(say(k, "c1", "not an address")) == ["That is not an e-mail address."]
    result = k.run(
        c.RecordMessage(
            tenant=T,
            conversation_id="c1",
            sender=m.Sender.CUSTOMER,
            message=m.MessageBody(text="ann@example.com"),
        )
    )
    (turned,) = of_type(result.events, ev.BotTurned)
    assert turned.fields == (("email", "ann@example.com"),)
    assert turned.webhook is not None and turned.state.waiting is Waiting.EFFECT
    (effect,) = [e for e in result.effects if isinstance(e, BotEffectRequested)]
    assert (effect.conversation_id, effect.effect, effect.webhook) == ("c1", 1, turned.webhook)
    assert k.router.pending_bot_effects() == [effect]
    waiting = say(k, "c1", "hello?")  # heard, but the webhook's answer will reply
    assert bot_texts(waiting) == [] and not of_type(waiting, ev.BotTurned)
    late = c.AnswerBotEffect(tenant=T, conversation_id="c1", effect=7, ok=True, text="nope")
    assert k.run(late).events == []
    answer = c.AnswerBotEffect(tenant=T, conversation_id="c1", effect=1, ok=True, text="Shipped!")
    events = k.run(answer).events
    assert bot_texts(events) == ["Shipped!"]
    assert of_type(events, ev.BotEnded)[0].closed
    (ended,) = of_type(events, ev.ConversationEnded)
    assert ended.reason is m.CloseReason.BOT_RESOLVED
    assert k.state("c1") is S.CLOSED
    assert k.run(answer).events == []  # repeated: nothing
    replay_equal(k)


def test_a_failed_webhook_takes_the_fallback_and_hands_off_with_skills_and_priority() -> None:
    k = kit()
    k.agent("ann", skills={"billing": 1})
    k.agent("bob", skills={"billing": 4})
    publish(k, menu_bot())
    start(k, "c1", "hi")
    say(k, "c1", option="order")
    say(k, "c1", "ann@example.com")
    failed = c.AnswerBotEffect(tenant=T, conversation_id="c1", effect=1, ok=False)
    events = k.run(failed).events
    assert bot_texts(events) == ["Sorry, our system is away."]
    (handed,) = of_type(events, ev.BotHandedOff)
    assert (handed.reason, handed.skills, handed.priority) == ("bot_handoff", (("billing", 2),), 5)
    assert handed.fields == (("email", "ann@example.com"),)
    (turned,) = of_type(events, ev.BotTurned)
    assert turned.tags_added == ("wants_human",)
    assert k.offered_to("c1") == ("bob",)  # Ann's billing level is below what the bot wants
    assert of_type(events, ev.ConversationQueued)[0].priority == 5
    (offer,) = of_type(events, ev.OfferMade)  # Bob's console shows the hand-off with the offer
    assert offer.hand_off == m.HandOffCard(
        bot_id="menu",
        version=1,
        reason="bot_handoff",
        fields=(("email", "ann@example.com"),),
        at=handed.at,
    )
    replay_equal(k)


def test_a_hand_off_card_is_bounded() -> None:
    fields: tuple[tuple[str, FieldValue], ...] = (
        *((f"f{i:02}", "x" * 300) for i in range(30)),
        ("a_list", tuple(str(i) for i in range(50))),
        ("a_number", 3.5),
    )
    card = m.HandOffCard.card(bot_id="b", version=2, reason="r", fields=fields, at=1.0)
    assert len(card.fields) == m.MAX_HAND_OFF_FIELDS
    assert [key for key, _ in card.fields[:3]] == ["a_list", "a_number", "f00"]
    assert card.fields[0][1] == tuple(str(i) for i in range(m.MAX_HAND_OFF_CHOICES))
    assert card.fields[1][1] == 3.5
    assert all(v == "x" * m.MAX_PROFILE_TEXT for _, v in card.fields[2:])


def test_an_agent_taking_over_stops_the_flow_and_a_hand_back_resumes_it() -> None:
    k = kit()
    k.agent("ann", skills={"billing": 3})
    publish(k, menu_bot())
    start(k, "c1", "hi")
    say(k, "c1", option="order")
    say(k, "c1", "ann@example.com")  # the flow waits for the webhook
    k.run(c.SetMode(tenant=T, agent_id="ann", conversation_id="c1", mode=m.Mode.LIVE))
    assert k.state("c1") is S.ACTIVE and not k.conv("c1").bot.running
    assert k.router.pending_bot_effects() == []
    answer = c.AnswerBotEffect(tenant=T, conversation_id="c1", effect=1, ok=True, text="late")
    assert k.run(answer).events == []
    events = k.run(c.SetMode(tenant=T, agent_id="ann", conversation_id="c1", mode=m.Mode.AUTO))
    turned = of_type(events.events, ev.BotTurned)
    assert [(t.trigger, t.run) for t in turned] == [("returned", 2)]
    assert bot_texts(events.events) == ["Welcome back to the bot.", "How can we help?"]
    assert k.state("c1") is S.BOT
    say(k, "c1", option="bye")
    assert k.state("c1") is S.CLOSED
    replay_equal(k)


def test_a_knowledge_answer_and_a_pick_by_number_with_list_style() -> None:
    k = kit()
    publish(k, menu_bot(style=ChoiceStyle.LIST))
    events = start(k, "c1", "hi")
    reply = of_type(events, ev.MessageRecorded)[-1]
    assert reply.body.choices is not None and reply.body.choices.style is m.ChoiceStyle.LIST
    assert bot_texts(say(k, "c1", "2")) == ["What is your question?"]
    result = k.run(
        c.RecordMessage(
            tenant=T,
            conversation_id="c1",
            sender=m.Sender.CUSTOMER,
            message=m.MessageBody(text="how do I reset my password"),
        )
    )
    (effect,) = [e for e in result.effects if isinstance(e, BotEffectRequested)]
    assert effect.knowledge is not None and effect.knowledge.query == "how do I reset my password"
    answer = c.AnswerBotEffect(
        tenant=T, conversation_id="c1", effect=1, ok=True, text="Use the link.", confident=True
    )
    assert bot_texts(k.run(answer).events) == ["Use the link."]
    assert k.state("c1") is S.CLOSED


def test_replay_rebuilds_a_flow_mid_way() -> None:
    k = kit()
    publish(k, menu_bot())
    start(k, "c1", "hi")
    say(k, "c1", option="order")
    rebuilt = Engine(ManualClock(k.clock.now()))
    rebuilt.replay(k.log)
    run = rebuilt.router(T).conversations["c1"].bot
    assert run is not None and (run.state.step, run.state.waiting) == (
        "ask_email",
        Waiting.CUSTOMER,
    )
    assert run == k.conv("c1").bot


def test_a_customer_leaving_stops_the_flow() -> None:
    k = kit()
    publish(k, menu_bot())
    start(k, "c1", "hi")
    k.run(c.CustomerLeft(tenant=T, conversation_id="c1"))
    assert k.state("c1") is S.CLOSED and not k.conv("c1").bot.running


def test_hours_are_read_at_the_clock_now() -> None:
    k = kit()
    today = dt.datetime.fromtimestamp(k.clock.now(), dt.UTC).weekday()
    always = m.BusinessHours(weekly={today: (m.TimeRange(dt.time(0), dt.time(0)),)})
    k.queue("support", hours=always)
    night = bot("night", (MessageStep(id="n", content=Content(body="closed")),))
    publish(k, dataclasses.replace(night, triggers=(OutOfHoursTrigger(),)))
    assert not of_type(start(k, "c1", "hi"), ev.BotTurned)


def test_a_bots_writes_show_on_the_customers_profile_cards_at_once() -> None:
    k = kit()
    k.agent("ann")
    writer = bot(
        "writer",
        (
            ActionsStep(
                id="write",
                actions=(
                    SetFieldAction(field=FieldSpec(key="plan", type="text"), value="gold"),
                    SetFieldAction(field=FieldSpec(key="seats", type="number"), value=12.0),
                    SetFieldAction(field=FieldSpec(key="display_name", type="text"), value="Mei"),
                    SetFieldAction(
                        field=FieldSpec(key="phone", type="phone"), value="+85291234567"
                    ),
                    SetTagsAction(add=("vip", "new"), remove=("lead",)),
                ),
                next="said",
            ),
            MessageStep(id="said", content=Content(body="Noted.")),
        ),
        triggers=(KeywordTrigger(keywords=("upgrade",)),),
        channels=("webchat",),
    )
    publish(k, writer)
    profile = m.CustomerProfile(
        customer_id="k1",
        display_name="M.",
        fields=(m.ProfileField(key="plan", label="Plan", value="silver"),),
        tags=("lead", "vip"),
    )
    card = m.CustomerCard(external_id="k1", profile=profile)
    k.start("wa1", "support", channel="whatsapp", customer_id="k1", customer=card)  # to Ann
    offered = k.router.conversations["wa1"]
    assert offered.state is S.OFFERED
    start(k, "c1", "hello", customer_id="k1", customer=card, with_bot=True)
    events = say(k, "c1", "I want to upgrade")
    assert bot_texts(events) == ["Noted."]
    changed = of_type(events, ev.CustomerProfileChanged)
    assert [e.conversation_id for e in changed] == ["c1", "wa1"]  # every open card of theirs
    assert changed[1].agent_ids == ("ann",)  # the offered agent's console is told
    shown = changed[0].profile
    assert shown.display_name == "Mei"
    assert shown.fields == (
        m.ProfileField(key="plan", label="Plan", value="gold"),
        m.ProfileField(key="seats", label="seats", value="12"),
    )
    assert shown.tags == ("vip", "new")
    assert k.router.conversations["wa1"].customer.profile == shown
    assert say(k, "c1", "thanks") is not None
    replay_equal(k)
