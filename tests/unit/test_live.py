"""Live figures (``core.runtime.live``) read from an engine driven directly."""

from __future__ import annotations

import datetime as dt
import pickle

from core.routing import commands as c
from core.routing import events as ev
from core.routing import model as m
from core.routing.hours import HoursStatus
from core.runtime.live import AgentLive, QueueLive, TenantLive, tenant_live
from tests.unit.engine_kit import Kit, T, of_type

# ManualClock starts on Thursday 2026-01-01 00:00 UTC (weekday 3).
THURSDAY_MORNING = m.BusinessHours(
    weekly={3: (m.TimeRange(dt.time(0, 0), dt.time(12, 0)),)},
    breaks={3: (m.TimeRange(dt.time(1, 0), dt.time(2, 0)),)},
)


def live(kit: Kit) -> TenantLive:
    return tenant_live(kit.router, kit.clock.now())


def queue(kit: Kit, queue_id: str = "q") -> QueueLive:
    return next(q for q in live(kit).queues if q.queue_id == queue_id)


def agent(kit: Kit, agent_id: str) -> AgentLive:
    return next(a for a in live(kit).agents if a.agent_id == agent_id)


def test_a_quiet_tenant_has_its_queues_and_agents_with_nothing_going_on() -> None:
    kit = Kit()
    kit.queue("q")
    kit.queue("a")
    kit.agent("bob", online=False, capacity=2)
    kit.agent("ann", capacity=3)
    figures = live(kit)
    assert figures.tenant == T
    assert figures.at == kit.clock.now()
    assert figures.version == kit.router.version
    assert figures.queues == (
        QueueLive("a", 0, 0, 0.0, HoursStatus.OPEN),
        QueueLive("q", 0, 0, 0.0, HoursStatus.OPEN),
    )
    assert figures.agents == (
        AgentLive("ann", m.AgentStatus.ONLINE, None, 0, 3000, (), ()),
        AgentLive("bob", m.AgentStatus.OFFLINE, None, 0, 2000, (), ()),
    )
    assert all(q.open for q in figures.queues)
    assert TenantLive.empty(T, 5.0) == TenantLive(T, 5.0, 0, (), ())


def test_waiting_grows_and_the_longest_wait_is_the_oldest_arrival_not_the_head_of_the_line() -> (
    None
):
    kit = Kit()
    kit.queue("q")
    kit.start("c1")
    kit.advance(40)
    kit.start("c2", priority=5)  # ahead of c1 in the line, but it has waited less
    assert kit.router.position(kit.conv("c2"))[0] == 1
    kit.advance(20)
    figures = queue(kit)
    assert (figures.waiting, figures.offered) == (2, 0)
    assert figures.longest_wait == 60.0
    kit.advance(15)
    assert queue(kit).longest_wait == 75.0


def test_an_offer_moves_a_conversation_from_waiting_to_offered_and_loads_the_agent() -> None:
    kit = Kit()
    kit.queue("q")
    kit.agent("ann", online=False, capacity=2)
    kit.start("c1")
    kit.advance(10)
    kit.status("ann", m.AgentStatus.ONLINE)
    offer = kit.live_offer("c1")
    figures = queue(kit)
    assert (figures.waiting, figures.offered, figures.longest_wait) == (0, 1, 10.0)
    ann = agent(kit, "ann")
    assert (ann.load_milli, ann.load, ann.offers, ann.conversations) == (
        1000,
        1.0,
        (offer.offer_id,),
        (),
    )
    kit.accept(offer)
    figures = queue(kit)
    assert (figures.waiting, figures.offered, figures.longest_wait) == (0, 0, 0.0)
    ann = agent(kit, "ann")
    assert (ann.load_milli, ann.offers, ann.conversations) == (1000, (), ("c1",))
    kit.end("c1")
    assert agent(kit, "ann").load_milli == 0
    assert agent(kit, "ann").conversations == ()


def test_loads_are_exact_in_milli_units() -> None:
    weights = {"webchat": 1.0, "email": 0.5, "sms": 0.3}
    kit = Kit(m.TenantSettings(channel_weights=weights))
    kit.queue("q")
    kit.agent("ann", capacity=2)
    for i, channel in enumerate(("email", "sms", "sms", "sms")):
        kit.start(f"c{i}", channel=channel)
        kit.assign(f"c{i}")
    ann = agent(kit, "ann")
    assert ann.load_milli == 1400
    assert (ann.load, ann.capacity) == (1.4, 2.0)
    assert ann.conversations == ("c0", "c1", "c2", "c3")


def test_a_broadcast_offer_is_pending_for_every_recipient_and_loads_none_of_them() -> None:
    kit = Kit()
    kit.queue("q", strategy=m.Strategy.BROADCAST)
    kit.agent("ann")
    kit.agent("bob")
    kit.start("c1")
    offer = kit.live_offer("c1")
    assert len(offer.agent_ids) == 2
    for agent_id in ("ann", "bob"):
        figures = agent(kit, agent_id)
        assert (figures.offers, figures.load_milli) == ((offer.offer_id,), 0)
    assert queue(kit).offered == 1
    kit.accept(offer, "bob")
    assert agent(kit, "ann").offers == ()
    assert (agent(kit, "bob").load_milli, agent(kit, "bob").conversations) == (1000, ("c1",))


def test_counts_are_per_queue_when_queues_share_their_agents() -> None:
    kit = Kit()
    kit.queue("a")
    kit.queue("b")
    kit.agent("ann", online=False)
    kit.start("c1", queue_id="a")
    kit.advance(5)
    kit.start("c2", queue_id="b")
    kit.start("c3", queue_id="b")
    kit.advance(5)
    kit.status("ann", m.AgentStatus.ONLINE)  # takes the highest score: c1
    assert kit.offered_to("c1") == ("ann",)
    a, b = queue(kit, "a"), queue(kit, "b")
    assert (a.waiting, a.offered, a.longest_wait) == (0, 1, 10.0)
    assert (b.waiting, b.offered, b.longest_wait) == (2, 0, 5.0)


def test_custom_status_is_reported() -> None:
    kit = Kit(m.TenantSettings(custom_statuses=(m.CustomStatus("meeting", m.AgentStatus.AWAY),)))
    kit.agent("ann")
    kit.status("ann", m.AgentStatus.AWAY, "meeting")
    ann = agent(kit, "ann")
    assert (ann.status, ann.custom_status) == (m.AgentStatus.AWAY, "meeting")


def test_business_hours_open_break_and_closed() -> None:
    kit = Kit()
    kit.queue("q", hours=THURSDAY_MORNING)
    kit.queue("always")
    assert queue(kit).hours is HoursStatus.OPEN
    assert queue(kit).open
    kit.advance(3600)
    assert queue(kit).hours is HoursStatus.BREAK
    assert not queue(kit).open
    kit.advance(3600)
    assert queue(kit).hours is HoursStatus.OPEN
    kit.advance(10 * 3600)
    assert queue(kit).hours is HoursStatus.CLOSED
    assert not queue(kit).open
    assert queue(kit, "always").open


def test_hours_past_an_edge_the_engine_has_not_ticked_yet_are_computed_afresh() -> None:
    kit = Kit()
    kit.queue("q", hours=THURSDAY_MORNING)
    kit.clock.advance(3600)  # no tick: the engine still says open
    assert kit.router.queues["q"].hours_status is HoursStatus.OPEN
    assert queue(kit).hours is HoursStatus.BREAK


def test_conversations_held_by_a_break_are_waiting() -> None:
    kit = Kit()
    kit.queue("q", hours=THURSDAY_MORNING)
    kit.agent("ann")
    kit.advance(3600)
    kit.start("c1")
    assert kit.conv("c1").held
    kit.advance(600)
    figures = queue(kit)
    assert (figures.waiting, figures.offered, figures.longest_wait) == (1, 0, 600.0)
    assert figures.hours is HoursStatus.BREAK
    kit.advance(3000)  # the break ends: ann is offered c1
    assert kit.offered_to("c1") == ("ann",)
    figures = queue(kit)
    assert (figures.waiting, figures.offered, figures.hours) == (0, 1, HoursStatus.OPEN)


def test_an_overflow_keeps_its_age() -> None:
    kit = Kit()
    kit.queue("spill")
    kit.queue("q", max_wait=30.0, overflow_queue="spill")
    kit.start("c1")
    kit.advance(45)
    assert kit.conv("c1").queue_id == "spill"
    assert queue(kit, "q").waiting == 0
    assert (queue(kit, "spill").waiting, queue(kit, "spill").longest_wait) == (1, 45.0)


def test_a_conversation_that_leaves_stops_counting() -> None:
    kit = Kit()
    kit.queue("q")
    kit.start("c1")
    kit.advance(5)
    kit.run(c.CustomerLeft(tenant=T, conversation_id="c1"))
    assert (queue(kit).waiting, queue(kit).longest_wait) == (0, 0.0)


def test_figures_survive_pickling_and_a_replay_gives_the_same_figures() -> None:
    kit = Kit()
    kit.queue("q", hours=THURSDAY_MORNING)
    kit.agent("ann", capacity=2)
    kit.agent("bob", online=False)
    for i in range(3):
        kit.start(f"c{i}")
        kit.advance(7)
    kit.assign("c0")
    figures = live(kit)
    assert pickle.loads(pickle.dumps(figures)) == figures
    other = Kit()
    other.clock.set(kit.clock.now())
    other.engine.forget(T)
    other.engine.replay(kit.log)
    assert tenant_live(other.router, kit.clock.now()) == figures
    assert len(of_type(kit.log, ev.OfferMade)) == 2
