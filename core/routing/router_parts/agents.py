"""Agents' status and presence: sign-in, away, sign-out and what they hold."""

from __future__ import annotations

from core.routing import commands as c
from core.routing import events as ev
from core.routing.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)
from core.routing.model import (
    AgentStatus,
    DeclineReason,
    QueueReason,
    SignOutPolicy,
    TransferOutcome,
)
from core.routing.router_parts.base import (
    RouterBase,
    S,
)
from core.routing.state import (
    Agent,
    Conversation,
)


class AgentsMixin(RouterBase):
    """Agents' status and presence: sign-in, away, sign-out and what they hold."""

    def _set_agent_status(self, cmd: c.SetAgentStatus) -> None:
        agent = self._agent(cmd.agent_id)
        status = cmd.status
        if cmd.custom_status is not None:
            custom = self.settings.custom_status(cmd.custom_status)
            if custom is None:
                raise NotFound(f"unknown custom status {cmd.custom_status!r}")
            if status is not None and custom.base is not status:
                raise InvalidArgument(
                    f"custom status {custom.name!r} is a kind of {custom.base.value}, "
                    f"not {status.value}",
                    field="status",
                )
            status = custom.base  # naming the custom status alone means its base
        if status is None:
            raise InvalidArgument("a status or a custom status is required", field="status")
        held = self._held_on_sign_out(agent) if status is AgentStatus.OFFLINE else []
        self._change_status(agent, status, cmd.custom_status, "agent", cmd.client_address)
        for conv in held:
            self._hand_back(conv, agent)

    def _held_on_sign_out(self, agent: Agent) -> list[Conversation]:
        """The active conversations signing out hands back to their queues; refused (nothing
        changes) while the agent owns any and the tenant's policy is to refuse."""
        held = [
            conv
            for conv in (self.conversations[cid] for cid in sorted(agent.conversations))
            if conv.state is S.ACTIVE
        ]
        if held and self.settings.sign_out_with_conversations is SignOutPolicy.REFUSE:
            raise FailedPrecondition(
                f"agent {agent.agent_id!r} owns {len(held)} active conversation(s): "
                "end or transfer them before signing out",
                reason="HOLDING_CONVERSATIONS",
                agent_id=agent.agent_id,
                conversations=",".join(conv.conversation_id for conv in held),
            )
        return held

    def _hand_back(self, conv: Conversation, agent: Agent) -> None:
        """Return a conversation of an agent who signed out to its queue (``REQUEUE``)."""
        self._rescind_transfer(conv)
        if conv.queue_id in self.queues:
            assert conv.queue_id is not None
            self._enqueue(
                conv, conv.queue_id, QueueReason.AGENT_SIGNED_OUT, exclude=(agent.agent_id,)
            )
        else:  # its queue is gone (only older logs allow that): the bot answers meanwhile
            self._to_bot(conv, by=agent.agent_id)

    def _change_status(
        self,
        agent: Agent,
        status: AgentStatus,
        custom: str | None,
        reason: str,
        client_address: str = "",
    ) -> None:
        now = self.clock.now()
        was_online = agent.status is AgentStatus.ONLINE
        self._emit(
            ev.AgentStatusChanged(
                tenant=self.tenant,
                at=now,
                agent_id=agent.agent_id,
                status=status,
                custom_status=custom,
                reason=reason,
                client_address=client_address,
            )
        )
        if status is AgentStatus.ONLINE:
            self._pull(agent)
            return
        for offer_id in sorted(agent.offers):
            offer = self.offers[offer_id]
            if not offer.broadcast:
                self._decline(offer, DeclineReason.RESCINDED)
        if status is AgentStatus.OFFLINE:
            for transfer_id in sorted(agent.transfers_in):
                conv, record = self.transfers[transfer_id]
                self._resolve_transfer(conv, record, TransferOutcome.RESCINDED)
        if was_online:
            self._relax_stranded(self._presence_queues(agent))

    def _on_agent_status_changed(self, e: ev.AgentStatusChanged) -> None:
        agent = self.agents[e.agent_id]
        was_online = agent.status is AgentStatus.ONLINE
        is_online = e.status is AgentStatus.ONLINE
        if is_online and not was_online:
            agent.missed_offers = 0
            agent.last_assigned_at = max(agent.last_assigned_at, e.at)
        if is_online != was_online:
            for group in agent.groups:
                group.online += 1 if is_online else -1
        agent.status = e.status
        agent.custom_status = e.custom_status
        agent.status_since = e.at
        agent.last_activity_at = e.at
        self._reindex(agent)
