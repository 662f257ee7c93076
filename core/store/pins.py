"""Pins: a caller's marks on conversations (per agent, or per credential for supervisors and
admins). Not routing state: written here alone; a conversation's deletion removes its pins."""

from __future__ import annotations

import asyncpg

from core.store.errors import translated_errors
from core.store.validation import require_name, require_text


class Pins:
    """Pin and unpin over an asyncpg pool (idempotent both ways)."""

    def __init__(self, pool: asyncpg.Pool, *, timeout: float = 10.0) -> None:
        self._pool = pool
        self._timeout = timeout

    async def pin(self, tenant: str, pinner: str, conversation_id: str) -> None:
        """Pin a stored conversation for ``pinner``; pinning twice keeps the first pin."""
        _check(tenant, pinner, conversation_id)
        with translated_errors():
            await self._pool.execute(
                """INSERT INTO conversation_pins (tenant_id, pinned_by, conversation_id)
                   VALUES ($1, $2, $3) ON CONFLICT DO NOTHING""",
                tenant,
                pinner,
                conversation_id,
                timeout=self._timeout,
            )

    async def unpin(self, tenant: str, pinner: str, conversation_id: str) -> None:
        _check(tenant, pinner, conversation_id)
        with translated_errors():
            await self._pool.execute(
                """DELETE FROM conversation_pins
                   WHERE tenant_id = $1 AND pinned_by = $2 AND conversation_id = $3""",
                tenant,
                pinner,
                conversation_id,
                timeout=self._timeout,
            )


def _check(tenant: str, pinner: str, conversation_id: str) -> None:
    require_name("tenant", tenant)
    require_text("pinned_by", pinner, min_len=1, max_len=200)
    require_text("conversation_id", conversation_id, min_len=1, max_len=200)
