"""Offers, accept and reject, taking and forced assignment, ending and wrap-up."""

from __future__ import annotations

from core.routing import commands as c
from core.routing import events as ev
from core.routing.errors import FailedPrecondition
from core.routing.model import (
    AgentStatus,
    CloseReason,
    ConversationState,
    DeclineReason,
    Outcome,
    SystemMessage,
)
from core.routing.router_parts.base import (
    HANDLE_TIME_SMOOTHING,
    KEPT_DECISIONS,
    RouterBase,
    S,
)
from core.routing.state import (
    Agent,
    Conversation,
    Offer,
)
from core.routing.timers import TimerKind


class OffersMixin(RouterBase):
    """Offers, accept and reject, taking and forced assignment, ending and wrap-up."""

    def _accept_offer(self, cmd: c.AcceptOffer) -> None:
        offer = self._live_offer(cmd.offer_id, cmd.agent_id)
        agent = self.agents[cmd.agent_id]
        conv = self.conversations[offer.conversation_id]
        if offer.broadcast:
            self._require_online(agent)
            self._require_room(agent, conv)
        self._emit(
            ev.OfferAccepted(
                tenant=self.tenant,
                at=self.clock.now(),
                offer_id=offer.offer_id,
                conversation_id=conv.conversation_id,
                agent_id=agent.agent_id,
                agent_ids=offer.agent_ids,
            )
        )
        self._joined(conv, agent)

    def _reject_offer(self, cmd: c.RejectOffer) -> None:
        offer = self._live_offer(cmd.offer_id, cmd.agent_id)
        self._decline(offer, DeclineReason.REJECTED, declined_by=(cmd.agent_id,))

    def _decline(
        self,
        offer: Offer,
        reason: DeclineReason,
        declined_by: tuple[str, ...] = (),
        missed_by: tuple[str, ...] = (),
        reroute: bool = True,
    ) -> None:
        """End an offer without an owner; re-route the conversation and let the freed agents
        pull other work (unless the caller is about to decide the conversation itself)."""
        conv = self.conversations[offer.conversation_id]
        recipients = [self.agents[a] for a in offer.agent_ids]
        self._emit(
            ev.OfferDeclined(
                tenant=self.tenant,
                at=self.clock.now(),
                offer_id=offer.offer_id,
                conversation_id=conv.conversation_id,
                reason=reason,
                agent_ids=offer.agent_ids,
                missed_by=missed_by,
                declined_by=declined_by,
            )
        )
        limit = self.settings.misses_before_away
        for agent in recipients:
            if agent.agent_id in missed_by and limit and agent.missed_offers >= limit:
                self._change_status(agent, AgentStatus.AWAY, None, "missed_offers")
        if reroute:
            self._route(conv)
            for agent in recipients:
                self._pull(agent)

    def _rescind_offer(self, conv: Conversation) -> list[Agent]:
        """Withdraw the conversation's live offer, if any, without re-routing it; the caller
        decides the conversation's fate and then lets the returned recipients pull new work."""
        if conv.offer is None:
            return []
        offer = self.offers[conv.offer]
        self._decline(offer, DeclineReason.RESCINDED, reroute=False)
        return [self.agents[a] for a in offer.agent_ids]

    def _take(self, cmd: c.TakeConversation) -> None:
        conv = self._conversation(cmd.conversation_id)
        agent = self._agent(cmd.agent_id)
        self._require_state(conv, S.QUEUED, S.OFFERED)
        self._require_online(agent)
        self._require_eligible(agent, conv)
        offer = self.offers.get(conv.offer) if conv.offer else None
        if offer is not None and agent.agent_id in offer.agent_ids:
            self._accept_offer(
                c.AcceptOffer(tenant=self.tenant, offer_id=offer.offer_id, agent_id=agent.agent_id)
            )
            return
        self._require_room(agent, conv)
        self._assign(conv, agent, via="take", by=agent.agent_id, override=False)

    def _force_assign(self, cmd: c.ForceAssign) -> None:
        conv = self._conversation(cmd.conversation_id)
        agent = self._agent(cmd.agent_id)
        self._require_state(conv, S.QUEUED, S.OFFERED, S.ACTIVE)
        if conv.owner == agent.agent_id:
            raise FailedPrecondition(f"agent {agent.agent_id!r} already owns it")
        if agent.status is AgentStatus.OFFLINE:
            raise FailedPrecondition(f"agent {agent.agent_id!r} is signed out")
        self._require_eligible(agent, conv)
        fits = agent.fits(conv.cost)
        if not fits and not cmd.override_capacity:
            self._require_room(agent, conv)
        self._assign(conv, agent, via="force", by=cmd.supervisor_id, override=not fits)

    def _assign(
        self, conv: Conversation, agent: Agent, *, via: str, by: str, override: bool
    ) -> None:
        """Make ``agent`` the owner now, rescinding whatever offer or transfer stood in the way."""
        previous = self.agents.get(conv.owner) if conv.owner else None
        self._rescind_transfer(conv)
        displaced = self._rescind_offer(conv)
        self._emit(
            ev.ConversationAssigned(
                tenant=self.tenant,
                at=self.clock.now(),
                conversation_id=conv.conversation_id,
                agent_id=agent.agent_id,
                via=via,
                by=by,
                override_capacity=override,
                previous_owner=conv.owner,
            )
        )
        self._joined(conv, agent)
        for other in (*displaced, *([previous] if previous else [])):
            self._pull(other)

    def _joined(self, conv: Conversation, agent: Agent) -> None:
        self._say(conv, SystemMessage.AGENT_JOINED, agent=agent.profile.name or agent.agent_id)

    def _end(self, cmd: c.EndConversation) -> None:
        conv = self._conversation(cmd.conversation_id)
        self._agent(cmd.agent_id)
        self._require_state(conv, S.ACTIVE)
        self._require_owner(conv, cmd.agent_id)
        self._finish(conv, CloseReason.AGENT_ENDED, cmd.outcome, by=cmd.agent_id)

    def _finish(
        self, conv: Conversation, reason: CloseReason, outcome: Outcome | None, by: str = ""
    ) -> None:
        """End a live conversation: wrap-up if the tenant has one, else close and free the agent."""
        owner = self.agents[conv.owner] if conv.owner else None
        self._rescind_transfer(conv)
        now = self.clock.now()
        wrap_up = self.settings.wrap_up_seconds
        self._emit(
            ev.ConversationEnded(
                tenant=self.tenant,
                at=now,
                conversation_id=conv.conversation_id,
                reason=reason,
                outcome=outcome,
                by=by,
                wrap_up_until=now + wrap_up if wrap_up and owner else None,
                agent_id=conv.owner,
            )
        )
        if reason is CloseReason.AGENT_ENDED:
            self._say(conv, SystemMessage.AGENT_ENDED)
        elif reason is CloseReason.CUSTOMER_IDLE:
            self._say(conv, SystemMessage.IDLE_CLOSED)
        if owner is not None:
            self._pull(owner)

    def _finish_wrap_up(self, cmd: c.FinishWrapUp) -> None:
        conv = self._conversation(cmd.conversation_id)
        self._require_state(conv, S.WRAP_UP)
        self._require_owner(conv, cmd.agent_id)
        self._close_wrap_up(conv)

    def _close_wrap_up(self, conv: Conversation) -> None:
        owner = self.agents[conv.owner] if conv.owner else None
        self._emit(
            ev.WrapUpFinished(
                tenant=self.tenant,
                at=self.clock.now(),
                conversation_id=conv.conversation_id,
                agent_id=conv.owner,
            )
        )
        if owner is not None:
            self._pull(owner)

    def _on_offer_made(self, e: ev.OfferMade) -> None:
        conv = self.conversations[e.conversation_id]
        self._delist(conv)
        conv.state = S.OFFERED
        conv.offer = e.offer_id
        self._next("offer")
        rotation = self._next("rotation")
        offer = Offer(e.offer_id, e.conversation_id, e.agent_ids, e.deadline, e.broadcast)
        self.offers[e.offer_id] = offer
        for agent_id in e.agent_ids:
            agent = self.agents[agent_id]
            agent.offers.add(e.offer_id)
            agent.last_offered = rotation
            if not e.broadcast:
                conv.reserved = agent.cost_of(conv.cost)
                agent.load += conv.reserved
        conv.decisions.append(e.decision)
        del conv.decisions[:-KEPT_DECISIONS]
        self._arm(TimerKind.OFFER, e.offer_id, e.deadline)

    def _drop_offer(self, offer: Offer, conv: Conversation) -> list[Agent]:
        del self.offers[offer.offer_id]
        conv.offer = None
        recipients = [self.agents[a] for a in offer.agent_ids]
        for agent in recipients:
            agent.offers.discard(offer.offer_id)
        return recipients

    def _on_offer_accepted(self, e: ev.OfferAccepted) -> None:
        conv = self.conversations[e.conversation_id]
        offer = self.offers[e.offer_id]
        self._drop_offer(offer, conv)
        agent = self.agents[e.agent_id]
        if offer.broadcast:
            conv.reserved = agent.cost_of(conv.cost)
            agent.load += conv.reserved
        self._own(conv, agent, e.at, conv.reserved)

    def _on_offer_declined(self, e: ev.OfferDeclined) -> None:
        conv = self.conversations[e.conversation_id]
        offer = self.offers[e.offer_id]
        for agent in self._drop_offer(offer, conv):
            if agent.agent_id in e.missed_by:
                agent.missed_offers += 1
            if not offer.broadcast:
                self._free(agent, conv.reserved)
        conv.reserved = 0
        conv.declined.update(e.declined_by)
        conv.state = S.QUEUED
        self._list_later(conv)

    def _on_assigned(self, e: ev.ConversationAssigned) -> None:
        conv = self.conversations[e.conversation_id]
        agent = self.agents[e.agent_id]
        self._delist(conv)
        self._release_owner(conv)
        reserved = agent.cost_of(conv.cost)
        agent.load += reserved
        if e.override_capacity:
            conv.override = True
            agent.override += reserved
        self._own(conv, agent, e.at, reserved)

    def _on_ended(self, e: ev.ConversationEnded) -> None:
        conv = self.conversations[e.conversation_id]
        if conv.state is S.ACTIVE and conv.assigned_at is not None and conv.queue_id:
            queue = self.queues.get(conv.queue_id)
            if queue is not None:
                handled = e.at - conv.assigned_at
                queue.avg_handle_seconds += HANDLE_TIME_SMOOTHING * (
                    handled - queue.avg_handle_seconds
                )
        self._leave_queue(conv)
        conv.deadlines.clear()
        if conv.owner is not None:
            self.last_served[conv.customer_id] = (conv.owner, e.at)
        conv.ended_at = e.at
        conv.outcome = e.outcome
        conv.close_reason = e.reason
        conv.reminded = False
        self._over(conv)
        if e.wrap_up_until is not None:
            conv.state = S.WRAP_UP
            self._set_deadline(conv, TimerKind.WRAP_UP, e.wrap_up_until)
        else:
            self._release_owner(conv)
            self._terminate(conv, S.CLOSED, e.at)

    def _on_wrap_up_finished(self, e: ev.WrapUpFinished) -> None:
        conv = self.conversations[e.conversation_id]
        conv.deadlines.clear()
        self._release_owner(conv)
        self._terminate(conv, S.CLOSED, e.at)

    def _on_abandoned(self, e: ev.ConversationAbandoned) -> None:
        conv = self.conversations[e.conversation_id]
        self._leave_queue(conv)
        conv.deadlines.clear()
        self._terminate(conv, S.ABANDONED, e.at)

    def _over(self, conv: Conversation) -> None:
        """The customer's next message starts a new conversation."""
        self._stop_flow(conv)
        key = (conv.customer_id, conv.channel)
        if self.open_conversations.get(key) == conv.conversation_id:
            del self.open_conversations[key]

    def _terminate(self, conv: Conversation, state: ConversationState, at: float) -> None:
        self._over(conv)
        conv.state = state
        conv.closed_at = at
        retention = self.settings.closed_retention_seconds
        self._set_deadline(conv, TimerKind.RETENTION, at + retention)
