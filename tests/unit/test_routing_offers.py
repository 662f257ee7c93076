"""Offers: strategies, capacity, accept as compare-and-set, reject, timeout, take, force."""

from __future__ import annotations

import pytest

from core.routing import CapacityExceeded, FailedPrecondition, PermissionDenied
from core.routing import commands as c
from core.routing import events as ev
from core.routing import model as m
from tests.unit.engine_kit import Kit, T, of_type

S = m.ConversationState


def test_a_conversation_is_offered_to_the_agent_idle_longest() -> None:
    kit = Kit()
    kit.queue()
    kit.agent("first")
    kit.clock.advance(10)
    kit.agent("second")

    kit.start("c1")

    assert kit.offered_to("c1") == ("first",)
    assert kit.live_offer("c1").decision.reason.startswith("longest idle")


def test_longest_idle_counts_from_the_last_assignment() -> None:
    kit = Kit()
    kit.queue()
    kit.agent("first", capacity=2)
    kit.agent("second", capacity=2)
    kit.clock.advance(5)
    kit.start("c1")
    kit.assign("c1")  # "first" was just assigned, so "second" is now idle longer

    kit.start("c2")

    assert kit.offered_to("c2") == ("second",)


def test_least_busy_prefers_the_largest_share_of_free_capacity() -> None:
    kit = Kit()
    kit.queue(strategy=m.Strategy.LEAST_BUSY)
    kit.agent("big", capacity=4)
    kit.agent("small", capacity=2)

    order = []
    for n in range(4):
        kit.clock.advance(1)
        kit.start(f"c{n}")
        order.append(kit.assign(f"c{n}"))

    # shares after each: big 1/4; small 1/2; big 2/4; tie at 1/2 -> the one idle longer
    assert order == ["big", "small", "big", "small"]


def test_round_robin_rotates_through_agents() -> None:
    kit = Kit()
    kit.queue(strategy=m.Strategy.ROUND_ROBIN)
    for name in ("a", "b", "c"):
        kit.agent(name, capacity=5)

    order = []
    for n in range(6):
        kit.start(f"c{n}")
        order.append(kit.assign(f"c{n}"))

    assert order == ["a", "b", "c", "a", "b", "c"]


def test_broadcast_offers_everyone_and_the_first_accept_wins() -> None:
    kit = Kit()
    kit.queue(strategy=m.Strategy.BROADCAST)
    kit.agent("a")
    kit.agent("b")
    kit.start("c1")
    offer = kit.live_offer("c1")
    assert offer.broadcast and set(offer.agent_ids) == {"a", "b"}

    kit.accept(offer, "b")

    assert kit.conv("c1").owner == "b"
    with pytest.raises(FailedPrecondition):
        kit.run(c.AcceptOffer(tenant=T, offer_id=offer.offer_id, agent_id="a"))
    assert kit.router.agents["a"].offers == set()


def test_broadcast_offers_do_not_reserve_capacity() -> None:
    kit = Kit()
    kit.queue(strategy=m.Strategy.BROADCAST)
    kit.agent("a")
    kit.start("c1")
    kit.start("c2")

    assert kit.state("c1") is S.OFFERED and kit.state("c2") is S.OFFERED
    kit.accept(kit.live_offer("c1"))
    with pytest.raises(CapacityExceeded):
        kit.accept(kit.live_offer("c2"))


def test_capacity_is_one_weighted_budget_across_channels() -> None:
    kit = Kit()
    kit.queue()
    kit.agent("a", capacity=2)
    for n, channel in enumerate(["email", "email", "webchat"]):
        kit.start(f"c{n}", channel=channel)
        kit.assign(f"c{n}")

    assert kit.router.agents["a"].load == 2000  # 0.5 + 0.5 + 1
    kit.start("c3", channel="email")
    assert kit.state("c3") is S.QUEUED


def test_a_voice_conversation_takes_the_whole_budget_and_needs_an_idle_agent() -> None:
    kit = Kit()
    kit.queue()
    kit.agent("a", capacity=3)
    kit.start("chat")
    kit.assign("chat")

    kit.start("call", channel="voice")
    assert kit.state("call") is S.QUEUED

    kit.end("chat")
    kit.assign("call")
    assert kit.router.agents["a"].load == kit.router.agents["a"].capacity


def test_rejecting_offers_the_conversation_to_the_next_agent() -> None:
    kit = Kit()
    kit.queue()
    kit.agent("a")
    kit.agent("b")
    kit.start("c1")

    kit.run(c.RejectOffer(tenant=T, offer_id=kit.live_offer("c1").offer_id, agent_id="a"))

    assert kit.offered_to("c1") == ("b",)
    assert kit.router.agents["a"].load == 0


def test_an_offer_that_times_out_moves_on_and_counts_a_miss() -> None:
    kit = Kit()
    kit.queue(offer_timeout=20)
    kit.agent("a")
    kit.agent("b")
    kit.start("c1")

    result = kit.advance(20)

    declined = of_type(result.events, ev.OfferDeclined)[0]
    assert declined.reason is m.DeclineReason.EXPIRED and declined.missed_by == ("a",)
    assert kit.offered_to("c1") == ("b",)
    assert kit.router.agents["a"].missed_offers == 1


def test_consecutive_misses_set_the_agent_away() -> None:
    kit = Kit(m.TenantSettings(misses_before_away=2))
    kit.queue(offer_timeout=10)
    kit.agent("sleepy")
    kit.start("c1")
    kit.advance(10)
    kit.start("c2")

    result = kit.advance(10)

    changed = of_type(result.events, ev.AgentStatusChanged)
    assert [(e.status, e.reason) for e in changed] == [(m.AgentStatus.AWAY, "missed_offers")]
    assert not kit.router.offers


def test_accepting_an_expired_offer_is_refused_and_changes_nothing() -> None:
    kit = Kit()
    kit.queue(offer_timeout=10)
    kit.agent("a")
    kit.start("c1")
    offer = kit.live_offer("c1")
    kit.advance(10)

    with pytest.raises(FailedPrecondition, match="no longer live"):
        kit.accept(offer)
    assert kit.state("c1") is S.QUEUED


def test_only_the_recipient_may_answer_an_offer() -> None:
    kit = Kit()
    kit.queue()
    kit.agent("a")
    kit.agent("b", online=False)
    kit.start("c1")

    with pytest.raises(PermissionDenied):
        kit.accept(kit.live_offer("c1"), "b")


def test_a_customer_who_leaves_rescinds_the_offer_and_abandons() -> None:
    kit = Kit()
    kit.queue()
    kit.agent("a")
    kit.start("c1")

    result = kit.run(c.CustomerLeft(tenant=T, conversation_id="c1"))

    declined = of_type(result.events, ev.OfferDeclined)[0]
    assert declined.reason is m.DeclineReason.RESCINDED
    assert kit.state("c1") is S.ABANDONED
    assert kit.router.agents["a"].load == 0


def test_an_agent_stepping_away_has_pending_offers_rescinded_and_rerouted() -> None:
    kit = Kit()
    kit.queue()
    kit.agent("a")
    kit.agent("b", online=False)
    kit.start("c1")
    kit.status("b", m.AgentStatus.ONLINE)

    kit.status("a", m.AgentStatus.BREAK)

    assert kit.offered_to("c1") == ("b",)


def test_an_agent_can_take_a_waiting_conversation_from_the_queue() -> None:
    kit = Kit()
    kit.queue()
    kit.agent("a")
    kit.start("busy")
    kit.assign("busy")
    kit.agent("b", online=False)
    kit.start("c1")
    kit.status("b", m.AgentStatus.ONLINE)  # c1 is now offered to b
    kit.end("busy")  # a frees up, but c1 is already offered to b

    kit.run(c.TakeConversation(tenant=T, agent_id="a", conversation_id="c1"))

    assert kit.conv("c1").owner == "a"
    assert kit.router.agents["b"].load == 0, "b's offer was rescinded"


def test_taking_a_conversation_needs_room() -> None:
    kit = Kit()
    kit.queue()
    kit.agent("a")
    kit.start("c1")
    kit.assign("c1")
    kit.start("c2")

    with pytest.raises(CapacityExceeded):
        kit.run(c.TakeConversation(tenant=T, agent_id="a", conversation_id="c2"))


def test_taking_a_conversation_needs_the_skills_of_its_current_step() -> None:
    kit = Kit(skills=["vip"])
    kit.queue(requirements=(m.SkillRequirement("vip", 5),))
    kit.agent("novice", skills={"vip": 2})
    kit.start("c1")

    with pytest.raises(FailedPrecondition, match="vip>=5"):
        kit.run(c.TakeConversation(tenant=T, agent_id="novice", conversation_id="c1"))


def test_force_assign_beyond_capacity_needs_and_records_an_override() -> None:
    kit = Kit()
    kit.queue()
    kit.agent("a")
    kit.start("c1")
    kit.assign("c1")
    kit.start("c2")
    force = c.ForceAssign(tenant=T, supervisor_id="sup", conversation_id="c2", agent_id="a")

    with pytest.raises(CapacityExceeded):
        kit.run(force)
    result = kit.run(c.ForceAssign(**{**_fields(force), "override_capacity": True}))

    assigned = of_type(result.events, ev.ConversationAssigned)[0]
    assert (assigned.via, assigned.by, assigned.override_capacity) == ("force", "sup", True)
    agent = kit.router.agents["a"]
    assert (agent.load, agent.override, agent.capacity) == (2000, 1000, 1000)


def test_force_assign_within_capacity_is_not_an_override() -> None:
    kit = Kit()
    kit.queue()
    kit.agent("a", capacity=2)
    kit.agent("b")
    kit.start("c1")
    assert kit.offered_to("c1") == ("a",)

    result = kit.run(
        c.ForceAssign(tenant=T, supervisor_id="sup", conversation_id="c1", agent_id="b")
    )

    assert of_type(result.events, ev.ConversationAssigned)[0].override_capacity is False
    assert kit.conv("c1").owner == "b" and kit.router.agents["a"].load == 0


def test_freed_capacity_takes_the_highest_scoring_waiting_conversation() -> None:
    kit = Kit(m.TenantSettings(head_start_seconds=100))
    kit.queue()
    kit.agent("a")
    kit.start("c0")
    kit.assign("c0")
    kit.start("old")
    kit.advance(50)
    kit.start("urgent", priority=1)

    kit.end("c0")

    assert kit.offered_to("urgent") == ("a",)
    assert kit.state("old") is S.QUEUED


def test_every_offer_explains_its_decision() -> None:
    kit = Kit(skills=["billing"])
    kit.queue(requirements=(m.SkillRequirement("billing", 3),))
    kit.agent("full", skills={"billing": 9})
    kit.start("c0")
    kit.assign("c0")
    kit.agent("free", skills={"billing": 4})

    kit.start("c1")

    decision = kit.live_offer("c1").decision
    assert decision.filters == "billing>=3"
    assert decision.winners == ("free",)
    assert decision.strategy == "longest_idle"
    assert decision.candidates[0].verdict == "chosen"
    assert kit.conv("c1").decisions == [decision]


def _fields(command: c.Command) -> dict[str, object]:
    return {name: getattr(command, name) for name in command.__dataclass_fields__}
