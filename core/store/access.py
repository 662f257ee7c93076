"""The facts an authorization decision needs: how one agent relates to one conversation, read
in one statement from the record tables the shard writes (``core.api.policy`` decides)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import asyncpg
import msgspec

from core.routing import model as m
from core.routing.router import eligibility_keys
from core.store.errors import translated_errors

_RELATIONS_SQL: Final = """
SELECT c.owner_agent_id IS NOT DISTINCT FROM $3 AS owner,
       c.state IN ('bot', 'queued', 'offered') OR c.last_agent_id IS NULL AS waiting_or_unserved,
       c.last_agent_id IS NOT DISTINCT FROM $3 AS last_agent,
       EXISTS (SELECT 1 FROM offers o
               WHERE o.tenant_id = $1 AND o.conversation_id = $2 AND o.outcome IS NULL
                 AND $3 = ANY(o.agent_ids)) AS offered,
       EXISTS (SELECT 1 FROM offers o
               WHERE o.tenant_id = $1 AND o.conversation_id = $2
                 AND $3 = ANY(o.agent_ids)) AS offered_before,
       EXISTS (SELECT 1 FROM transfers t
               WHERE t.tenant_id = $1 AND t.conversation_id = $2 AND t.outcome IS NULL
                 AND (t.from_agent = $3 OR (t.target = 'agent' AND t.target_id = $3)))
           AS transfer_party,
       EXISTS (SELECT 1 FROM transfers t
               WHERE t.tenant_id = $1 AND t.conversation_id = $2
                 AND (t.from_agent = $3
                      OR (t.target = 'agent' AND t.target_id = $3 AND t.outcome = 'accepted')))
           AS transferred,
       EXISTS (SELECT 1 FROM messages g
               WHERE g.tenant_id = $1 AND g.conversation_id = $2 AND g.sender = 'agent'
                 AND g.agent_id = $3) AS wrote,
       q.settings::text AS queue_settings,
       a.profile::text AS profile,
       coalesce((SELECT (s.settings ->> 'agents_see_team_conversations')::boolean
                 FROM tenants s WHERE s.tenant_id = $1), false) AS team_reads,
       ARRAY(SELECT jsonb_array_elements_text(coalesce(w.profile -> 'departments', '[]'))
             FROM agents w
             WHERE w.tenant_id = $1 AND w.agent_id IN (c.owner_agent_id, c.last_agent_id)
               AND w.agent_id <> $3) AS their_departments
FROM conversations c
LEFT JOIN queues q ON q.tenant_id = c.tenant_id AND q.queue_id = c.queue_id
LEFT JOIN agents a ON a.tenant_id = c.tenant_id AND a.agent_id = $3 AND a.removed_at IS NULL
WHERE c.tenant_id = $1 AND c.conversation_id = $2
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentFacts:
    """One agent's relations to one conversation, as the records hold them."""

    owner: bool
    """Owns it now."""
    served: bool
    """Owned it before: its last agent, a transfer's sender or accepting target, or wrote in
    it."""
    offered: bool
    """Has an open offer for it."""
    offered_before: bool
    """Was offered it (any outcome)."""
    transfer_party: bool
    """Sender or target of its pending transfer."""
    queue_member: bool
    """Its queue's plan (strict or relaxed) admits the agent."""
    waiting_or_unserved: bool
    """It waits for an agent (or the bot has it), or no agent ever owned it."""
    team: bool = False
    """Its owner or last agent is another agent who shares a department with this one, and the
    tenant lets agents read their team's conversations
    (``TenantSettings.agents_see_team_conversations``)."""


def serves(queue: m.QueueSettings, agent: m.AgentProfile) -> bool:
    """Whether some step of the queue's plan (strict or relaxed, by time or by presence) admits
    the agent."""
    return any(key.admits(agent) for key in eligibility_keys(queue))


class Access:
    """Reads of an agent's relations to conversations, over a pool."""

    def __init__(self, pool: asyncpg.Pool, *, timeout: float = 10.0) -> None:
        self._pool = pool
        self._timeout = timeout

    async def facts(self, tenant: str, conversation_id: str, agent_id: str) -> AgentFacts | None:
        """How ``agent_id`` relates to the conversation; None if the tenant has no such
        conversation."""
        with translated_errors():
            row = await self._pool.fetchrow(
                _RELATIONS_SQL, tenant, conversation_id, agent_id, timeout=self._timeout
            )
        if row is None:
            return None
        queue_member = team = False
        if row["profile"] is not None:
            profile = msgspec.json.decode(row["profile"], type=m.AgentProfile)
            if row["queue_settings"] is not None:
                queue = msgspec.json.decode(row["queue_settings"], type=m.QueueSettings)
                queue_member = serves(queue, profile)
            team = bool(row["team_reads"]) and not profile.departments.isdisjoint(
                row["their_departments"]
            )
        return AgentFacts(
            owner=bool(row["owner"]),
            served=bool(row["last_agent"] or row["transferred"] or row["wrote"]),
            offered=bool(row["offered"]),
            offered_before=bool(row["offered_before"]),
            transfer_party=bool(row["transfer_party"]),
            queue_member=queue_member,
            waiting_or_unserved=bool(row["waiting_or_unserved"]),
            team=team,
        )
