"""Reads of what the shards wrote, for the front door: conversations, messages, agents, offers
and transfers as stored. Plain rows in, plain records out; the servicers hold no SQL.

These are for answers that are not on the command path (Get/List calls, a duplicate's
original, a stream's opening state); commands answer from their outcome instead.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import asyncpg

from core.store.errors import translated_errors
from core.store.records import MessageRecord, message_from_row

CONVERSATION_SQL: Final = """
SELECT c.conversation_id, c.channel, c.customer_id, c.state, c.queue_id, c.owner_agent_id,
       c.last_agent_id, c.priority, c.outcome, c.close_reason, c.tags, c.created_at, c.queued_at,
       c.assigned_at, c.first_response_at, c.ended_at, c.closed_at, c.region, c.language,
       cu.name AS customer_name, cu.phone AS customer_phone, cu.email AS customer_email,
       (SELECT i.external_id FROM customer_identities i
        WHERE i.tenant_id = c.tenant_id AND i.channel = c.channel
          AND i.customer_id = c.customer_id LIMIT 1) AS external_id
FROM conversations c
LEFT JOIN customers cu ON cu.tenant_id = c.tenant_id AND cu.customer_id = c.customer_id
"""

MESSAGE_SQL: Final = """
SELECT message_id, conversation_id, channel, direction, sender, agent_id, content, attachments,
       provider_message_id, created_at, choices, selected_option_id, canned_reply_id
FROM messages"""


_DEPTH_SQL: Final = """
SELECT tenant_id, queue_id, count(*) AS waiting,
       coalesce(extract(epoch FROM now() - min(queued_at)), 0) AS longest
FROM conversations
WHERE state IN ('queued', 'offered') AND queue_id IS NOT NULL
GROUP BY tenant_id, queue_id"""


async def queue_depths(
    pool: asyncpg.Pool, *, timeout: float = 5.0
) -> dict[tuple[str, str], tuple[int, float]]:
    """(tenant, queue) -> (conversations waiting, seconds the longest has waited)."""
    rows = await pool.fetch(_DEPTH_SQL, timeout=timeout)
    return {(r["tenant_id"], r["queue_id"]): (int(r["waiting"]), float(r["longest"])) for r in rows}


@dataclass(frozen=True, slots=True)
class AgentRow:
    agent_id: str
    profile: dict[str, Any]
    status: str
    custom_status: str | None
    updated_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class TransferRow:
    transfer_id: str
    conversation_id: str
    from_agent: str
    target: str
    target_id: str
    note: str
    requested_at: dt.datetime
    deadline: dt.datetime | None
    outcome: str | None


@dataclass(frozen=True, slots=True)
class OpenOffer:
    offer_id: str
    conversation_id: str
    broadcast: bool
    deadline: dt.datetime


class Reads:
    """The front door's reads over a pool. Each is one statement."""

    def __init__(self, pool: asyncpg.Pool, *, timeout: float = 10.0) -> None:
        self._pool = pool
        self._timeout = timeout

    async def _row(self, sql: str, *args: object) -> asyncpg.Record | None:
        with translated_errors():
            return await self._pool.fetchrow(sql, *args, timeout=self._timeout)

    async def _rows(self, sql: str, *args: object) -> list[asyncpg.Record]:
        with translated_errors():
            return list(await self._pool.fetch(sql, *args, timeout=self._timeout))

    # --- conversations ----------------------------------------------------------------------

    async def conversation(self, tenant: str, conversation_id: str) -> asyncpg.Record | None:
        """A row of ``CONVERSATION_SQL``, or None."""
        return await self._row(
            CONVERSATION_SQL + " WHERE c.tenant_id = $1 AND c.conversation_id = $2",
            tenant,
            conversation_id,
        )

    async def agent_conversations(
        self,
        tenant: str,
        agent_id: str,
        states: Sequence[str],
        size: int,
        after: tuple[dt.datetime, str] | None,
    ) -> list[asyncpg.Record]:
        """Conversations ``agent_id`` last served in ``states``, most recently assigned first,
        up to ``size`` rows after the keyset position ``after``."""
        args: list[object] = [tenant, agent_id, list(states)]
        where = "c.tenant_id = $1 AND c.last_agent_id = $2 AND c.state = ANY($3::text[])"
        if after is not None:
            args += list(after)
            where += " AND (coalesce(c.assigned_at, c.created_at), c.conversation_id) < ($4, $5)"
        return await self._rows(
            f"{CONVERSATION_SQL} WHERE {where}"
            " ORDER BY coalesce(c.assigned_at, c.created_at) DESC, c.conversation_id DESC"
            f" LIMIT {int(size)}",
            *args,
        )

    async def target(self, tenant: str, conversation_id: str) -> tuple[str, str] | None:
        """(channel, the customer's external id there) of a conversation."""
        row = await self._row(
            """SELECT c.channel, i.external_id FROM conversations c
               LEFT JOIN customer_identities i ON i.tenant_id = c.tenant_id
                 AND i.channel = c.channel AND i.customer_id = c.customer_id
               WHERE c.tenant_id = $1 AND c.conversation_id = $2 LIMIT 1""",
            tenant,
            conversation_id,
        )
        return None if row is None else (row["channel"], row["external_id"] or "")

    # --- messages -------------------------------------------------------------------------------

    async def message(self, tenant: str, message_id: int) -> MessageRecord | None:
        row = await self._row(
            MESSAGE_SQL + " WHERE tenant_id = $1 AND message_id = $2", tenant, message_id
        )
        return None if row is None else message_from_row(row)

    async def message_by_key(self, tenant: str, channel: str, key: str) -> MessageRecord | None:
        """The message stored with idempotency key ``key`` on ``channel``."""
        row = await self._row(
            MESSAGE_SQL + " WHERE tenant_id = $1 AND channel = $2 AND provider_message_id = $3",
            tenant,
            channel,
            key,
        )
        return None if row is None else message_from_row(row)

    async def first_customer_message(
        self, tenant: str, conversation_id: str
    ) -> MessageRecord | None:
        row = await self._row(
            MESSAGE_SQL + " WHERE tenant_id = $1 AND conversation_id = $2 AND sender = 'customer'"
            " ORDER BY message_id LIMIT 1",
            tenant,
            conversation_id,
        )
        return None if row is None else message_from_row(row)

    async def messages_after(
        self, tenant: str, conversation_id: str, after: int, limit: int
    ) -> list[MessageRecord]:
        """Up to ``limit`` of a conversation's messages numbered above ``after``, oldest first
        (a keyset page: one index range scan, however long the transcript)."""
        rows = await self._rows(
            MESSAGE_SQL + " WHERE tenant_id = $1 AND conversation_id = $2 AND message_id > $3"
            " ORDER BY message_id LIMIT $4",
            tenant,
            conversation_id,
            after,
            limit,
        )
        return [message_from_row(r) for r in rows]

    # --- agents, offers, transfers -------------------------------------------------------------

    async def agent(self, tenant: str, agent_id: str) -> AgentRow | None:
        row = await self._row(
            """SELECT agent_id, profile, status, custom_status, updated_at FROM agents
               WHERE tenant_id = $1 AND agent_id = $2 AND removed_at IS NULL""",
            tenant,
            agent_id,
        )
        if row is None:
            return None
        return AgentRow(
            row["agent_id"],
            json.loads(row["profile"]),
            row["status"],
            row["custom_status"],
            row["updated_at"],
        )

    async def offer_exists(self, tenant: str, offer_id: str) -> bool:
        row = await self._row(
            "SELECT 1 FROM offers WHERE tenant_id = $1 AND offer_id = $2", tenant, offer_id
        )
        return row is not None

    async def open_offers(self, tenant: str, agent_id: str) -> list[OpenOffer]:
        """Offers made to ``agent_id`` that are still live, oldest first."""
        rows = await self._rows(
            """SELECT offer_id, conversation_id, broadcast, deadline FROM offers
               WHERE tenant_id = $1 AND outcome IS NULL AND $2 = ANY(agent_ids)
               ORDER BY made_at""",
            tenant,
            agent_id,
        )
        return [
            OpenOffer(r["offer_id"], r["conversation_id"], r["broadcast"], r["deadline"])
            for r in rows
        ]

    async def transfer(self, tenant: str, transfer_id: str) -> TransferRow | None:
        row = await self._row(
            """SELECT transfer_id, conversation_id, from_agent, target, target_id, note,
                      requested_at, deadline, outcome
               FROM transfers WHERE tenant_id = $1 AND transfer_id = $2""",
            tenant,
            transfer_id,
        )
        return None if row is None else TransferRow(*row.values())
