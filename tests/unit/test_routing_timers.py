"""Timers: customer and agent idleness, wrap-up, offer expiry, stale timers and deadlines."""

from __future__ import annotations

from core.routing import Result
from core.routing import commands as c
from core.routing import events as ev
from core.routing import model as m
from core.routing.effects import ArmTimer
from core.routing.timers import TimerKind
from tests.unit.engine_kit import Kit, T, of_type

S = m.ConversationState
Msg = m.SystemMessage


def said(result: Result) -> list[Msg]:
    return [e.kind for e in result.events if isinstance(e, ev.SystemMessageSent)]


def armed(result: Result) -> list[tuple[TimerKind, str, float]]:
    arms = [e for e in result.effects if isinstance(e, ArmTimer)]
    return [(a.kind, a.subject, a.deadline) for a in arms]


def message(kit: Kit, conversation_id: str, sender: m.Sender) -> Result:
    agent_id = kit.conv(conversation_id).owner if sender is m.Sender.AGENT else None
    return kit.run(
        c.RecordMessage(
            message=m.MessageBody(text="hi"),
            tenant=T,
            conversation_id=conversation_id,
            sender=sender,
            agent_id=agent_id,
        )
    )


def live_kit(settings: m.TenantSettings, *agents: str) -> Kit:
    """A queue, the given agents online, and conversation c1 owned by the first of them."""
    kit = Kit(settings)
    kit.queue()
    for agent_id in agents:
        kit.agent(agent_id)
    kit.start("c1")
    assert kit.assign("c1") == agents[0]
    return kit


# --- customer idle ----------------------------------------------------------------------------

IDLE_CUSTOMER = m.TenantSettings(customer_idle_remind=60, customer_idle_close=120)


def test_the_customer_is_reminded_t1_after_the_agents_unanswered_message() -> None:
    kit = live_kit(IDLE_CUSTOMER, "a1")
    message(kit, "c1", m.Sender.AGENT)

    assert not kit.advance(59).events
    result = kit.advance(1)

    assert [type(e) for e in result.events] == [ev.CustomerIdleReminded, ev.SystemMessageSent]
    assert said(result) == [Msg.IDLE_REMINDER]
    assert kit.state("c1") is S.ACTIVE


def test_the_conversation_closes_t2_after_the_reminder() -> None:
    kit = live_kit(IDLE_CUSTOMER, "a1")
    message(kit, "c1", m.Sender.AGENT)
    kit.advance(60)

    assert not kit.advance(119).events
    result = kit.advance(1)

    ended = of_type(result.events, ev.ConversationEnded)
    assert [e.reason for e in ended] == [m.CloseReason.CUSTOMER_IDLE]
    assert said(result) == [Msg.IDLE_CLOSED]
    assert kit.state("c1") is S.CLOSED
    assert kit.conv("c1").close_reason is m.CloseReason.CUSTOMER_IDLE
    assert kit.router.agents["a1"].load == 0


def test_a_customer_message_before_the_reminder_resets_the_idle_timer() -> None:
    kit = live_kit(IDLE_CUSTOMER, "a1")
    message(kit, "c1", m.Sender.AGENT)
    kit.advance(50)
    message(kit, "c1", m.Sender.CUSTOMER)

    assert not kit.advance(3600).events
    assert kit.state("c1") is S.ACTIVE


def test_a_customer_message_after_the_reminder_cancels_the_close() -> None:
    kit = live_kit(IDLE_CUSTOMER, "a1")
    message(kit, "c1", m.Sender.AGENT)
    kit.advance(60)
    message(kit, "c1", m.Sender.CUSTOMER)

    assert not kit.advance(3600).events
    assert kit.state("c1") is S.ACTIVE


def test_the_agents_next_message_restarts_t1() -> None:
    kit = live_kit(IDLE_CUSTOMER, "a1")
    message(kit, "c1", m.Sender.AGENT)
    kit.advance(50)
    message(kit, "c1", m.Sender.CUSTOMER)
    kit.advance(10)

    result = message(kit, "c1", m.Sender.AGENT)

    assert armed(result) == [(TimerKind.CUSTOMER_IDLE, "c1", kit.clock.now() + 60)]
    reminded = kit.advance(60)
    assert of_type(reminded.events, ev.CustomerIdleReminded)


def test_no_customer_idle_timer_without_the_setting() -> None:
    kit = live_kit(m.TenantSettings(), "a1")

    result = message(kit, "c1", m.Sender.AGENT)

    assert armed(result) == []
    assert not kit.advance(86_400).events


# --- agent idle -------------------------------------------------------------------------------

IDLE_AGENT = m.TenantSettings(agent_idle_notify=60)
IDLE_AGENT_REQUEUE = m.TenantSettings(agent_idle_notify=60, agent_idle_requeue=True)


def test_the_agent_is_notified_t3_after_an_unanswered_customer_message() -> None:
    kit = live_kit(IDLE_AGENT, "a1")
    message(kit, "c1", m.Sender.AGENT)
    kit.advance(30)
    message(kit, "c1", m.Sender.CUSTOMER)

    assert not kit.advance(59).events
    result = kit.advance(1)

    notified = of_type(result.events, ev.AgentIdleNotified)
    assert [(e.conversation_id, e.agent_id) for e in notified] == [("c1", "a1")]
    assert kit.conv("c1").owner == "a1"
    assert kit.state("c1") is S.ACTIVE


def test_an_agent_reply_cancels_the_idle_notification() -> None:
    kit = live_kit(IDLE_AGENT, "a1")
    message(kit, "c1", m.Sender.CUSTOMER)
    kit.advance(30)
    message(kit, "c1", m.Sender.AGENT)

    assert not of_type(kit.advance(3600).events, ev.AgentIdleNotified)


def test_the_agent_is_notified_only_once_per_unanswered_message() -> None:
    kit = live_kit(IDLE_AGENT, "a1")
    message(kit, "c1", m.Sender.CUSTOMER)
    kit.advance(60)

    assert not kit.advance(3600).events


def test_an_idle_agent_loses_the_conversation_to_another_agent() -> None:
    kit = live_kit(IDLE_AGENT_REQUEUE, "a1", "a2")
    message(kit, "c1", m.Sender.CUSTOMER)

    result = kit.advance(60)

    queued = of_type(result.events, ev.ConversationQueued)
    assert [(e.reason, e.exclude) for e in queued] == [(m.QueueReason.AGENT_IDLE, ("a1",))]
    assert kit.offered_to("c1") == ("a2",)
    assert kit.router.agents["a1"].conversations == set()


def test_a_requeued_conversation_is_not_offered_back_to_the_idle_agent() -> None:
    kit = live_kit(IDLE_AGENT_REQUEUE, "a1")
    message(kit, "c1", m.Sender.CUSTOMER)

    kit.advance(60)

    assert kit.state("c1") is S.QUEUED
    assert kit.router.agents["a1"].offers == set()
    kit.agent("a2")
    assert kit.offered_to("c1") == ("a2",)


def test_a_requeue_keeps_the_conversations_priority() -> None:
    kit = Kit(IDLE_AGENT_REQUEUE)
    kit.queue(priority=1)
    kit.agent("a1")
    kit.start("c1")
    kit.assign("c1")
    message(kit, "c1", m.Sender.CUSTOMER)

    kit.advance(60)

    assert kit.state("c1") is S.QUEUED
    assert kit.router.score(kit.conv("c1")) == 60  # the queue's priority once, not twice


# --- wrap-up ----------------------------------------------------------------------------------

WRAP_UP = m.TenantSettings(wrap_up_seconds=30)


def wrap_up_kit() -> Kit:
    """Agent a1 (capacity 1) owns c1; c2 waits behind it."""
    kit = live_kit(WRAP_UP, "a1")
    kit.start("c2")
    assert kit.state("c2") is S.QUEUED
    return kit


def test_ending_with_wrap_up_holds_the_agents_capacity() -> None:
    kit = wrap_up_kit()

    result = kit.end("c1")

    ended = of_type(result.events, ev.ConversationEnded)
    assert [e.wrap_up_until for e in ended] == [kit.clock.now() + 30]
    assert armed(result) == [(TimerKind.WRAP_UP, "c1", kit.clock.now() + 30)]
    assert kit.state("c1") is S.WRAP_UP
    assert kit.conv("c1").owner == "a1"
    assert kit.state("c2") is S.QUEUED


def test_finishing_wrap_up_frees_the_agent_for_the_next_conversation() -> None:
    kit = wrap_up_kit()
    kit.end("c1")

    kit.run(c.FinishWrapUp(tenant=T, agent_id="a1", conversation_id="c1"))

    assert kit.state("c1") is S.CLOSED
    assert kit.offered_to("c2") == ("a1",)


def test_the_wrap_up_timer_frees_the_agent_when_it_expires() -> None:
    kit = wrap_up_kit()
    kit.end("c1")

    kit.advance(29)
    assert kit.state("c1") is S.WRAP_UP
    result = kit.advance(1)

    assert of_type(result.events, ev.WrapUpFinished)
    assert kit.state("c1") is S.CLOSED
    assert kit.offered_to("c2") == ("a1",)


def test_the_wrap_up_timer_fires_nothing_after_an_early_finish() -> None:
    kit = wrap_up_kit()
    kit.end("c1")
    kit.run(c.FinishWrapUp(tenant=T, agent_id="a1", conversation_id="c1"))
    kit.accept(kit.live_offer("c2"))

    result = kit.advance(30)

    assert not of_type(result.events, ev.WrapUpFinished)
    assert kit.state("c2") is S.ACTIVE


def test_without_wrap_up_ending_closes_at_once() -> None:
    kit = live_kit(m.TenantSettings(), "a1")
    kit.start("c2")

    kit.end("c1")

    assert kit.state("c1") is S.CLOSED
    assert kit.offered_to("c2") == ("a1",)


# --- offers, armed deadlines and stale timers -------------------------------------------------


def test_an_offer_arms_a_timer_at_its_deadline() -> None:
    kit = Kit()
    kit.queue(offer_timeout=45)
    kit.agent("a1")

    result = kit.start("c1")

    offer = kit.live_offer("c1")
    assert offer.deadline == kit.clock.now() + 45
    assert armed(result) == [(TimerKind.OFFER, offer.offer_id, offer.deadline)]


def test_waiting_arms_relaxation_and_max_wait_timers() -> None:
    kit = Kit(skills=["billing"])
    kit.queue(
        requirements=(m.SkillRequirement("billing", 5),),
        relaxation=(m.RelaxationStep(after_seconds=20, any_agent=True),),
        max_wait=90,
    )
    now = kit.clock.now()

    result = kit.start("c1")

    assert sorted(armed(result)) == sorted(
        [(TimerKind.STEP, "c1", now + 20), (TimerKind.MAX_WAIT, "c1", now + 90)]
    )


def test_an_expired_offer_goes_to_the_next_agent() -> None:
    kit = Kit()
    kit.queue(offer_timeout=30)
    kit.agent("a1")
    kit.agent("a2")
    kit.start("c1")
    first = kit.live_offer("c1")

    result = kit.advance(30)

    declined = of_type(result.events, ev.OfferDeclined)
    assert [(d.offer_id, d.reason, d.missed_by) for d in declined] == [
        (first.offer_id, m.DeclineReason.EXPIRED, first.agent_ids)
    ]
    assert kit.offered_to("c1") != first.agent_ids


def test_an_offer_accepted_before_its_deadline_fires_nothing() -> None:
    kit = Kit()
    kit.queue(offer_timeout=30)
    kit.agent("a1")
    kit.start("c1")
    kit.assign("c1")

    result = kit.advance(30)

    assert result.events == [] and result.effects == []
    assert kit.conv("c1").owner == "a1"


def test_a_relaxation_step_fires_nothing_once_the_conversation_is_offered() -> None:
    kit = Kit(skills=["billing"])
    kit.queue(
        requirements=(m.SkillRequirement("billing", 5),),
        relaxation=(m.RelaxationStep(after_seconds=20, level_drop=4),),
    )
    kit.start("c1")
    kit.agent("expert", skills={"billing": 5})
    kit.assign("c1")

    assert not kit.advance(20).events


# --- next_deadline ----------------------------------------------------------------------------


def test_next_deadline_is_none_without_timers() -> None:
    kit = Kit()
    kit.queue()

    assert kit.engine.next_deadline() is None


def test_next_deadline_is_the_earliest_armed_timer() -> None:
    kit = Kit()
    kit.queue(offer_timeout=30, max_wait=300)
    kit.agent("a1")
    now = kit.clock.now()

    kit.start("c1")

    assert kit.engine.next_deadline() == now + 30


def test_next_deadline_spans_tenants() -> None:
    kit = Kit()
    kit.queue(max_wait=300)
    kit.start("c1")
    kit.engine.execute(c.ConfigureTenant(tenant="other"))
    kit.engine.execute(
        c.ConfigureQueue(tenant="other", settings=m.QueueSettings("q", max_wait=100))
    )
    kit.engine.execute(
        c.StartConversation(
            tenant="other", conversation_id="x", channel="sms", customer_id="z", queue_id="q"
        )
    )

    assert kit.engine.next_deadline() == kit.clock.now() + 100


def test_ticking_before_the_next_deadline_fires_nothing() -> None:
    kit = Kit()
    kit.queue(max_wait=300)
    kit.start("c1")
    deadline = kit.engine.next_deadline()
    assert deadline is not None

    kit.clock.set(deadline - 1)
    assert kit.engine.tick().events == []
    kit.clock.set(deadline)
    assert kit.engine.tick().events != []
