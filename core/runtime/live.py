"""A tenant's live figures, read from its ``Router`` at one instant: what a dashboard shows.

Pure: no I/O, no clock of its own (the caller passes the instant, normally the shard's clock).
``tenant_live`` costs O(agents + queues + conversations waiting or on offer) plus sorting the
agents and queues by id: it walks the queues, the agents, the waiting lines of the eligibility
groups, the conversations held by breaks and the live offers, and nothing else (never all
conversations).

Figures are exact where the engine is: loads and capacities are in the engine's milli-units
(``core.routing.state.UNIT`` per capacity unit). The values are frozen and picklable, so a Ray
shard returns them as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from core.reports.today import ServiceLevel
from core.routing.hours import HoursStatus, status_at
from core.routing.model import AgentStatus
from core.routing.router import Router
from core.routing.state import UNIT, QueueRuntime

NONE_TODAY: Final = ServiceLevel()


@dataclass(frozen=True, slots=True)
class QueueLive:
    queue_id: str
    waiting: int
    """Conversations QUEUED here (routable, or held by a break), not counting those on offer."""
    offered: int
    """Conversations of this queue on offer to one or more agents."""
    longest_wait: float
    """Seconds the longest-waiting conversation (queued or on offer) has waited since it was
    queued here (an overflow keeps its age); 0 when none waits."""
    hours: HoursStatus
    """From the queue's business hours at the instant (OPEN when it has none)."""
    today: ServiceLevel = NONE_TODAY
    """Waits answered (within the threshold) and abandoned today, in the tenant's zone
    (``core.reports.today``, kept by the shard's reports fold)."""

    @property
    def open(self) -> bool:
        """Within business hours and not on a break."""
        return self.hours is HoursStatus.OPEN


@dataclass(frozen=True, slots=True)
class AgentLive:
    agent_id: str
    status: AgentStatus
    custom_status: str | None
    load_milli: int
    """Capacity in use (owned conversations, directed offers and transfers pending to the
    agent), in milli-units; may exceed ``capacity_milli`` by a supervisor's override."""
    capacity_milli: int
    conversations: tuple[str, ...]
    """Conversations the agent owns (ACTIVE and WRAP_UP), by id."""
    offers: tuple[str, ...]
    """Live offers waiting for the agent's answer (directed or broadcast), by id."""

    @property
    def load(self) -> float:
        """Capacity in use in channel-weight units."""
        return self.load_milli / UNIT

    @property
    def capacity(self) -> float:
        return self.capacity_milli / UNIT


@dataclass(frozen=True, slots=True)
class TenantLive:
    tenant: str
    at: float
    """The instant the figures are for (seconds since the Unix epoch)."""
    version: int
    """Events the router had applied: equal versions at equal instants mean equal figures."""
    queues: tuple[QueueLive, ...]
    """By queue id."""
    agents: tuple[AgentLive, ...]
    """By agent id."""
    time_zone: str = "UTC"
    """The zone whose day ``QueueLive.today`` counts."""

    @classmethod
    def empty(cls, tenant: str, at: float) -> TenantLive:
        """A tenant with no routing state yet (never configured)."""
        return cls(tenant, at, 0, (), ())


def tenant_live(
    router: Router,
    at: float,
    today: Mapping[str, ServiceLevel] | None = None,
    time_zone: str = "UTC",
) -> TenantLive:
    """The tenant's figures at ``at``; ``router`` is only read. Call it between commands (as a
    shard does), when every routable conversation is in its group's line. ``today``: each
    queue's service-level counts of the day in ``time_zone`` (``core.reports.today``)."""
    today = today or {}
    queues = router.queues
    waiting = {queue_id: q.waiting + len(q.held) for queue_id, q in queues.items()}
    offered = dict.fromkeys(queues, 0)
    oldest: dict[str, float] = {}

    def saw(queue_id: str | None, enqueued_at: float | None) -> None:
        if queue_id is None or enqueued_at is None or queue_id not in queues:
            return
        if enqueued_at < oldest.get(queue_id, at):
            oldest[queue_id] = enqueued_at

    for group in router.groups.values():
        for line in group.waiting.values():
            for _, _, conv in line:
                saw(conv.queue_id, conv.enqueued_at)
    for queue_id, q in queues.items():
        for conversation_id in q.held:
            saw(queue_id, router.conversations[conversation_id].enqueued_at)
    for offer in router.offers.values():
        conv = router.conversations[offer.conversation_id]
        if conv.queue_id in offered:
            offered[conv.queue_id] += 1
        saw(conv.queue_id, conv.enqueued_at)

    return TenantLive(
        tenant=router.tenant,
        at=at,
        version=router.version,
        queues=tuple(
            QueueLive(
                queue_id=queue_id,
                waiting=waiting[queue_id],
                offered=offered[queue_id],
                longest_wait=max(0.0, at - oldest.get(queue_id, at)),
                hours=_hours(q, at),
                today=today.get(queue_id, NONE_TODAY),
            )
            for queue_id, q in sorted(queues.items())
        ),
        agents=tuple(
            AgentLive(
                agent_id=agent_id,
                status=a.status,
                custom_status=a.custom_status,
                load_milli=a.load,
                capacity_milli=a.capacity,
                conversations=tuple(sorted(a.conversations)),
                offers=tuple(sorted(a.offers)),
            )
            for agent_id, a in sorted(router.agents.items())
        ),
        time_zone=time_zone,
    )


def _hours(queue: QueueRuntime, at: float) -> HoursStatus:
    """The queue's hours status at ``at``: the engine's own until its next edge (no time-zone
    arithmetic), computed afresh past it (the engine's timer may not have fired yet)."""
    deadline = queue.hours_deadline
    if deadline is None or at < deadline:
        return queue.hours_status
    return status_at(queue.settings.hours, at)
