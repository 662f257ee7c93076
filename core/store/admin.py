"""What AdminService reads: a tenant's agents, queues, skills, departments, settings and
credentials, from the record tables (``core.store.projection`` keeps them current).

Lists are keyset pages by id (``after`` the last id of the previous page, ``''`` for the
first), except credentials, which page by offset newest first. Routing state changes through
the engine, credentials through ``core.store.credentials`` and channels through
``core.store.channels``; the one write here is a skill's display name (``name_skill``), which
is not routing state: the projection writes a skill's row (its existence and create time), the
admin path that one column. PostgreSQL's refusals and outages are translated
(``translated_errors``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final

import asyncpg
import msgspec

from core.routing import model as m
from core.store.errors import translated_errors


@dataclass(frozen=True, slots=True)
class StoredAgent:
    agent_id: str
    profile: m.AgentProfile
    status: m.AgentStatus
    custom_status: str | None
    updated_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class StoredQueue:
    queue_id: str
    settings: m.QueueSettings
    updated_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class StoredSkill:
    skill: str
    display_name: str
    """Empty when none was given."""
    created_at: dt.datetime | None
    """None for skills stored before create times were."""


@dataclass(frozen=True, slots=True)
class StoredDepartment:
    department_id: str
    name: str
    created_at: dt.datetime | None
    """None for departments stored before create times were."""


@dataclass(frozen=True, slots=True)
class StoredCredential:
    """A credential as listed (its secret's hash stays in the store)."""

    credential_id: str
    role: str
    agent_id: str | None
    created_at: dt.datetime | None
    revoked_at: dt.datetime | None
    display_name: str = ""


_AGENT: Final = "SELECT agent_id, profile::text AS profile, status, custom_status, updated_at"
_QUEUE: Final = "SELECT queue_id, settings::text AS settings, updated_at"
_CREDENTIAL: Final = "SELECT credential_id, role, agent_id, created_at, revoked_at, display_name"
_SKILL: Final = "SELECT skill, display_name, created_at FROM skills"
_DEPARTMENT: Final = "SELECT department_id, name, created_at FROM departments"


def _agent(row: asyncpg.Record) -> StoredAgent:
    return StoredAgent(
        row["agent_id"],
        msgspec.json.decode(row["profile"], type=m.AgentProfile),
        m.AgentStatus(row["status"]),
        row["custom_status"],
        row["updated_at"],
    )


def _queue(row: asyncpg.Record) -> StoredQueue:
    return StoredQueue(
        row["queue_id"],
        msgspec.json.decode(row["settings"], type=m.QueueSettings),
        row["updated_at"],
    )


def _credential(row: asyncpg.Record) -> StoredCredential:
    return StoredCredential(
        row["credential_id"],
        row["role"],
        row["agent_id"],
        row["created_at"],
        row["revoked_at"],
        row["display_name"],
    )


def _skill(row: asyncpg.Record) -> StoredSkill:
    return StoredSkill(row["skill"], row["display_name"], row["created_at"])


def _department(row: asyncpg.Record) -> StoredDepartment:
    return StoredDepartment(row["department_id"], row["name"], row["created_at"])


class AdminStore:
    """One tenant's configuration as the records hold it, read for AdminService."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    # --- agents --------------------------------------------------------------------------------

    async def agent(self, tenant: str, agent_id: str) -> StoredAgent | None:
        """The agent, unless there is none or it was removed."""
        with translated_errors():
            row = await self._pool.fetchrow(
                f"{_AGENT} FROM agents WHERE tenant_id = $1 AND agent_id = $2"
                " AND removed_at IS NULL",
                tenant,
                agent_id,
            )
        return None if row is None else _agent(row)

    async def agents(self, tenant: str, after: str, limit: int) -> list[StoredAgent]:
        """Up to ``limit`` agents (not removed) whose id sorts after ``after``, by id."""
        with translated_errors():
            rows = await self._pool.fetch(
                f"{_AGENT} FROM agents WHERE tenant_id = $1 AND removed_at IS NULL"
                " AND agent_id > $2 ORDER BY agent_id LIMIT $3",
                tenant,
                after,
                limit,
            )
        return [_agent(r) for r in rows]

    # --- queues --------------------------------------------------------------------------------

    async def queue(self, tenant: str, queue_id: str) -> StoredQueue | None:
        with translated_errors():
            row = await self._pool.fetchrow(
                f"{_QUEUE} FROM queues WHERE tenant_id = $1 AND queue_id = $2",
                tenant,
                queue_id,
            )
        return None if row is None else _queue(row)

    async def queues(self, tenant: str, after: str, limit: int) -> list[StoredQueue]:
        """Up to ``limit`` queues whose id sorts after ``after``, by id."""
        with translated_errors():
            rows = await self._pool.fetch(
                f"{_QUEUE} FROM queues WHERE tenant_id = $1 AND queue_id > $2"
                " ORDER BY queue_id LIMIT $3",
                tenant,
                after,
                limit,
            )
        return [_queue(r) for r in rows]

    # --- skills --------------------------------------------------------------------------------

    async def skill(self, tenant: str, skill: str) -> StoredSkill | None:
        with translated_errors():
            row = await self._pool.fetchrow(
                f"{_SKILL} WHERE tenant_id = $1 AND skill = $2", tenant, skill
            )
        return None if row is None else _skill(row)

    async def has_skill(self, tenant: str, skill: str) -> bool:
        return await self.skill(tenant, skill) is not None

    async def skills(self, tenant: str, after: str, limit: int) -> list[StoredSkill]:
        """Up to ``limit`` skills whose id sorts after ``after``, by id."""
        with translated_errors():
            rows = await self._pool.fetch(
                f"{_SKILL} WHERE tenant_id = $1 AND skill > $2 ORDER BY skill LIMIT $3",
                tenant,
                after,
                limit,
            )
        return [_skill(r) for r in rows]

    async def name_skill(self, tenant: str, skill: str, display_name: str) -> bool:
        """Set a skill's display name; False if there is no such skill (none was changed)."""
        with translated_errors():
            status = await self._pool.execute(
                "UPDATE skills SET display_name = $3 WHERE tenant_id = $1 AND skill = $2",
                tenant,
                skill,
                display_name,
            )
        return bool(status.endswith(" 1"))

    # --- departments ---------------------------------------------------------------------------

    async def department(self, tenant: str, department_id: str) -> StoredDepartment | None:
        with translated_errors():
            row = await self._pool.fetchrow(
                f"{_DEPARTMENT} WHERE tenant_id = $1 AND department_id = $2",
                tenant,
                department_id,
            )
        return None if row is None else _department(row)

    async def departments(self, tenant: str, after: str, limit: int) -> list[StoredDepartment]:
        """Up to ``limit`` departments whose id sorts after ``after``, by id."""
        with translated_errors():
            rows = await self._pool.fetch(
                f"{_DEPARTMENT} WHERE tenant_id = $1 AND department_id > $2"
                " ORDER BY department_id LIMIT $3",
                tenant,
                after,
                limit,
            )
        return [_department(r) for r in rows]

    # --- tenant settings -----------------------------------------------------------------------

    async def tenant_settings(self, tenant: str) -> m.TenantSettings | None:
        """The tenant's routing settings; None if they were never configured (or there is no
        such tenant)."""
        with translated_errors():
            text = await self._pool.fetchval(
                "SELECT settings::text FROM tenants WHERE tenant_id = $1", tenant
            )
        if text in (None, "{}"):
            return None
        return msgspec.json.decode(text, type=m.TenantSettings)

    # --- credentials ---------------------------------------------------------------------------

    async def credential(self, tenant: str, credential_id: str) -> StoredCredential | None:
        with translated_errors():
            row = await self._pool.fetchrow(
                f"{_CREDENTIAL} FROM api_credentials WHERE tenant_id = $1 AND credential_id = $2",
                tenant,
                credential_id,
            )
        return None if row is None else _credential(row)

    async def credentials(self, tenant: str, offset: int, limit: int) -> list[StoredCredential]:
        """Up to ``limit`` credentials (revoked ones too) after the first ``offset``, newest
        first."""
        with translated_errors():
            rows = await self._pool.fetch(
                f"{_CREDENTIAL} FROM api_credentials WHERE tenant_id = $1"
                " ORDER BY created_at DESC, credential_id OFFSET $2 LIMIT $3",
                tenant,
                offset,
                limit,
            )
        return [_credential(r) for r in rows]
