"""The engine's invariants as executable checks, and a canonical snapshot for comparing engines.

Tests call ``check_invariants`` after every step; ``snapshot`` is what "an equal engine" means
when a replayed or rebuilt router is compared with the original (invariant 5).
"""

from __future__ import annotations

from typing import Any

from core.routing.model import AgentStatus, ConversationState
from core.routing.router import Router
from core.routing.timers import TimerKind

S = ConversationState


class InvariantViolation(AssertionError):
    pass


def check_invariants(router: Router) -> None:
    """Raise ``InvariantViolation`` naming the first broken invariant (1 to 4 and 6 to 9)."""
    _one_offer_or_owner(router)
    _capacity(router)
    _skills(router)
    _no_starvation(router)
    _messages_once(router)
    _relaxed_by_presence(router)
    _no_offline_owner(router)
    _bot_without_agent(router)


def _bot_without_agent(router: Router) -> None:
    """9. A bot's flow runs only while no agent owns the conversation, and a flow waiting for
    an effect knows which one."""
    for conv in router.conversations.values():
        run = conv.bot
        if run is None or not run.running:
            continue
        if conv.owner is not None or conv.state not in (S.BOT, S.QUEUED, S.OFFERED):
            _fail(9, f"{conv!r} runs a bot's flow while {conv.state.value}")
        waiting_effect = run.state.waiting.value == "effect"
        if waiting_effect != (run.pending is not None and run.state.effect > 0):
            _fail(9, f"{conv!r}: its flow's awaited effect is unknown")


def _relaxed_by_presence(router: Router) -> None:
    """7. In a queue that relaxes by presence, a waiting conversation needs skills only while
    an agent who has them is online."""
    for conv in router.conversations.values():
        if conv.state is not S.QUEUED or conv.held or not conv.group_key.requirements:
            continue
        queue = router.queues.get(conv.queue_id or "")
        if queue is None or not queue.settings.relax_when_none_online:
            continue
        skilled = router.groups.get(queue.plan[0])
        if skilled is None or skilled.online == 0:
            _fail(7, f"{conv!r} waits for skills no online agent has")


def _no_offline_owner(router: Router) -> None:
    """8. A signed-out agent owns no active conversation (signing out refuses or hands them
    back)."""
    for conv in router.conversations.values():
        owner = router.agents.get(conv.owner) if conv.owner else None
        if conv.state is S.ACTIVE and owner is not None and owner.status is AgentStatus.OFFLINE:
            _fail(8, f"{conv!r} is owned by a signed-out agent")


def _messages_once(router: Router) -> None:
    """6. A message's idempotency key names one message, of a conversation that holds it."""
    for key, (message_id, conversation_id) in router.message_keys.items():
        conv = router.conversations.get(conversation_id)
        if conv is None or key not in conv.message_keys:
            _fail(6, f"key {key} names {conversation_id}, which does not hold it")
        if not 0 < message_id <= router.message_seq:
            _fail(6, f"key {key} names message {message_id}, never numbered")
    for conv in router.conversations.values():
        for key in conv.message_keys:
            if router.message_keys.get(key, (0, ""))[1] != conv.conversation_id:
                _fail(6, f"{conv!r} holds key {key} the tenant does not know")


def _fail(number: int, message: str) -> None:
    raise InvariantViolation(f"invariant {number}: {message}")


def _one_offer_or_owner(router: Router) -> None:
    offered: set[str] = set()
    for offer in router.offers.values():
        conv = router.conversations[offer.conversation_id]
        if conv.state is not S.OFFERED or conv.offer != offer.offer_id:
            _fail(1, f"offer {offer.offer_id} is live but {conv!r} is not offered by it")
        if offer.conversation_id in offered:
            _fail(1, f"{conv!r} has two live offers")
        offered.add(offer.conversation_id)
    for conv in router.conversations.values():
        if conv.state is S.OFFERED and (conv.offer is None or conv.owner is not None):
            _fail(1, f"{conv!r} is offered without exactly one offer and no owner")
        if conv.state in (S.ACTIVE, S.WRAP_UP) and (conv.owner is None or conv.offer):
            _fail(1, f"{conv!r} is live without exactly one owner and no offer")
        if conv.state not in (S.OFFERED, S.ACTIVE, S.WRAP_UP) and (conv.owner or conv.offer):
            _fail(1, f"{conv!r} holds an owner or offer in state {conv.state}")
        if conv.transfer is not None and conv.state is not S.ACTIVE:
            _fail(1, f"{conv!r} has a pending transfer but is not active")
    over = (S.WRAP_UP, S.CLOSED, S.ABANDONED)
    for (customer, channel), conversation_id in router.open_conversations.items():
        indexed = router.conversations.get(conversation_id)
        if indexed is None or indexed.state in over:
            _fail(1, f"{conversation_id} is indexed as open for {customer} but is over")
        elif (indexed.customer_id, indexed.channel) != (customer, channel):
            _fail(1, f"{conversation_id} is indexed as open for {customer} but is not")
    by_customer: dict[str, set[str]] = {}
    for conv in router.conversations.values():
        by_customer.setdefault(conv.customer_id, set()).add(conv.conversation_id)
    if by_customer != router.customer_conversations:
        _fail(1, "the index of conversations by customer is not the conversations in memory")


def _capacity(router: Router) -> None:
    expected = {agent_id: 0 for agent_id in router.agents}
    overridden = dict(expected)
    for conv in router.conversations.values():
        if conv.owner is not None:
            expected[conv.owner] += conv.reserved
            if conv.override:
                overridden[conv.owner] += conv.reserved
    for offer in router.offers.values():
        if not offer.broadcast:
            (agent_id,) = offer.agent_ids
            expected[agent_id] += router.conversations[offer.conversation_id].reserved
    for _conv, record in router.transfers.values():
        expected[record.target_id] += record.reserved
    for agent in router.agents.values():
        if agent.load != expected[agent.agent_id] or agent.override != overridden[agent.agent_id]:
            _fail(2, f"{agent!r}: load/override disagree with what it holds")
        if agent.load - agent.override > agent.capacity:
            _fail(2, f"{agent!r} is over capacity without an override")


def _skills(router: Router) -> None:
    for conv in router.conversations.values():
        if conv.state is S.ACTIVE:
            people = [conv.owner]
        elif conv.state is S.OFFERED and conv.offer is not None:
            people = list(router.offers[conv.offer].agent_ids)
        else:
            continue
        key = conv.group_key
        for agent_id in people:
            assert agent_id is not None
            if not key.admits(router.agents[agent_id].profile):
                _fail(3, f"{agent_id} does not meet {key.describe()} for {conv!r}")


def _no_starvation(router: Router) -> None:
    for conv in router.conversations.values():
        if conv.state is not S.QUEUED or conv.held:
            continue
        key = conv.group_key
        for agent in router.agents.values():
            if (
                agent.available
                and agent.fits(conv.cost)
                and agent.agent_id not in conv.declined
                and key.admits(agent.profile)
            ):
                _fail(4, f"{conv!r} waits while {agent!r} could take it")


def snapshot(router: Router) -> dict[str, Any]:
    """Everything that defines the router's state, as plain comparable data."""
    return {
        "settings": router.settings,
        "bots": dict(sorted(router.bots.items())),
        "skills": sorted(router.skills),
        "departments": dict(sorted(router.departments.items())),
        "agents": {
            a.agent_id: (
                a.profile,
                a.seq,
                a.status,
                a.custom_status,
                a.status_since,
                a.load,
                a.override,
                a.last_assigned_at,
                a.last_activity_at,
                a.last_offered,
                a.missed_offers,
                sorted(a.offers),
                sorted(a.transfers_in),
                sorted(a.conversations),
                sorted(g.key.describe() for g in a.groups),
            )
            for a in router.agents.values()
        },
        "queues": {
            q.settings.queue_id: (
                q.settings,
                q.waiting,
                list(q.held),
                q.hours_status,
                q.hours_deadline,
                round(q.avg_handle_seconds, 9),
            )
            for q in router.queues.values()
        },
        "conversations": {
            cid: {
                slot: _plain(getattr(conv, slot))
                for slot in type(conv).__slots__
                if slot not in ("transfers",)
            }
            | {"transfers": [_plain_record(r) for r in conv.transfers]}
            for cid, conv in router.conversations.items()
        },
        "offers": {
            o.offer_id: (o.conversation_id, o.agent_ids, o.deadline, o.broadcast)
            for o in router.offers.values()
        },
        "transfers": sorted(router.transfers),
        "open_conversations": dict(sorted(router.open_conversations.items())),
        "customer_conversations": {
            k: sorted(v) for k, v in sorted(router.customer_conversations.items())
        },
        "groups": {
            g.description: (sorted(g.members), g.online, g.refs, _waiting_ids(g))
            for key, g in router.groups.items()
        },
        "last_served": dict(router.last_served),
        "timers": sorted(
            (d, k, s) for d, _, k, s in router.timers._heap if _timer_current(router, d, k, s)
        ),
    }


def _plain(value: Any) -> Any:
    if isinstance(value, set | frozenset):
        return sorted(value)
    if isinstance(value, dict):
        return dict(sorted(value.items()))
    if isinstance(value, list):
        return list(value)
    return value


def _plain_record(record: Any) -> tuple[Any, ...]:
    return tuple(getattr(record, slot) for slot in type(record).__slots__)


def _waiting_ids(group: Any) -> dict[int, list[str]]:
    return {
        cost: [entry[2].conversation_id for entry in lst]
        for cost, lst in sorted(group.waiting.items())
        if lst
    }


def _timer_current(router: Router, deadline: float, kind: TimerKind, subject: str) -> bool:
    if kind is TimerKind.OFFER:
        offer = router.offers.get(subject)
        return offer is not None and offer.deadline == deadline
    if kind is TimerKind.TRANSFER:
        found = router.transfers.get(subject)
        return found is not None and found[1].deadline == deadline
    if kind is TimerKind.HOURS:
        queue = router.queues.get(subject)
        return queue is not None and queue.hours_deadline == deadline
    conv = router.conversations.get(subject)
    return conv is not None and conv.deadlines.get(kind) == deadline
