"""Bots for tests: a builder, and one flow with a step of every kind (shared by the engine's
unit tests, the server's integration tests and the benchmark's smoke test)."""

from __future__ import annotations

from typing import Any

from core.bots import codec
from core.bots.flow import (
    ActionsStep,
    Bot,
    BotStatus,
    Branch,
    ChoiceStep,
    ChoiceStyle,
    ConditionStep,
    Content,
    EndAction,
    FieldSpec,
    Flow,
    HandOffAction,
    KnowledgeStep,
    MessageStep,
    NewConversationTrigger,
    Option,
    QuestionStep,
    SetTagsAction,
    SkillNeed,
    Step,
    TagCondition,
    Trigger,
    WebhookStep,
)

EMAIL = FieldSpec(key="email", type="email")


def bot(
    bot_id: str,
    steps: tuple[Step, ...],
    *,
    start: str = "",
    triggers: tuple[Trigger, ...] = (NewConversationTrigger(),),
    channels: tuple[str, ...] = ("webchat",),
    status: BotStatus = BotStatus.ACTIVE,
    version: int = 1,
    **flow: Any,
) -> Bot:
    return Bot(
        id=bot_id,
        name=bot_id.title(),
        channels=channels,
        status=status,
        triggers=triggers,
        version=version,
        flow=Flow(start=start or steps[0].id, steps=steps, **flow),
    )


def as_json(b: Bot) -> str:
    return codec.bot_to_json(b)


def menu_steps(
    *, webhook_url: str = "https://hooks.example.com/order", style: ChoiceStyle = ChoiceStyle.AUTO
) -> tuple[Step, ...]:
    """A menu (order status, FAQ, a human, goodbye, and a returned greeting): every step kind.

    ``order`` asks for an e-mail (a customer field), sends a VIP (a customer tag) to people,
    else calls the webhook (which may send the
    flow to ``to_human``; fallback: a hand-off saying sorry); ``faq`` answers from the
    knowledge base; ``human`` tags the customer and hands off to queue ``support`` wanting skill
    ``billing`` with priority 5; ``bye`` ends and closes."""
    return (
        ChoiceStep(
            id="menu",
            content=Content(title="Welcome", body="How can we help?", footer="Acme"),
            options=(
                Option(id="order", title="Order status", next="ask_email"),
                Option(id="faq", title="A question", next="ask_question"),
                Option(id="human", title="A person", next="to_human"),
                Option(id="bye", title="Nothing", next="goodbye"),
            ),
            style=style,
            button_text="Choose",
        ),
        QuestionStep(
            id="ask_email",
            content=Content(body="Your e-mail, please?"),
            field=EMAIL,
            invalid_reply="That is not an e-mail address.",
            next="route",
        ),
        ConditionStep(
            id="route",
            branches=(Branch(condition=TagCondition(tag="vip"), next="to_human"),),
            otherwise="lookup",
        ),
        WebhookStep(
            id="lookup",
            url=webhook_url,
            fallback="sorry",
            timeout_ms=1_000,
            next="goodbye",
            allowed_next=("to_human",),
        ),
        MessageStep(
            id="sorry", content=Content(body="Sorry, our system is away."), next="to_human"
        ),
        QuestionStep(id="ask_question", content=Content(body="What is your question?"), next="kb"),
        KnowledgeStep(id="kb", next="goodbye", otherwise="to_human"),
        ActionsStep(
            id="to_human",
            actions=(
                SetTagsAction(add=("wants_human",)),
                HandOffAction(
                    queue="support", skills=(SkillNeed(skill="billing", min_level=2),), priority=5
                ),
            ),
        ),
        ActionsStep(id="goodbye", actions=(EndAction(close=True),)),
        MessageStep(id="returned", content=Content(body="Welcome back to the bot."), next="menu"),
    )


def menu_bot(bot_id: str = "menu", **kwargs: Any) -> Bot:
    webhook_url = kwargs.pop("webhook_url", "https://hooks.example.com/order")
    style = kwargs.pop("style", ChoiceStyle.AUTO)
    kwargs.setdefault("default_reply", "Please pick one of the options.")
    kwargs.setdefault("handoff_text", "Let me find a person for you.")
    kwargs.setdefault("could_not_answer", HandOffAction(queue="support"))
    return bot(bot_id, menu_steps(webhook_url=webhook_url, style=style), **kwargs)


def branches_bot(channel: str) -> Bot:
    """Three buttons; the first opens a list of five branches; a branch ends and closes; the
    second hands off to people."""
    return bot(
        "branches",
        (
            ChoiceStep(
                id="menu",
                content=Content(title="Bike shop", body="How can we help?", footer="Tap one"),
                options=(
                    Option(id="visit", title="Visit a branch", next="which"),
                    Option(id="person", title="A person", next="human"),
                    Option(id="nothing", title="Nothing", next="bye"),
                ),
            ),
            ChoiceStep(
                id="which",
                content=Content(body="Which branch?"),
                options=tuple(
                    Option(
                        id=f"b{i}",
                        title=f"Branch {i}",
                        description=f"Open 9-{i + 5}",
                        next="see_you",
                    )
                    for i in range(1, 6)
                ),
                style=ChoiceStyle.LIST,
                button_text="Branches",
            ),
            MessageStep(id="see_you", content=Content(body="See you at the branch."), next="bye"),
            ActionsStep(id="human", actions=(HandOffAction(queue="support"),)),
            ActionsStep(id="bye", actions=(EndAction(close=True),)),
        ),
        channels=(channel,),
        default_reply="Please tap one of the buttons.",
    )
