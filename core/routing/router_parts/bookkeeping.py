"""Index upkeep for the appliers: eligibility groups, listings, ownership, capacity."""

from __future__ import annotations

from core.routing.pools import Group, GroupKey
from core.routing.router_parts.base import (
    RouterBase,
    S,
)
from core.routing.state import (
    Agent,
    Conversation,
)
from core.routing.timers import TimerKind


class BookkeepingMixin(RouterBase):
    """Index upkeep for the appliers: eligibility groups, listings, ownership, capacity."""

    def _group(self, key: GroupKey) -> Group:
        group = self.groups.get(key)
        if group is None:
            if key.agents is not None:
                candidates = [self.agents[a] for a in sorted(key.agents) if a in self.agents]
            else:
                candidates = list(self.agents.values())
            group = Group(key, [a for a in candidates if key.admits(a.profile)])
            for agent in group.members.values():
                agent.groups.append(group)
            self.groups[key] = group
        return group

    def _ref(self, key: GroupKey) -> None:
        self._group(key).refs += 1

    def _unref(self, key: GroupKey) -> None:
        group = self.groups[key]
        group.refs -= 1
        if group.refs == 0 and not group.waiting_count():
            for agent in group.members.values():
                agent.groups.remove(group)
            del self.groups[key]

    def _reindex(self, agent: Agent) -> None:
        """Index the agent afresh in all its groups. Needed when it may have become available or
        a strategy key improved (room freed, signed in, reconfigured). Keys that only get worse
        (an offer, an assignment) need nothing: the heaps catch up when the stale entry surfaces.
        """
        agent.version += 1
        if agent.available:
            for group in agent.groups:
                group.push(agent)

    def _free(self, agent: Agent, units: int) -> None:
        """Give back ``units`` of the agent's load and index it for the room it gained."""
        was_available = agent.available
        agent.load -= units
        if not was_available:
            self._reindex(agent)  # its entries may have been dropped while it was full
        elif agent.available:
            for group in agent.groups:
                group.push_improved(agent)

    def _list_later(self, conv: Conversation) -> None:
        """List a conversation that just became routable once the command is done with it.
        Most arrivals are offered at once, so listing them first would be wasted work."""
        self._unlisted.append(conv)

    def _flush_listings(self) -> None:
        """List the conversations still waiting; called before anything reads the lists."""
        for conv in self._unlisted:
            if conv.state is S.QUEUED and not conv.held and not conv.listed:
                self._list(conv)
        self._unlisted.clear()

    def _list(self, conv: Conversation) -> None:
        """Make a QUEUED conversation routable: into its group's line and its queue's count."""
        self.groups[conv.group_key].add_waiting(conv)
        self._queue_of(conv).waiting += 1
        conv.listed = True

    def _unlist(self, conv: Conversation) -> None:
        if conv.listed:
            self.groups[conv.group_key].remove_waiting(conv)
            self._queue_of(conv).waiting -= 1
            conv.listed = False

    def _delist(self, conv: Conversation) -> None:
        """Take a QUEUED conversation out of routing: its group and queue order, or the list of
        conversations held by a break."""
        if conv.state is not S.QUEUED:
            return
        if conv.held:
            assert conv.queue_id is not None
            del self.queues[conv.queue_id].held[conv.conversation_id]
            conv.held = False
        else:
            self._unlist(conv)

    def _leave_queue(self, conv: Conversation) -> None:
        """Drop the conversation from whatever queue structure holds it and release its plan."""
        self._delist(conv)
        for key in conv.plan:
            self._unref(key)
        conv.plan = ()
        conv.plan_offsets = ()
        conv.deadlines.pop(TimerKind.STEP, None)
        conv.deadlines.pop(TimerKind.MAX_WAIT, None)

    def _release_owner(self, conv: Conversation) -> None:
        if conv.owner is None:
            return
        agent = self.agents[conv.owner]
        self._free(agent, conv.reserved)
        if conv.override:
            agent.override -= conv.reserved
        agent.conversations.discard(conv.conversation_id)
        conv.owner = None
        conv.override = False
        conv.reserved = 0

    def _own(self, conv: Conversation, agent: Agent, at: float, reserved: int) -> None:
        self._stop_flow(conv)  # an agent has it: the bot stops
        conv.owner = agent.agent_id
        conv.last_agent = agent.agent_id
        conv.reserved = reserved
        conv.state = S.ACTIVE
        if conv.assigned_at is None:
            conv.assigned_at = at
        agent.conversations.add(conv.conversation_id)
        agent.last_assigned_at = at
        agent.missed_offers = 0
        self.last_served[conv.customer_id] = (agent.agent_id, at)
        for kind in (TimerKind.STEP, TimerKind.MAX_WAIT, TimerKind.CUSTOMER_IDLE):
            conv.deadlines.pop(kind, None)
        idle = self.settings.agent_idle_notify
        self._set_deadline(conv, TimerKind.AGENT_IDLE, at + idle if idle else None)
