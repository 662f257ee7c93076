"""What the doors show of the engine's state after a command: plain frozen values.

The shard attaches these to a command's outcome, so the front door answers with the state the
command left behind without reading it back from the store.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.routing.model import (
    AgentProfile,
    AgentStatus,
    CloseReason,
    ConversationState,
    CustomerCard,
    Outcome,
)
from core.routing.router import Router
from core.routing.state import UNIT


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationView:
    conversation_id: str
    channel: str
    customer_id: str
    customer: CustomerCard
    state: ConversationState
    queue_id: str | None
    owner: str | None
    last_agent: str | None
    priority: int
    tags: tuple[str, ...]
    region: str
    language: str
    outcome: Outcome | None
    close_reason: CloseReason | None
    created_at: float
    queued_at: float | None
    assigned_at: float | None
    first_response_at: float | None
    ended_at: float | None
    closed_at: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentView:
    profile: AgentProfile
    status: AgentStatus
    custom_status: str | None
    load: float
    """Capacity in use (owned conversations, pending offers and transfers to this agent)."""
    status_since: float


def conversation_view(router: Router, conversation_id: str) -> ConversationView | None:
    conv = router.conversations.get(conversation_id)
    if conv is None:
        return None
    return ConversationView(
        conversation_id=conv.conversation_id,
        channel=conv.channel,
        customer_id=conv.customer_id,
        customer=conv.customer,
        state=conv.state,
        queue_id=conv.queue_id,
        owner=conv.owner,
        last_agent=conv.last_agent,
        priority=conv.priority,
        tags=tuple(sorted(conv.tags)),
        region=conv.region,
        language=conv.language,
        outcome=conv.outcome,
        close_reason=conv.close_reason,
        created_at=conv.created_at,
        queued_at=conv.first_queued_at,
        assigned_at=conv.assigned_at,
        first_response_at=conv.first_response_at,
        ended_at=conv.ended_at,
        closed_at=conv.closed_at,
    )


def agent_view(router: Router, agent_id: str) -> AgentView | None:
    agent = router.agents.get(agent_id)
    if agent is None:
        return None
    return AgentView(
        profile=agent.profile,
        status=agent.status,
        custom_status=agent.custom_status,
        load=agent.load / UNIT,
        status_since=agent.status_since,
    )
