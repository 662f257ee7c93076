"""Bots without a server: properties of the pure interpreter over random flows (a validated flow
never loops without a customer turn, every input gives exactly one turn with at most one
effect, late or repeated effect answers change nothing, states and bots survive their codecs),
and the rules of validation, triggers, field answers and webhooks by example."""

from __future__ import annotations

import dataclasses
import json
import pickle

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.bots import codec, webhook
from core.bots import fields as bot_fields
from core.bots import interpreter as it
from core.bots.flow import (
    ActionsStep,
    Bot,
    BotStatus,
    Branch,
    BusinessHoursCondition,
    ChoiceStep,
    ChoiceStyle,
    ConditionStep,
    Content,
    EndAction,
    FieldCondition,
    FieldOperator,
    FieldSpec,
    Flow,
    HandOffAction,
    KeywordTrigger,
    KnowledgeStep,
    LanguageCondition,
    MessageStep,
    NewConversationTrigger,
    Option,
    OutOfHoursTrigger,
    PhraseMatch,
    PhraseTrigger,
    QuestionStep,
    ReferenceTrigger,
    SetFieldAction,
    SetTagsAction,
    SkillNeed,
    Step,
    TagCondition,
    WebhookStep,
)
from core.bots.triggers import Arrival, BadPattern, choose, compile_pattern
from core.bots.validate import Severity, errors, loops, validate

SPECS = {
    "email": FieldSpec(key="email", type="email"),
    "order_no": FieldSpec(key="order_no", type="number"),
    "size": FieldSpec(key="size", type="single_choice", choices=("S", "M", "L")),
}

# --- random flows ---------------------------------------------------------------------------------


@st.composite
def flows(draw: st.DrawFn) -> Bot:
    count = draw(st.integers(1, 7))
    ids = [f"s{i}" for i in range(count)]
    ref = st.sampled_from([*ids, ""])
    some = st.sampled_from(ids)
    steps: list[Step] = []
    for step_id in ids:
        kind = draw(st.integers(0, 6))
        content = Content(body=f"at {step_id}")
        step: Step
        if kind == 0:
            step = MessageStep(id=step_id, content=content, next=draw(ref))
        elif kind == 1:
            n = draw(st.integers(1, 3))
            step = ChoiceStep(
                id=step_id,
                content=content,
                options=tuple(
                    Option(id=f"o{j}", title=f"Opt {j}", next=draw(some)) for j in range(n)
                ),
            )
        elif kind == 2:
            field = draw(st.sampled_from([None, *SPECS.values()]))
            step = QuestionStep(id=step_id, content=content, field=field, next=draw(ref))
        elif kind == 3:
            condition = draw(
                st.sampled_from(
                    [
                        BusinessHoursCondition(),
                        TagCondition(tag="vip"),
                        LanguageCondition(languages=("zh",)),
                        FieldCondition(field=SPECS["email"], operator=FieldOperator.IS_SET),
                    ]
                )
            )
            step = ConditionStep(
                id=step_id,
                branches=(
                    Branch(condition=condition, next=draw(some), negate=draw(st.booleans())),
                ),
                otherwise=draw(some),
            )
        elif kind == 4:
            step = KnowledgeStep(id=step_id, next=draw(ref), otherwise=draw(ref))
        elif kind == 5:
            step = WebhookStep(
                id=step_id,
                url="https://hooks.example.com/x",
                next=draw(ref),
                fallback=draw(some),
                allowed_next=tuple(draw(st.lists(some, max_size=2, unique=True))),
            )
        else:
            actions: list[SetTagsAction | SetFieldAction | HandOffAction | EndAction] = [
                SetTagsAction(add=("vip",))
                if draw(st.booleans())
                else SetTagsAction(remove=("vip",)),
            ]
            last = draw(st.integers(0, 3))
            if last == 1:
                actions.append(SetFieldAction(field=SPECS["email"], value="a@example.com"))
            terminal = last == 2 or last == 3
            if last == 2:
                actions.append(HandOffAction(queue="support", skills=(SkillNeed(skill="x"),)))
            if last == 3:
                actions.append(EndAction(close=draw(st.booleans())))
            step = ActionsStep(
                id=step_id, actions=tuple(actions), next="" if terminal else draw(ref)
            )
        steps.append(step)
    flow = Flow(
        start="s0",
        steps=tuple(steps),
        default_reply="Sorry?",
        max_misses=draw(st.integers(0, 3)),
        handoff_text=draw(st.sampled_from(["", "A person will help."])),
    )
    return Bot(id="bot", flow=flow, channels=("web",), status=BotStatus.ACTIVE)


TEXTS = ["1", "2", "o0", "Opt 1", "kim@example.com", "42", "m", "nonsense", "", "  "]


@st.composite
def inputs(draw: st.DrawFn) -> list[tuple[str, object]]:
    """Abstract inputs; effect answers are bound to the awaited effect when they are played."""
    moves = st.one_of(
        st.tuples(st.just("text"), st.sampled_from(TEXTS)),
        st.tuples(st.just("pick"), st.sampled_from(["o0", "o1", "o2", "zz"])),
        st.tuples(
            st.just("answer"),
            st.tuples(st.booleans(), st.booleans(), st.sampled_from(["", "s0", "s1", "zz"])),
        ),
        st.tuples(st.just("stale"), st.integers(0, 5)),
    )
    return draw(st.lists(moves, max_size=14))


CONTEXTS = st.builds(
    it.Context,
    channel=st.sampled_from(["web", "sms"]),
    language=st.sampled_from(["", "en", "zh-Hant-HK"]),
    open=st.booleans(),
    tags=st.sampled_from([frozenset(), frozenset({"vip"})]),
)


def _effect_answer(state: it.BotState, step: Step | None, how: tuple[bool, bool, str]) -> it.Input:
    ok, confident, next_step = how
    if isinstance(step, KnowledgeStep):
        return it.KnowledgeResult(
            effect=state.effect, ok=ok, answer="An answer", confident=confident
        )
    return it.WebhookResult(effect=state.effect, ok=ok, next_step=next_step, text="From the hook")


def _check_turn(bot: Bot, before: it.BotState | None, turn: it.Turn) -> None:
    effects = [o for o in turn.outputs if isinstance(o, it.WebhookCall | it.KnowledgeSearch)]
    assert len(effects) <= 1
    state = turn.state
    if effects:
        assert state.waiting is it.Waiting.EFFECT and state.effect == effects[0].effect
        assert effects[0] is turn.outputs[-1]
    if state.waiting is it.Waiting.EFFECT:
        assert effects or (before is not None and before == state)
    if turn.hand_off is not None or turn.ended is not None:
        assert state.over
    assert len(turn.replies) <= 2 * len(bot.flow.steps) + 2
    assert codec.state_from_json(codec.state_to_json(state)) == state
    if state.waiting is not it.Waiting.NOTHING:
        assert bot.flow.step(state.step) is not None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bot=flows(), script=inputs(), context=CONTEXTS)
def test_a_validated_flow_gives_one_finite_turn_per_input(
    bot: Bot, script: list[tuple[str, object]], context: it.Context
) -> None:
    problems = errors(validate(bot, channel_types={"web": "web_chat"}))
    if problems:
        return
    turn = it.start(bot, context)
    _check_turn(bot, None, turn)
    state = turn.state
    for kind, value in script:
        step = bot.flow.step(state.step)
        move: it.Input
        if kind == "text":
            move = it.CustomerText(str(value))
        elif kind == "pick":
            move = it.OptionPick(str(value))
        elif kind == "answer":
            assert isinstance(value, tuple)
            move = _effect_answer(state, step, value)
        else:
            assert isinstance(value, int)
            move = it.WebhookResult(effect=state.effect + 1 + value, ok=True)  # never asked
        turn = it.advance(bot, state, move, context)
        _check_turn(bot, state, turn)
        if (
            kind == "stale"
            or (state.over and kind != "answer")
            or (state.waiting is it.Waiting.EFFECT and kind in ("text", "pick"))
        ):
            assert turn == it.Turn(state), "an input the flow does not wait for changes nothing"
        if kind == "answer" and state.waiting is it.Waiting.EFFECT:
            again = it.advance(bot, turn.state, move, context)
            assert again == it.Turn(turn.state), "a repeated answer changes nothing"
        state = turn.state


@settings(max_examples=300, deadline=None)
@given(bot=flows(), context=CONTEXTS)
def test_a_flow_the_interpreter_could_loop_in_is_refused(bot: Bot, context: it.Context) -> None:
    """Running from every step with every effect answered every way never loops unless the
    validator names a loop."""
    flagged = bool(loops(bot.flow.steps))
    looped = False
    for step in bot.flow.steps:
        try:
            turn = it.start(bot, context, step=step.id, text="question")
            for how in ((True, True, ""), (False, False, ""), (True, False, "s1")):
                if turn.state.waiting is it.Waiting.EFFECT:
                    it.advance(
                        bot,
                        turn.state,
                        _effect_answer(turn.state, bot.flow.step(turn.state.step), how),
                        context,
                    )
        except it.FlowLoop:
            looped = True
    if looped:
        assert flagged


@settings(max_examples=200, deadline=None)
@given(bot=flows())
def test_bots_survive_json_pickle_and_protos(bot: Bot) -> None:
    assert codec.bot_from_json(codec.bot_to_json(bot)) == bot
    copy = pickle.loads(pickle.dumps(bot))
    assert copy == bot and copy.flow.step("s0") == bot.flow.step("s0")
    read = codec.bot_from_proto(codec.bot_to_proto(bot), bot_id=bot.id, fields=SPECS)
    assert dataclasses.replace(read, status=bot.status) == bot


# --- the interpreter by example -------------------------------------------------------------------


def _bot(*steps: Step, **flow: object) -> Bot:
    return Bot(
        id="b",
        flow=Flow(start=steps[0].id, steps=steps, default_reply="Sorry?", **flow),  # type: ignore[arg-type]
    )


def test_a_choice_is_picked_by_id_title_or_number_and_a_miss_asks_again() -> None:
    menu = ChoiceStep(
        id="m",
        content=Content(body="Pick"),
        options=(Option(id="a", title="Apples", next="x"), Option(id="b", title="Pears", next="x")),
        style=ChoiceStyle.LIST,
        button_text="Fruit",
    )
    bot = _bot(menu, MessageStep(id="x", content=Content(body="ok")))
    ctx = it.Context()
    state = it.start(bot, ctx).state
    for move in (it.OptionPick("b"), it.CustomerText(" apples "), it.CustomerText("2")):
        assert it.advance(bot, state, move, ctx).replies[0].content.body == "ok"
    missed = it.advance(bot, state, it.CustomerText("bananas"), ctx)
    assert [r.content.body for r in missed.replies] == ["Sorry?", "Pick"]
    assert missed.replies[1].options[0] == it.ReplyOption("a", "Apples")
    assert missed.replies[1].button_text == "Fruit" and missed.state.misses == 1


def test_a_question_fills_a_typed_field() -> None:
    ask = QuestionStep(
        id="q", content=Content(body="Size?"), field=SPECS["size"], invalid_reply="S, M or L"
    )
    bot = _bot(ask)
    ctx = it.Context()
    state = it.start(bot, ctx).state
    wrong = it.advance(bot, state, it.CustomerText("XL"), ctx)
    assert wrong.replies[0].content.body == "S, M or L"
    right = it.advance(bot, state, it.CustomerText("m"), ctx)
    assert right.outputs[0] == it.FieldsSet((("size", "M"),))
    assert right.state.fields == (("size", "M"),) and right.state.over


def test_conditions_see_the_flows_own_tags_and_fields() -> None:
    bot = _bot(
        ActionsStep(id="tag", actions=(SetTagsAction(add=("vip",)),), next="c"),
        ConditionStep(
            id="c",
            branches=(Branch(condition=TagCondition(tag="vip"), next="yes"),),
            otherwise="no",
        ),
        MessageStep(id="yes", content=Content(body="vip")),
        MessageStep(id="no", content=Content(body="not vip")),
    )
    assert it.start(bot, it.Context()).replies[0].content.body == "vip"


def test_a_language_condition_holds_for_more_specific_tags() -> None:
    bot = _bot(
        ConditionStep(
            id="c",
            branches=(Branch(condition=LanguageCondition(languages=("zh",)), next="zh"),),
            otherwise="en",
        ),
        MessageStep(id="zh", content=Content(body="你好")),
        MessageStep(id="en", content=Content(body="Hello")),
    )
    assert it.start(bot, it.Context(language="zh-Hant-HK")).replies[0].content.body == "你好"
    assert it.start(bot, it.Context(language="en")).replies[0].content.body == "Hello"


def test_a_knowledge_step_answers_and_waits_for_the_next_question() -> None:
    bot = _bot(KnowledgeStep(id="kb"), max_misses=2, handoff_text="A person will help.")
    ctx = it.Context(language="th")
    first = it.start(bot, ctx, text="เปิดกี่โมงครับ")
    search = first.effect
    assert isinstance(search, it.KnowledgeSearch)
    assert (search.query, search.language, search.effect) == ("เปิดกี่โมงครับ", "th", 1)
    answered = it.advance(
        bot, first.state, it.KnowledgeResult(effect=1, ok=True, answer="9-6", confident=True), ctx
    )
    assert answered.replies[0].content.body == "9-6"
    assert answered.state.waiting is it.Waiting.CUSTOMER
    again = it.advance(bot, answered.state, it.CustomerText("และวันเสาร์?"), ctx)
    assert isinstance(again.effect, it.KnowledgeSearch) and again.effect.effect == 2
    unsure = it.advance(bot, again.state, it.KnowledgeResult(effect=2, ok=True), ctx)
    assert unsure.replies[0].content.body == "Sorry?" and unsure.state.misses == 1
    third = it.advance(bot, unsure.state, it.CustomerText("?"), ctx)
    failed = it.advance(bot, third.state, it.KnowledgeResult(effect=3, ok=False), ctx)
    assert failed.replies[0].content.body == "A person will help."
    assert failed.hand_off is not None and failed.hand_off.reason.value == "bot_could_not_answer"


def test_a_webhook_answer_chooses_the_next_step_among_those_allowed() -> None:
    bot = _bot(
        WebhookStep(id="h", url="https://x.test", fallback="fb", next="n", allowed_next=("vip",)),
        MessageStep(id="fb", content=Content(body="fallback")),
        MessageStep(id="n", content=Content(body="next")),
        MessageStep(id="vip", content=Content(body="vip")),
    )
    ctx = it.Context(now=1_700_000_000.5, conversation_id="c1")
    start = it.start(bot, ctx, text="hello")
    call = start.effect
    assert isinstance(call, it.WebhookCall)
    body = json.loads(call.body)
    assert (body["conversation"], body["text"], body["time"]) == ("c1", "hello", 1_700_000_000.5)

    def after(result: it.WebhookResult) -> list[str]:
        return [r.content.body for r in it.advance(bot, start.state, result, ctx).replies]

    assert after(webhook.parse_response(1, 200, b'{"text": "hi", "next_step": "vip"}')) == [
        "hi",
        "vip",
    ]
    assert after(webhook.parse_response(1, 204, b"")) == ["next"]
    assert after(webhook.parse_response(1, 200, b'{"next_step": "n"}')) == ["fallback"]
    assert after(webhook.parse_response(1, 500, b"{}")) == ["fallback"]
    assert after(webhook.parse_response(1, 200, b"[1]")) == ["fallback"]
    assert after(webhook.failed(1)) == ["fallback"]


def test_a_message_while_an_effect_is_awaited_gets_no_turn_of_its_own() -> None:
    bot = _bot(
        WebhookStep(id="h", url="https://x.test", fallback="f"),
        MessageStep(id="f", content=Content(body="f")),
    )
    start = it.start(bot, it.Context())
    assert it.advance(bot, start.state, it.CustomerText("hello?"), it.Context()) == it.Turn(
        start.state
    )


def test_a_state_of_another_version_is_refused() -> None:
    bot = _bot(MessageStep(id="m", content=Content(body="x")))
    state = it.BotState(bot_id="b", version=2, step="m", waiting=it.Waiting.CUSTOMER)
    with pytest.raises(it.FlowError):
        it.advance(bot, state, it.CustomerText("x"), it.Context())


# --- validation by example ------------------------------------------------------------------------


def _problems(bot: Bot, strict: bool = False) -> dict[str, str]:
    return errors(validate(bot, channel_types={"wa": "whatsapp"}, strict=strict))


def test_loops_without_a_customer_turn_are_found_and_loops_through_one_are_fine() -> None:
    cyclic = _bot(
        MessageStep(id="a", content=Content(body="a"), next="b"),
        WebhookStep(id="b", url="https://x.test", fallback="a"),
    )
    assert "flow.steps[0]" in _problems(cyclic)
    through_a_question = _bot(
        MessageStep(id="a", content=Content(body="a"), next="q"),
        QuestionStep(id="q", content=Content(body="?"), next="a"),
    )
    assert _problems(through_a_question) == {}


def test_unreachable_steps_warn_in_drafts_and_refuse_when_served() -> None:
    bot = dataclasses.replace(
        _bot(
            MessageStep(id="a", content=Content(body="a")),
            MessageStep(id="b", content=Content(body="b")),
        ),
        channels=("wa",),
    )
    draft = validate(bot, channel_types={"wa": "whatsapp"})
    assert [(p.field, p.severity) for p in draft] == [("flow.steps[1]", Severity.WARNING)]
    assert "flow.steps[1]" in _problems(bot, strict=True)
    reached = dataclasses.replace(bot, triggers=(KeywordTrigger(keywords=("b",), step="b"),))
    assert _problems(reached, strict=True) == {}


def test_served_bots_need_a_channel_and_a_default_reply() -> None:
    bot = _bot(MessageStep(id="a", content=Content(body="a")))
    bot = dataclasses.replace(bot, flow=dataclasses.replace(bot.flow, default_reply=""))
    assert set(_problems(bot, strict=True)) == {"channels", "flow.default_reply"}
    assert _problems(bot) == {}


def test_a_list_fits_whatsapp_where_buttons_would_not() -> None:
    options = tuple(Option(id=f"o{i}", title=f"Option {i}", next="m") for i in range(5))
    bot = dataclasses.replace(
        _bot(ChoiceStep(id="m", content=Content(body="Pick"), options=options)), channels=("wa",)
    )
    assert _problems(bot) == {}  # AUTO: five options become a list
    buttons = dataclasses.replace(bot.flow.steps[0], style=ChoiceStyle.BUTTONS)
    forced = dataclasses.replace(bot, flow=dataclasses.replace(bot.flow, steps=(buttons,)))
    assert "flow.steps[0].choice.options" in _problems(forced)


# --- triggers -------------------------------------------------------------------------------------


def _served(bot_id: str, *triggers: object) -> Bot:
    return Bot(
        id=bot_id,
        flow=Flow(start="a", steps=(MessageStep(id="a", content=Content(body="a")),)),
        channels=("wa",),
        status=BotStatus.ACTIVE,
        triggers=triggers,  # type: ignore[arg-type]
    )


def test_the_most_specific_trigger_wins() -> None:
    bots = [
        _served("welcome", NewConversationTrigger()),
        _served("night", OutOfHoursTrigger()),
        _served("refunds", PhraseTrigger(text=r"refund|退款", match=PhraseMatch.PATTERN)),
        _served("menu", PhraseTrigger(text="Menu")),
        _served("qr", ReferenceTrigger(reference="spring-sale", step="a")),
        _served("help", KeywordTrigger(keywords=("HELP",))),
    ]

    def chosen(**arrival: object) -> str:
        match = choose(bots, Arrival(channel="wa", **arrival))  # type: ignore[arg-type]
        return match.bot.id if match else ""

    assert chosen(new_conversation=True) == "welcome"
    assert chosen(new_conversation=True, open=False) == "night"
    assert chosen(new_conversation=True, text=" menu ") == "menu"
    assert chosen(new_conversation=False, text="我想退款") == "refunds"
    assert chosen(new_conversation=False, text="please help me") == "help"
    assert chosen(new_conversation=True, text="help", reference="spring-sale") == "qr"
    assert chosen(new_conversation=False, text="hello") == ""
    assert choose(bots, Arrival(channel="line", new_conversation=True)) is None


def test_patterns_are_re2_capped_and_linear() -> None:
    with pytest.raises(BadPattern):
        compile_pattern("(a")
    with pytest.raises(BadPattern):
        compile_pattern("x" * 201)
    with pytest.raises(BadPattern):
        compile_pattern("(a{1,100}){1,100}")
    evil = compile_pattern("(a+)+b")
    assert evil.search("a" * 4096) is None  # backtracking engines take exponential time here


# --- fields and webhooks --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "text", "expected"),
    [
        (FieldSpec(key="n", type="number"), " 12.5 ", 12.5),
        (FieldSpec(key="b", type="boolean"), "Yes", True),
        (FieldSpec(key="d", type="date"), "2026-02-28", "2026-02-28"),
        (
            FieldSpec(key="m", type="multiple_choice", choices=("Red", "Blue")),
            "red, blue",
            ("Red", "Blue"),
        ),
        (FieldSpec(key="phone", type="phone"), "+85291234567", "+85291234567"),
    ],
)
def test_answers_become_typed_values(spec: FieldSpec, text: str, expected: object) -> None:
    assert bot_fields.parse_answer(spec, text) == expected


@pytest.mark.parametrize(
    ("spec", "text"),
    [
        (FieldSpec(key="n", type="number"), "twelve"),
        (FieldSpec(key="d", type="date"), "2026-02-30"),
        (FieldSpec(key="e", type="email"), "kim at example"),
        (FieldSpec(key="x"), "anything"),
        (FieldSpec(key="display_name", type="text"), "x" * 201),
    ],
)
def test_invalid_answers_are_refused(spec: FieldSpec, text: str) -> None:
    assert isinstance(bot_fields.parse_answer(spec, text), bot_fields.Invalid)


def test_a_signed_request_carries_the_hmac_of_its_body() -> None:
    call = it.WebhookCall(effect=1, step="h", url="https://x.test", body='{"a":1}', timeout_ms=2500)
    signed = webhook.signed_request(call, "s3cret")
    headers = dict(signed.headers)
    assert webhook.verify("s3cret", signed.body, headers[webhook.SIGNATURE_HEADER])
    assert not webhook.verify("other", signed.body, headers[webhook.SIGNATURE_HEADER])
    assert signed.timeout == 2.5
