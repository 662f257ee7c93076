"""Queue behaviour: business hours, relaxation, overflow, stickiness, region rules, designation,
priority and cross-queue fairness, driven through the engine kit."""

from __future__ import annotations

import datetime as dt

import pytest

from core.routing import AlreadyExists, FailedPrecondition, Result
from core.routing import commands as c
from core.routing import events as ev
from core.routing import model as m
from core.routing.effects import ArmTimer
from core.routing.hours import HoursStatus
from core.routing.invariants import snapshot
from core.routing.timers import TimerKind
from tests.unit.engine_kit import Kit, T, of_type

S = m.ConversationState
Msg = m.SystemMessage
THURSDAY = 3  # the kit's clock starts on Thursday 2026-01-01 00:00Z


def messages(result: Result) -> list[ev.SystemMessageSent]:
    return [e for e in result.events if isinstance(e, ev.SystemMessageSent)]


def said(result: Result) -> list[Msg]:
    return [e.kind for e in messages(result)]


def text_of(result: Result, kind: Msg) -> str:
    return next(e.text for e in messages(result) if e.kind is kind)


def thursday_hours(open_: str = "09:00-17:00", break_: str | None = None) -> m.BusinessHours:
    def span(text: str) -> tuple[m.TimeRange, ...]:
        start, end = (dt.time.fromisoformat(t) for t in text.split("-"))
        return (m.TimeRange(start, end),)

    return m.BusinessHours(
        weekly={THURSDAY: span(open_)},
        breaks={THURSDAY: span(break_)} if break_ else {},
    )


def requirement(skill: str, level: int) -> tuple[m.SkillRequirement, ...]:
    return (m.SkillRequirement(skill, level),)


# --- business hours ---------------------------------------------------------------------------


def test_closed_queue_invites_a_message_and_closes_the_conversation() -> None:
    kit = Kit()
    kit.queue(hours=thursday_hours("09:00-17:00"))  # 00:00 now: closed
    kit.agent("a1")

    result = kit.start("c1")

    assert said(result) == [Msg.WELCOME, Msg.OUT_OF_HOURS, Msg.LEAVE_MESSAGE]
    assert kit.state("c1") is S.CLOSED
    assert kit.conv("c1").close_reason is m.CloseReason.LEFT_MESSAGE
    assert not of_type(result.events, ev.OfferMade)


def test_route_out_of_hours_queues_the_conversation_anyway() -> None:
    kit = Kit()
    kit.queue(hours=thursday_hours("09:00-17:00"), route_out_of_hours=True)

    result = kit.start("c1")

    assert Msg.OUT_OF_HOURS in said(result)
    assert Msg.LEAVE_MESSAGE not in said(result)
    assert kit.state("c1") is S.QUEUED
    kit.agent("a1")
    assert kit.offered_to("c1") == ("a1",)


def break_kit() -> Kit:
    """Noon on Thursday: queue q is on its 12:00-13:00 break, a1 is online, c1 is held."""
    kit = Kit()
    kit.advance(12 * 3600)
    kit.queue(hours=thursday_hours("09:00-17:00", break_="12:00-13:00"))
    kit.agent("a1")
    kit.start("c1")
    assert kit.conv("c1").held
    return kit


def test_a_conversation_arriving_during_a_break_is_held() -> None:
    kit = Kit()
    kit.advance(12 * 3600)
    kit.queue(hours=thursday_hours("09:00-17:00", break_="12:00-13:00"))
    kit.agent("a1")

    result = kit.start("c1")

    assert said(result) == [Msg.WELCOME, Msg.BREAK_TIME]
    assert kit.state("c1") is S.QUEUED
    assert kit.conv("c1").held
    assert not of_type(result.events, ev.OfferMade)
    assert kit.router.position(kit.conv("c1"))[0] == 1


def test_a_held_conversation_is_offered_when_the_break_ends() -> None:
    kit = break_kit()

    assert kit.engine.next_deadline() == kit.clock.now() + 3600
    assert not kit.advance(3599).events
    result = kit.advance(1)

    changed = of_type(result.events, ev.QueueHoursChanged)
    assert [(e.queue_id, e.status) for e in changed] == [("q", HoursStatus.OPEN)]
    assert kit.offered_to("c1") == ("a1",)
    assert not kit.conv("c1").held


def test_a_held_conversation_is_not_offered_to_an_agent_who_signs_in_during_the_break() -> None:
    kit = break_kit()

    kit.agent("a2")

    assert kit.state("c1") is S.QUEUED


def test_time_held_during_a_break_counts_towards_relaxation() -> None:
    kit = Kit(skills=["billing"])
    kit.advance(12 * 3600)
    kit.queue(
        hours=thursday_hours("09:00-17:00", break_="12:00-13:00"),
        requirements=requirement("billing", 5),
        relaxation=(m.RelaxationStep(after_seconds=600, level_drop=4),),
    )
    kit.agent("junior", skills={"billing": 1})
    kit.start("c1")

    kit.advance(3600)

    offer = kit.live_offer("c1")
    assert (offer.agent_ids, offer.decision.step) == (("junior",), 1)


@pytest.mark.parametrize("how", ["take", "force_assign"])
def test_an_agent_can_take_a_conversation_held_by_a_break(how: str) -> None:
    """Holding defers automatic routing only; a manual take or a supervisor's assignment of
    a QUEUED conversation is allowed by TakeConversation / ForceAssign."""
    kit = break_kit()
    if how == "take":
        command: c.Command = c.TakeConversation(tenant=T, agent_id="a1", conversation_id="c1")
    else:
        command = c.ForceAssign(tenant=T, supervisor_id="sup", agent_id="a1", conversation_id="c1")

    kit.run(command)

    assert (kit.state("c1"), kit.conv("c1").owner) == (S.ACTIVE, "a1")
    assert not kit.conv("c1").held


def test_removing_the_hours_during_a_break_does_not_strand_held_conversations() -> None:
    kit = break_kit()

    kit.queue(hours=None)

    assert kit.offered_to("c1") == ("a1",)


def test_the_hours_timer_is_armed_for_the_next_edge() -> None:
    kit = Kit()
    kit.advance(10 * 3600)

    result = kit.run(
        c.ConfigureQueue(tenant=T, settings=m.QueueSettings("q", hours=thursday_hours()))
    )

    arm = [e for e in result.effects if isinstance(e, ArmTimer)]
    assert [(a.kind, a.subject, a.deadline) for a in arm] == [
        (TimerKind.HOURS, "q", kit.clock.now() + 7 * 3600)
    ]


# --- relaxation -------------------------------------------------------------------------------


def relaxing_kit(*steps: m.RelaxationStep) -> Kit:
    kit = Kit(skills=["billing"])
    kit.queue(requirements=requirement("billing", 5), relaxation=steps)
    return kit


def test_before_relaxing_only_agents_at_the_required_level_qualify() -> None:
    kit = relaxing_kit(m.RelaxationStep(after_seconds=30, level_drop=2))
    kit.agent("junior", skills={"billing": 3})

    kit.start("c1")
    kit.advance(29)

    assert kit.state("c1") is S.QUEUED


def test_after_the_first_step_a_lower_level_agent_qualifies() -> None:
    kit = relaxing_kit(m.RelaxationStep(after_seconds=30, level_drop=2))
    kit.agent("junior", skills={"billing": 3})
    kit.start("c1")

    result = kit.advance(30)

    assert of_type(result.events, ev.ConversationStepped)[0].step == 1
    offer = kit.live_offer("c1")
    assert offer.agent_ids == ("junior",)
    assert (offer.decision.step, offer.decision.filters) == (1, "billing>=3")


def test_a_level_drop_never_goes_below_level_one() -> None:
    kit = relaxing_kit(m.RelaxationStep(after_seconds=30, level_drop=9))
    kit.agent("novice", skills={"billing": 1})
    kit.start("c1")

    kit.advance(30)

    assert kit.live_offer("c1").decision.filters == "billing>=1"


def test_the_any_agent_step_lets_any_online_agent_qualify() -> None:
    kit = relaxing_kit(
        m.RelaxationStep(after_seconds=30, level_drop=2),
        m.RelaxationStep(after_seconds=60, any_agent=True),
    )
    kit.agent("generalist")  # no skills at all
    kit.start("c1")

    kit.advance(30)
    assert kit.state("c1") is S.QUEUED
    kit.advance(30)

    offer = kit.live_offer("c1")
    assert offer.agent_ids == ("generalist",)
    assert (offer.decision.step, offer.decision.filters) == (2, "any agent")


def test_the_first_step_decision_names_the_queue_requirements() -> None:
    kit = relaxing_kit(m.RelaxationStep(after_seconds=30, level_drop=2))
    kit.agent("expert", skills={"billing": 7})

    kit.start("c1")

    offer = kit.live_offer("c1")
    assert (offer.agent_ids, offer.decision.step, offer.decision.filters) == (
        ("expert",),
        0,
        "billing>=5",
    )


# --- max wait and overflow --------------------------------------------------------------------


def overflow_kit() -> Kit:
    kit = Kit(skills=["vip"])
    kit.queue("backup")
    kit.queue("q", requirements=requirement("vip", 1), max_wait=60, overflow_queue="backup")
    return kit


def test_max_wait_moves_the_conversation_to_the_overflow_queue() -> None:
    kit = overflow_kit()
    kit.start("c1")
    started = kit.clock.now()

    result = kit.advance(60)

    queued = of_type(result.events, ev.ConversationQueued)
    assert [(e.queue_id, e.reason, e.enqueued_at) for e in queued] == [
        ("backup", m.QueueReason.OVERFLOW, started)
    ]
    assert kit.conv("c1").queue_id == "backup"


def test_an_overflowed_conversation_keeps_its_age_against_newer_arrivals() -> None:
    kit = overflow_kit()
    kit.start("c1")  # waits in q from t0
    kit.advance(30)
    kit.start("c2", queue_id="backup")  # waits in backup from t0 + 30
    kit.advance(30)  # c1 overflows into backup at t0 + 60

    kit.agent("a1")  # serves backup only

    assert kit.offered_to("c1") == ("a1",)
    assert kit.state("c2") is S.QUEUED


def test_an_overflowed_conversation_is_offered_to_the_overflow_queue_agents() -> None:
    kit = overflow_kit()
    kit.agent("plain")  # cannot serve q (no vip skill)
    kit.start("c1")
    assert kit.state("c1") is S.QUEUED

    kit.advance(60)

    assert kit.offered_to("c1") == ("plain",)


def test_an_overflowed_conversation_takes_the_overflow_queue_priority_not_both() -> None:
    """QueueSettings.priority is "added to every conversation's own priority in this queue":
    a priority-0 conversation overflowing from a priority-2 queue into a priority-0 queue
    should wait there with priority 0, not 2."""
    kit = Kit()
    kit.queue("backup")
    kit.queue("q", priority=2, max_wait=60, overflow_queue="backup")
    kit.start("c1", priority=0)
    assert kit.router.score(kit.conv("c1")) == 2 * 60  # the default head start

    kit.advance(60)

    assert kit.conv("c1").queue_id == "backup"
    assert kit.router.score(kit.conv("c1")) == 60  # its wait so far, and no queue priority


def test_max_wait_without_overflow_invites_a_message() -> None:
    kit = Kit(skills=["vip"])
    kit.queue(requirements=requirement("vip", 1), max_wait=60)
    kit.start("c1")

    result = kit.advance(60)

    assert said(result) == [Msg.LEAVE_MESSAGE]
    assert kit.state("c1") is S.CLOSED
    assert kit.conv("c1").close_reason is m.CloseReason.LEFT_MESSAGE


def test_max_wait_rescinds_a_pending_offer_before_overflowing() -> None:
    kit = Kit()
    kit.agent("slow")
    kit.queue("backup")
    kit.queue("q", max_wait=20, offer_timeout=30, overflow_queue="backup")
    kit.start("c1")
    first = kit.live_offer("c1")

    result = kit.advance(20)

    declined = of_type(result.events, ev.OfferDeclined)
    assert [(d.offer_id, d.reason) for d in declined] == [
        (first.offer_id, m.DeclineReason.RESCINDED)
    ]
    assert kit.conv("c1").queue_id == "backup"


# --- sticky routing ---------------------------------------------------------------------------


def sticky_kit(window: float = 3600, timeout: float = 30) -> Kit:
    kit = Kit()
    kit.queue(sticky_window=window, sticky_timeout=timeout)
    kit.agent("a1")
    kit.agent("a2")
    kit.advance(10)
    kit.start("c1", customer_id="alice")
    assert kit.assign("c1") == "a1"  # a1 now idle since t0 + 10, a2 since t0
    kit.end("c1")
    return kit


def test_the_customers_last_agent_is_preferred_over_a_longer_idle_agent() -> None:
    kit = sticky_kit()
    kit.advance(60)

    kit.start("c2", customer_id="alice")

    offer = kit.live_offer("c2")
    assert offer.agent_ids == ("a1",)
    assert offer.decision.filters == "agent in a1"


def test_other_customers_go_to_the_longest_idle_agent() -> None:
    kit = sticky_kit()

    kit.start("c2", customer_id="bob")

    assert kit.offered_to("c2") == ("a2",)


def test_sticky_routing_waits_for_the_last_agent_until_the_sticky_timeout() -> None:
    kit = sticky_kit(timeout=30)
    kit.status("a1", m.AgentStatus.AWAY)
    kit.start("c2", customer_id="alice")

    kit.advance(29)
    assert kit.state("c2") is S.QUEUED
    kit.advance(1)

    offer = kit.live_offer("c2")
    assert offer.agent_ids == ("a2",)
    assert offer.decision.step == 1


def test_no_stickiness_once_the_window_has_passed() -> None:
    kit = sticky_kit(window=600)
    kit.advance(601)

    kit.start("c2", customer_id="alice")

    offer = kit.live_offer("c2")
    assert offer.agent_ids == ("a2",)
    assert offer.decision.filters == "any agent"


def test_no_stickiness_when_the_queue_has_no_window() -> None:
    kit = Kit()
    kit.queue()
    kit.agent("a1")
    kit.agent("a2")
    kit.advance(10)
    kit.start("c1", customer_id="alice")
    assert kit.assign("c1") == "a1"
    kit.end("c1")

    kit.start("c2", customer_id="alice")

    assert kit.offered_to("c2") == ("a2",)


# --- region rules and default queue -----------------------------------------------------------


def region_kit() -> Kit:
    kit = Kit(m.TenantSettings(region_queues={"HK": "hk"}, default_queue="q"))
    kit.queue("q")
    kit.queue("hk")
    return kit


def test_a_region_rule_picks_the_queue_when_none_is_given() -> None:
    kit = region_kit()

    kit.start("c1", queue_id=None, region="HK")

    assert kit.conv("c1").queue_id == "hk"


def test_the_default_queue_takes_regions_without_a_rule() -> None:
    kit = region_kit()

    kit.start("c1", queue_id=None, region="UK")

    assert kit.conv("c1").queue_id == "q"


def test_an_explicit_queue_wins_over_the_region_rule() -> None:
    kit = region_kit()

    kit.start("c1", queue_id="q", region="HK")

    assert kit.conv("c1").queue_id == "q"


def test_no_queue_at_all_is_refused_and_stores_nothing() -> None:
    kit = Kit()
    kit.queue("q")
    logged = len(kit.log)

    with pytest.raises(FailedPrecondition):
        kit.start("c1", queue_id=None, region="HK")

    assert "c1" not in kit.router.conversations
    assert len(kit.log) == logged


# --- designated agents and departments --------------------------------------------------------


def test_only_designated_agents_are_offered_the_queue() -> None:
    kit = Kit()
    kit.agent("a1")
    kit.agent("a2")
    kit.queue(designated_agents=frozenset({"a2"}))

    kit.start("c1")

    offer = kit.live_offer("c1")
    assert offer.agent_ids == ("a2",)
    assert offer.decision.filters == "agent in a2"


def test_only_members_of_designated_departments_are_offered_the_queue() -> None:
    kit = Kit()
    kit.run(c.DefineDepartment(tenant=T, department="sales"))
    kit.agent("a1")
    kit.agent("a2", departments=frozenset({"sales"}))
    kit.queue(designated_departments=frozenset({"sales"}))

    kit.start("c1")

    offer = kit.live_offer("c1")
    assert offer.agent_ids == ("a2",)
    assert offer.decision.filters == "department in sales"


def test_a_designated_queue_waits_rather_than_using_other_agents() -> None:
    kit = Kit()
    kit.agent("a1")
    kit.agent("a2", online=False)
    kit.queue(designated_agents=frozenset({"a2"}))

    kit.start("c1")
    assert kit.state("c1") is S.QUEUED
    kit.status("a2", m.AgentStatus.ONLINE)

    assert kit.offered_to("c1") == ("a2",)


# --- priority and position --------------------------------------------------------------------


def test_position_and_estimated_wait_of_waiting_conversations() -> None:
    kit = Kit(m.TenantSettings(assumed_handle_seconds=120))
    kit.queue()
    kit.start("c1")
    kit.start("c2")

    assert kit.router.position(kit.conv("c1")) == (1, 120.0)
    assert kit.router.position(kit.conv("c2")) == (2, 240.0)


def test_the_waiting_message_carries_the_position_and_wait() -> None:
    kit = Kit(m.TenantSettings(assumed_handle_seconds=180))
    kit.queue()
    kit.start("c1")

    result = kit.start("c2")

    assert text_of(result, Msg.WAITING) == (
        "All our agents are busy. You are number 2 in line; the estimated wait is 6 min."
    )


def test_a_higher_priority_conversation_goes_ahead_of_an_older_normal_one() -> None:
    kit = Kit(m.TenantSettings(head_start_seconds=60))
    kit.queue()
    kit.start("normal")
    kit.advance(30)

    result = kit.start("urgent", priority=1)

    assert "number 1 in line" in text_of(result, Msg.WAITING)
    assert kit.router.position(kit.conv("normal"))[0] == 2
    kit.agent("a1")
    assert kit.offered_to("urgent") == ("a1",)


def test_priority_is_a_head_start_that_long_waits_overtake() -> None:
    """Each point of priority is worth head_start_seconds of waiting, no more."""
    kit = Kit(m.TenantSettings(head_start_seconds=60))
    kit.queue()
    kit.start("normal")
    kit.advance(90)

    kit.start("urgent", priority=1)

    assert kit.router.position(kit.conv("normal"))[0] == 1
    kit.agent("a1")
    assert kit.offered_to("normal") == ("a1",)


def test_the_queue_priority_adds_to_the_conversation_priority() -> None:
    kit = Kit(m.TenantSettings(head_start_seconds=60))
    kit.queue("slow")
    kit.queue("fast", priority=2)
    kit.start("old", queue_id="slow")
    kit.advance(60)

    kit.start("new", queue_id="fast")

    assert kit.router.score(kit.conv("new")) == 2 * 60 > kit.router.score(kit.conv("old"))
    kit.agent("a1")
    assert kit.offered_to("new") == ("a1",)


# --- cross-queue fairness ---------------------------------------------------------------------


def two_queue_kit() -> Kit:
    """One agent serving queues qa and qb, busy with c0."""
    kit = Kit(m.TenantSettings(head_start_seconds=60), skills=["a", "b"])
    kit.queue("qa", requirements=requirement("a", 1))
    kit.queue("qb", requirements=requirement("b", 1))
    kit.agent("both", skills={"a": 1, "b": 1})
    kit.start("c0", queue_id="qa")
    kit.assign("c0")
    return kit


def test_freed_capacity_takes_the_oldest_conversation_across_queues() -> None:
    kit = two_queue_kit()
    kit.start("b-old", queue_id="qb")
    kit.advance(10)
    kit.start("a-new", queue_id="qa")

    kit.end("c0")

    offer = kit.live_offer("b-old")
    assert offer.agent_ids == ("both",)
    assert kit.state("a-new") is S.QUEUED


def test_freed_capacity_takes_the_highest_score_not_the_earliest_arrival() -> None:
    kit = two_queue_kit()
    kit.start("a-old", queue_id="qa")
    kit.advance(10)
    kit.start("b-urgent", queue_id="qb", priority=1)  # 60s head start beats 10s of waiting

    kit.end("c0")

    assert kit.offered_to("b-urgent") == ("both",)
    assert kit.state("a-old") is S.QUEUED


# --- one open conversation per customer and channel --------------------------------------------


def test_a_customer_has_one_open_conversation_per_channel() -> None:
    kit = Kit()
    kit.queue()
    kit.agent("a1")
    kit.start("c1", customer_id="kim", channel="whatsapp")
    before = snapshot(kit.router)

    with pytest.raises(AlreadyExists) as refused:
        kit.start("c2", customer_id="kim", channel="whatsapp")

    assert refused.value.details == {"open_conversation": "c1"}
    assert snapshot(kit.router) == before
    kit.start("c3", customer_id="kim", channel="line")  # another channel: another conversation
    kit.assign("c1")
    kit.end("c1")
    kit.start("c2", customer_id="kim", channel="whatsapp")  # the first is over
    with pytest.raises(AlreadyExists):
        kit.run(c.ReopenConversation(tenant=T, conversation_id="c1"))


# --- removing skills, departments and queues ---------------------------------------------------


def test_what_is_in_use_cannot_be_removed_and_refusals_change_nothing() -> None:
    kit = Kit(skills=["billing"])
    kit.run(c.DefineDepartment(tenant=T, department="sales"))
    kit.queue(requirements=(m.SkillRequirement("billing", 1),))
    kit.agent("a1", skills={"billing": 3}, departments=frozenset({"sales"}))
    kit.start("c1")
    before = snapshot(kit.router)

    for command in (
        c.RemoveSkill(tenant=T, skill="billing"),
        c.RemoveDepartment(tenant=T, department="sales"),
        c.RemoveQueue(tenant=T, queue_id="q"),
    ):
        with pytest.raises(FailedPrecondition):
            kit.run(command)
    assert snapshot(kit.router) == before

    kit.assign("c1")
    kit.end("c1")
    kit.status("a1", m.AgentStatus.OFFLINE)
    kit.run(c.RemoveAgent(tenant=T, agent_id="a1"))
    kit.run(c.RemoveQueue(tenant=T, queue_id="q"))
    kit.run(c.RemoveSkill(tenant=T, skill="billing"))
    kit.run(c.RemoveDepartment(tenant=T, department="sales"))
    assert not kit.router.queues and not kit.router.skills and not kit.router.departments
    assert not kit.router.groups  # the queue's eligibility groups went with it
