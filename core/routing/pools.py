"""Eligibility groups: the O(log n) matching index.

A group is a set of agents defined by a requirement (skills with minimum levels, optionally
restricted to designated agents or departments). Every queue step, sticky preference and
department transfer routes through one group, and queues with equal requirements share it.

Each group keeps, per strategy in use, a lazy heap of its available agents ordered by that
strategy's key, and the conversations waiting for it, by score, in one sorted list per cost.
An agent's heap entries carry its ``version``: when the agent may have become available or a key
improved, the version moves on and fresh entries are pushed, so older entries are dropped when
they reach the top. A key that got worse (the agent was just offered work) is re-filed lazily
when its entry surfaces; an entry of an agent that is not available is dropped.

Arrivals pop the best agent; freed capacity takes the best head across the agent's groups.
Neither scans all agents nor all waiting conversations.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sortedcontainers import SortedList

from core.routing.explain import MAX_CANDIDATES, Candidate
from core.routing.model import AgentProfile, AgentStatus, Strategy
from core.routing.state import STRATEGY_KEYS

if TYPE_CHECKING:
    from core.routing.state import Agent, Conversation

HeapEntry = tuple[tuple[float, ...], int, str]
"""(strategy key, agent version, agent id). Ids rather than agents keep the entries free of
references, so the garbage collector stops tracking them."""
WaitingEntry = tuple[float, int, "Conversation"]
"""(effective_at, conversation seq, conversation): score order; seq is unique, so
conversations themselves are never compared."""


@dataclass(frozen=True)
class GroupKey:
    """Who may serve: agents meeting every (skill, minimum level), and, when given, only the
    named agents or members of the named departments."""

    requirements: frozenset[tuple[str, int]] = frozenset()
    agents: frozenset[str] | None = None
    departments: frozenset[str] | None = None

    def __post_init__(self) -> None:
        # Keys are looked up on every enqueue: hash the three sets once. Kept out of the fields
        # (and of pickles, below) because string hashes differ between processes.
        object.__setattr__(self, "_hash", hash((self.requirements, self.agents, self.departments)))

    def __hash__(self) -> int:
        return self._hash  # type: ignore[attr-defined, no-any-return]

    def __reduce__(self) -> tuple[type[GroupKey], tuple[object, ...]]:
        return (GroupKey, (self.requirements, self.agents, self.departments))

    def admits(self, profile: AgentProfile) -> bool:
        skills = profile.skills
        if any(skills.get(skill, 0) < level for skill, level in self.requirements):
            return False
        if self.agents is not None and profile.agent_id not in self.agents:
            return False
        return self.departments is None or not self.departments.isdisjoint(profile.departments)

    def describe(self) -> str:
        parts = [f"{skill}>={level}" for skill, level in sorted(self.requirements)]
        if self.agents is not None:
            parts.append("agent in " + ",".join(sorted(self.agents)))
        if self.departments is not None:
            parts.append("department in " + ",".join(sorted(self.departments)))
        return " and ".join(parts) or "any agent"


class Group:
    __slots__ = ("_heaps", "description", "key", "members", "online", "refs", "waiting")

    def __init__(self, key: GroupKey, members: Iterable[Agent]) -> None:
        self.key = key
        self.description = key.describe()
        self.members: dict[str, Agent] = {a.agent_id: a for a in members}
        self.online = sum(1 for a in self.members.values() if a.status is AgentStatus.ONLINE)
        """Members signed in and online (for wait estimates); kept by the router."""
        self.waiting: dict[int, SortedList] = {}
        self._heaps: dict[Strategy, list[HeapEntry]] = {}
        self.refs = 0
        """Queues and waiting conversations using this group; at zero it may be dropped."""

    # --- agents --------------------------------------------------------------------------------

    def add_member(self, agent: Agent) -> None:
        """Add an agent; the caller re-indexes it (``Router._touch``) afterwards."""
        self.members[agent.agent_id] = agent
        self.online += agent.status is AgentStatus.ONLINE

    def remove_member(self, agent: Agent) -> None:
        """Remove an agent; its heap entries go stale with its next version."""
        del self.members[agent.agent_id]
        self.online -= agent.status is AgentStatus.ONLINE

    def push(self, agent: Agent) -> None:
        """Index the agent's current keys; called after its version moved on."""
        if agent.available:
            for strategy, heap in self._heaps.items():
                heapq.heappush(heap, (agent.key(strategy), agent.version, agent.agent_id))

    def push_improved(self, agent: Agent) -> None:
        """Index an agent whose load just dropped while it stayed available: only the keys that
        depend on load improved; its other entries are still current."""
        heap = self._heaps.get(Strategy.LEAST_BUSY)
        if heap is not None:
            heapq.heappush(heap, (agent.key(Strategy.LEAST_BUSY), agent.version, agent.agent_id))

    def best_agents(
        self, strategy: Strategy, cost: int, excluded: set[str]
    ) -> tuple[list[Agent], list[Candidate]]:
        """The best available agent that fits ``cost`` and is not excluded (all such agents for
        BROADCAST), with the passed-over candidates for the explanation."""
        if strategy is Strategy.BROADCAST:
            return self._everyone(cost, excluded)
        heap = self._heaps.get(strategy)
        if heap is None:
            heap = self._heaps[strategy] = self._build_heap(strategy)
        elif len(heap) > 2 * len(self.members) + 64:
            heap[:] = self._build_heap(strategy)
        members = self.members
        key_of = STRATEGY_KEYS[strategy]
        online = AgentStatus.ONLINE
        passed: list[HeapEntry] = []
        candidates: list[Candidate] = []
        winner: Agent | None = None
        while heap:
            entry = heap[0]
            key, version, agent_id = entry
            agent = members.get(agent_id)
            if (
                agent is None
                or version != agent.version
                or agent.status is not online
                or agent.load >= agent.capacity
            ):
                heapq.heappop(heap)  # outdated, or not available: indexed again when it is
                continue
            current = key_of(agent)
            if current != key:  # the key got worse since it was indexed: re-file it
                heapq.heapreplace(heap, (current, version, agent_id))
                continue
            if agent_id in excluded or not agent.fits(cost):
                passed.append(heapq.heappop(heap))
                if len(candidates) < MAX_CANDIDATES:
                    verdict = "declined earlier" if agent_id in excluded else "no room"
                    candidates.append(Candidate(agent_id, verdict))
                continue
            winner = agent
            break
        for entry in passed:
            heapq.heappush(heap, entry)
        return ([winner] if winner else []), candidates

    def _everyone(self, cost: int, excluded: set[str]) -> tuple[list[Agent], list[Candidate]]:
        chosen = [
            a
            for a in self.members.values()
            if a.available and a.fits(cost) and a.agent_id not in excluded
        ]
        chosen.sort(key=lambda a: a.seq)
        return chosen, []

    def _build_heap(self, strategy: Strategy) -> list[HeapEntry]:
        heap = [
            (a.key(strategy), a.version, a.agent_id) for a in self.members.values() if a.available
        ]
        heapq.heapify(heap)
        return heap

    # --- waiting conversations -----------------------------------------------------------------

    def add_waiting(self, conversation: Conversation) -> None:
        lst = self.waiting.get(conversation.cost)
        if lst is None:
            lst = self.waiting[conversation.cost] = SortedList()
        lst.add(waiting_entry(conversation))

    def remove_waiting(self, conversation: Conversation) -> None:
        self.waiting[conversation.cost].remove(waiting_entry(conversation))

    def heads_for(self, agent: Agent) -> Iterator[WaitingEntry]:
        """For each cost the agent has room for, the best waiting entry it has not declined."""
        for cost, lst in self.waiting.items():
            if not lst or not agent.fits(cost):
                continue
            for entry in lst:
                if agent.agent_id not in entry[2].declined:
                    yield entry
                    break

    def ahead_of(self, conversation: Conversation) -> int:
        """How many waiting conversations this group will serve before ``conversation``."""
        entry = waiting_entry(conversation)
        return sum(lst.bisect_left(entry) for lst in self.waiting.values())

    def waiting_count(self) -> int:
        return sum(len(lst) for lst in self.waiting.values())

    def __repr__(self) -> str:
        available = sum(1 for a in self.members.values() if a.available)
        return (
            f"<Group {self.description}: {available}/{len(self.members)} available, "
            f"{self.waiting_count()} waiting>"
        )


def waiting_entry(conversation: Conversation) -> WaitingEntry:
    return (conversation.effective_at, conversation.seq, conversation)
