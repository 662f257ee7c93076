"""What reports read besides the rollups: the tenant's zone, which ids exist, display names."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeAlias

import asyncpg

Pool: TypeAlias = asyncpg.Pool | asyncpg.Connection


async def time_zone(pool: Pool, tenant: str) -> str | None:
    """The zone reports count in (``TenantSettings.time_zone``, else the default queue's
    business hours' zone, else UTC), as the rollups' fold chooses it; None: no such tenant."""
    row = await pool.fetchrow(
        """SELECT t.settings->>'time_zone' AS own, q.settings->'hours'->>'timezone' AS queue
           FROM tenants t
           LEFT JOIN queues q
             ON q.tenant_id = t.tenant_id AND q.queue_id = t.settings->>'default_queue'
           WHERE t.tenant_id = $1""",
        tenant,
    )
    if row is None:
        return None
    return row["own"] or row["queue"] or "UTC"


@dataclass(frozen=True, slots=True)
class Unknown:
    """The ids of a filter that the tenant does not have."""

    queues: tuple[str, ...] = ()
    agents: tuple[str, ...] = ()
    departments: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.queues or self.agents or self.departments)


async def unknown(
    pool: Pool,
    tenant: str,
    queues: Sequence[str] = (),
    agents: Sequence[str] = (),
    departments: Sequence[str] = (),
) -> Unknown:
    """Which of these ids do not exist in ``tenant`` (another tenant's are unknown here)."""
    found: dict[str, set[str]] = {"queues": set(), "agents": set(), "departments": set()}
    if queues or agents or departments:
        rows = await pool.fetch(
            """SELECT 'queues' AS kind, queue_id AS id FROM queues
                 WHERE tenant_id = $1 AND queue_id = ANY($2::text[])
               UNION ALL
               SELECT 'agents', agent_id FROM agents
                 WHERE tenant_id = $1 AND agent_id = ANY($3::text[])
               UNION ALL
               SELECT 'departments', department_id FROM departments
                 WHERE tenant_id = $1 AND department_id = ANY($4::text[])""",
            tenant,
            list(queues),
            list(agents),
            list(departments),
        )
        for r in rows:
            found[r["kind"]].add(r["id"])
    return Unknown(
        tuple(q for q in queues if q not in found["queues"]),
        tuple(a for a in agents if a not in found["agents"]),
        tuple(d for d in departments if d not in found["departments"]),
    )


async def department_agents(pool: Pool, tenant: str, department: str) -> list[str]:
    """The agents who are members of ``department`` now."""
    rows = await pool.fetch(
        "SELECT agent_id FROM agents WHERE tenant_id = $1 AND profile->'departments' ? $2"
        " ORDER BY agent_id",
        tenant,
        department,
    )
    return [r["agent_id"] for r in rows]


@dataclass(frozen=True, slots=True)
class Names:
    agents: dict[str, str]
    queues: dict[str, str]


async def names(pool: Pool, tenant: str) -> Names:
    """Display names of the tenant's agents and queues (an empty name is left out)."""
    rows = await pool.fetch(
        """SELECT 'agent' AS kind, agent_id AS id, profile->>'name' AS name FROM agents
             WHERE tenant_id = $1
           UNION ALL
           SELECT 'queue', queue_id, settings->>'name' FROM queues WHERE tenant_id = $1""",
        tenant,
    )
    agents = {r["id"]: r["name"] for r in rows if r["kind"] == "agent" and r["name"]}
    queues = {r["id"]: r["name"] for r in rows if r["kind"] == "queue" and r["name"]}
    return Names(agents, queues)
