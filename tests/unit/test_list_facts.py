"""``core.api.list_facts``: what the events make of a conversation is what the engine holds
(every field a list's membership or summary reads, after every command of random traffic),
and the lists follow the viewer's visibility and the departments filter."""

from __future__ import annotations

import contextlib
import random
from dataclasses import replace

import pytest

from core.api.list_facts import (
    Directory,
    Facts,
    ListName,
    fold,
    lists_of,
    may_change_lists,
    viewer_of,
)
from core.routing import Engine, ManualClock, RoutingError
from core.routing import commands as c
from core.routing import events as ev
from core.routing import model as m
from core.routing.router import Router

T = "t"
AGENTS = {"a0": {"d1"}, "a1": {"d1"}, "a2": {"d2"}, "a3": set()}
QUEUES = (
    m.QueueSettings(
        queue_id="q0", designated_departments=frozenset({"d1"}), offer_timeout=10, max_wait=60
    ),
    m.QueueSettings(queue_id="q1", designated_agents=frozenset({"a2", "a3"}), offer_timeout=10),
    m.QueueSettings(queue_id="q2", offer_timeout=10),
)


class Traffic:
    """Random commands through the engine; the folds of what it emits, kept beside it."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.clock = ManualClock()
        self.engine = Engine(self.clock)
        self.folds: dict[str, Facts | None] = {}
        self.started = 0
        self.run(
            c.ConfigureTenant(
                tenant=T,
                settings=m.TenantSettings(
                    wrap_up_seconds=5.0, closed_retention_seconds=120.0, misses_before_away=0
                ),
            )
        )
        for department in ("d1", "d2"):
            self.run(c.DefineDepartment(tenant=T, department=department))
        for agent_id, departments in AGENTS.items():
            profile = m.AgentProfile(
                agent_id=agent_id, capacity=2, departments=frozenset(departments)
            )
            self.run(c.ConfigureAgent(tenant=T, profile=profile))
        for queue in QUEUES:
            self.run(c.ConfigureQueue(tenant=T, settings=queue))

    @property
    def router(self) -> Router:
        return self.engine.router(T)

    def run(self, command: c.Command) -> None:
        with contextlib.suppress(RoutingError):
            self.absorb(self.engine.execute(command).events)

    def absorb(self, events: list[ev.Event]) -> None:
        for event in events:
            conversation_id = getattr(event, "conversation_id", None)
            if conversation_id is not None and may_change_lists(event):
                self.folds[conversation_id] = fold(self.folds.get(conversation_id), event)

    def pick(self, values: list[str]) -> str | None:
        return self.rng.choice(values) if values else None

    def step(self) -> None:
        r, rng = self.router, self.rng
        conversations = list(r.conversations)
        conversation = self.pick(conversations)
        agent = rng.choice(list(AGENTS))
        roll = rng.random()
        if roll < 0.12 or conversation is None:
            self.started += 1
            self.run(
                c.StartConversation(
                    tenant=T,
                    conversation_id=f"c{self.started}",
                    channel="webchat",
                    customer_id=f"cu{self.started}",
                    customer=m.CustomerCard(external_id=f"x{self.started}", name="Kim"),
                    queue_id=rng.choice([None, "q0", "q1", "q2"]),
                    with_bot=rng.random() < 0.5,
                    first_message=m.MessageBody(text="hello"),
                )
            )
            if rng.random() < 0.7:
                queue = rng.choice(["q0", "q1", "q2"])
                self.run(
                    c.RequestAgent(tenant=T, conversation_id=f"c{self.started}", queue_id=queue)
                )
        elif roll < 0.2:
            status = rng.choice([m.AgentStatus.ONLINE, m.AgentStatus.ONLINE, m.AgentStatus.AWAY])
            self.run(c.SetAgentStatus(tenant=T, agent_id=agent, status=status))
        elif roll < 0.3 and r.offers:
            offer = r.offers[rng.choice(list(r.offers))]
            who = rng.choice(offer.agent_ids)
            if rng.random() < 0.7:
                self.run(c.AcceptOffer(tenant=T, offer_id=offer.offer_id, agent_id=who))
            else:
                self.run(c.RejectOffer(tenant=T, offer_id=offer.offer_id, agent_id=who))
        elif roll < 0.36:
            self.run(c.TakeConversation(tenant=T, agent_id=agent, conversation_id=conversation))
        elif roll < 0.44:
            owner = r.conversations[conversation].owner or agent
            self.run(c.EndConversation(tenant=T, agent_id=owner, conversation_id=conversation))
        elif roll < 0.48:
            owner = r.conversations[conversation].owner or agent
            self.run(c.FinishWrapUp(tenant=T, agent_id=owner, conversation_id=conversation))
        elif roll < 0.56:
            owner = r.conversations[conversation].owner or agent
            target, target_id = rng.choice(
                [
                    (m.TransferTarget.AGENT, rng.choice(list(AGENTS))),
                    (m.TransferTarget.QUEUE, rng.choice(["q0", "q1", "q2"])),
                    (m.TransferTarget.DEPARTMENT, rng.choice(["d1", "d2"])),
                ]
            )
            self.run(
                c.RequestTransfer(
                    tenant=T,
                    agent_id=owner,
                    conversation_id=conversation,
                    target=target,
                    target_id=target_id,
                )
            )
        elif roll < 0.6 and r.transfers:
            transfer_id = rng.choice(list(r.transfers))
            _, record = r.transfers[transfer_id]
            self.run(
                c.AnswerTransfer(
                    tenant=T,
                    agent_id=record.target_id,
                    transfer_id=transfer_id,
                    accept=rng.random() < 0.7,
                )
            )
        elif roll < 0.65:
            self.run(c.CustomerLeft(tenant=T, conversation_id=conversation))
        elif roll < 0.7:
            owner = r.conversations[conversation].owner or agent
            mode = rng.choice([m.Mode.AUTO, m.Mode.LIVE, m.Mode.END])
            self.run(c.SetMode(tenant=T, agent_id=owner, conversation_id=conversation, mode=mode))
        elif roll < 0.74:
            tags = frozenset(rng.sample(["vip", "late", "refund"], 2))
            self.run(c.TagConversation(tenant=T, conversation_id=conversation, add=tags))
        elif roll < 0.8:
            owner = r.conversations[conversation].owner or agent
            self.run(
                c.RecordMessage(
                    tenant=T,
                    conversation_id=conversation,
                    sender=m.Sender.AGENT,
                    agent_id=owner,
                    message=m.MessageBody(text="hi"),
                )
            )
        elif roll < 0.84:
            self.run(
                c.OpenForAgent(
                    tenant=T,
                    conversation_id=conversation,
                    agent_id=agent,
                    by=agent,
                    customer=m.CustomerCard(),
                )
            )
        elif roll < 0.87:
            self.run(
                c.ForceAssign(
                    tenant=T, supervisor_id="boss", conversation_id=conversation, agent_id=agent
                )
            )
        else:
            self.clock.advance(rng.choice([1.0, 4.0, 11.0, 30.0, 61.0]))
            self.absorb(self.engine.tick().events)


def _engine_facts(router: Router, conversation_id: str) -> dict[str, object]:
    conv = router.conversations[conversation_id]
    offer = router.offers.get(conv.offer) if conv.offer else None
    last = conv.transfers[-1] if conv.transfers else None
    return {
        "state": conv.state,
        "queue_id": conv.queue_id,
        "owner": conv.owner,
        "last_agent": conv.last_agent,
        "offered_to": offer.agent_ids if offer is not None else (),
        "outcome": conv.outcome,
        "close_reason": conv.close_reason,
        "tags": conv.tags,
        "priority": conv.priority,
        "created_at": conv.created_at,
        "first_queued_at": conv.first_queued_at,
        "assigned_at": conv.assigned_at,
        "first_response_at": conv.first_response_at,
        "ended_at": conv.ended_at,
        "closed_at": conv.closed_at,
        "transfer": (last.target.value, last.target_id) if last is not None else None,
    }


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_the_folds_of_the_events_are_what_the_engine_holds(seed: int) -> None:
    traffic = Traffic(seed)
    kinds: set[m.ConversationState] = set()
    for _ in range(1_500):
        traffic.step()
        router = traffic.router
        for conversation_id in router.conversations:
            facts = traffic.folds[conversation_id]
            assert facts is not None
            expected = _engine_facts(router, conversation_id)
            got = {name: getattr(facts, name) for name in expected}
            assert got == expected, conversation_id
            kinds.add(facts.state)
    assert kinds == set(m.ConversationState)  # the traffic reached every state


def _facts(**changes: object) -> Facts:
    base = Facts(
        conversation_id="c",
        channel="webchat",
        customer_id="cu",
        customer=m.CustomerCard(),
        region="",
        language="en",
        priority=0,
        tags=frozenset(),
        state=m.ConversationState.QUEUED,
        queue_id="q2",
        created_at=100.0,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def _directory(team_reads: bool = False) -> Directory:
    return Directory(
        agents={a: m.AgentProfile(agent_id=a, departments=frozenset(d)) for a, d in AGENTS.items()},
        queues={q.queue_id: q for q in QUEUES},
        team_reads=team_reads,
    )


def test_an_agent_sees_what_the_policy_lets_them_read() -> None:
    a3 = viewer_of(_directory(), "a3", (), 0.0)
    assert a3.queues == {"q1", "q2"}
    waiting_q1 = _facts(queue_id="q1")
    assert lists_of(waiting_q1, a3, pinned=False) == {ListName.WAITING}
    assert lists_of(_facts(queue_id="q0"), a3, pinned=True) == frozenset()
    offered = _facts(queue_id="q0", state=m.ConversationState.OFFERED, offered_to=("a3",))
    assert lists_of(offered, a3, pinned=False) == {ListName.WAITING}
    mine = _facts(state=m.ConversationState.ACTIVE, owner="a3", last_agent="a3", queue_id="q0")
    assert lists_of(mine, a3, pinned=True) == {ListName.ACTIVE, ListName.MINE, ListName.PINNED}
    served_by_other = _facts(
        state=m.ConversationState.ACTIVE, owner="a2", last_agent="a2", queue_id="q1"
    )
    assert lists_of(served_by_other, a3, pinned=False) == frozenset()


def test_team_reads_show_a_colleagues_conversations_in_the_team_list() -> None:
    theirs = _facts(state=m.ConversationState.ACTIVE, owner="a1", last_agent="a1", queue_id="q1")
    off = viewer_of(_directory(team_reads=False), "a0", (), 0.0)
    on = viewer_of(_directory(team_reads=True), "a0", (), 0.0)
    assert on.team == {"a1"}
    assert lists_of(theirs, off, pinned=False) == frozenset()
    assert lists_of(theirs, on, pinned=False) == {ListName.ACTIVE, ListName.TEAM}
    other_department = replace(theirs, owner="a2", last_agent="a2")
    assert lists_of(other_department, on, pinned=False) == frozenset()
    closed = replace(
        theirs, state=m.ConversationState.CLOSED, owner=None, closed_at=500.0
    )  # served last by a1: still readable, in no team list
    assert lists_of(closed, on, pinned=False) == {ListName.CLOSED_TODAY}


def test_the_departments_filter_keeps_owner_queue_and_transfer() -> None:
    d1 = viewer_of(_directory(), None, ("d1",), 0.0)
    assert lists_of(_facts(queue_id="q0"), d1, pinned=False) == {ListName.WAITING}
    owned = _facts(state=m.ConversationState.ACTIVE, owner="a1", queue_id="q2")
    assert lists_of(owned, d1, pinned=False) == {ListName.ACTIVE}
    moving = _facts(queue_id="q2", transfer=("department", "d1"))
    assert lists_of(moving, d1, pinned=False) == {ListName.WAITING}
    assert lists_of(replace(moving, transfer=("department", "d2")), d1, pinned=False) == set()
    taken = replace(moving, state=m.ConversationState.ACTIVE, owner="a2")
    assert lists_of(taken, d1, pinned=False) == frozenset()


def test_left_messages_and_closed_today() -> None:
    everyone = viewer_of(_directory(), None, (), 1_000.0)
    left = _facts(
        state=m.ConversationState.CLOSED,
        close_reason=m.CloseReason.LEFT_MESSAGE,
        closed_at=999.0,
    )
    assert lists_of(left, everyone, pinned=False) == {ListName.LEFT_MESSAGES}
    assert lists_of(replace(left, closed_at=1_000.0), everyone, pinned=False) == {
        ListName.LEFT_MESSAGES,
        ListName.CLOSED_TODAY,
    }
    abandoned = replace(left, state=m.ConversationState.ABANDONED, close_reason=None)
    assert lists_of(abandoned, everyone, pinned=False) == frozenset()
