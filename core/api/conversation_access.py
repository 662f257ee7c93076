"""The policy's answer for a door-checked RPC on one conversation (``core.api.policy``), for the
servicers beside AgentService: the agent's relations are read (``core.store.access``) only when
the caller is an agent."""

from __future__ import annotations

from core.api import policy
from core.api.context import Caller
from core.routing.errors import NotFound, PermissionDenied
from core.store.access import Access


def who_acts(who: Caller) -> Caller:
    """The caller, refused when an agent credential names no agent."""
    if who.role == policy.Role.AGENT and not who.agent_id:
        raise PermissionDenied("an agent credential without an agent")
    return who


async def authorize(access: Access, who: Caller, rpc: str, conversation_id: str) -> None:
    """Refuse unless the policy allows ``who`` to call ``rpc`` on the conversation: NOT_FOUND
    when it does not exist (or for a read the caller may not make), else PERMISSION_DENIED."""
    relations: frozenset[policy.Relation] = frozenset()
    exists = True
    if who.role == policy.Role.AGENT and who.agent_id:
        facts = await access.facts(who.tenant, conversation_id, who.agent_id)
        exists = facts is not None
        if facts is not None:
            relations = policy.relations_of(facts)
    verdict = policy.decide(who.role, rpc, relations) if exists else policy.Verdict.NOT_FOUND
    if verdict is policy.Verdict.NOT_FOUND:
        raise NotFound(
            f"conversation {conversation_id!r} not found", conversation_id=conversation_id
        )
    if verdict is policy.Verdict.PERMISSION_DENIED:
        raise PermissionDenied(
            f"{who.role} may not do this to conversation {conversation_id!r}",
            conversation_id=conversation_id,
        )
