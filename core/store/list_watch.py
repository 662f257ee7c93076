"""The reads behind a live console list (``RecordService.WatchConversationLists``).

- ``start``: where the watch begins, read in one repeatable-read snapshot, so every figure is
  as of the same event-log position: the tenant's last event, its configuration (agents,
  queues, the team-reads setting), the caller's pins and the counts of their lists. The shard
  writes the events and the record rows they change in one transaction, so the counts are
  exactly those the events up to that position leave.
- ``histories``: the list-relevant events of some conversations up to a position each, from
  which the watch folds what it did not see live (``core.api.list_facts``).
- ``events``: the tenant's events between two positions (a resume's catch-up).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import asyncpg

from core.routing import events as ev
from core.store import codec
from core.store.conversation_lists import (
    Configuration,
    Counts,
    Scope,
    agent_scope_of,
    read_configuration,
    read_counts,
)
from core.store.errors import translated_errors

_HISTORY_SQL: Final = """
SELECT seq, type, payload::text AS payload FROM events
WHERE tenant_id = $1 AND payload ? 'conversation_id'
  AND (payload ->> 'conversation_id') = ANY($2::text[])
  AND seq <= $3 AND type = ANY($4::text[])
  AND (type <> 'MessageRecorded' OR payload ->> 'sender' = 'agent')
ORDER BY seq
"""


@dataclass(frozen=True, slots=True)
class WatchStart:
    """Everything a watch starts from, as of event ``position``."""

    position: int
    configuration: Configuration
    pins: frozenset[str]
    """The conversations the caller pinned."""
    counts: Counts


class ListWatchReads:
    """The watch's reads over an asyncpg pool."""

    def __init__(self, pool: asyncpg.Pool, *, timeout: float = 10.0) -> None:
        self._pool = pool
        self._timeout = timeout

    async def start(
        self,
        tenant: str,
        *,
        agent_id: str | None,
        pinner: str,
        departments: Sequence[str],
        closed_since: dt.datetime,
    ) -> WatchStart:
        """The position, configuration, pins and counts, all as of one moment."""
        timeout = self._timeout
        with translated_errors():
            async with (
                self._pool.acquire(timeout=timeout) as conn,
                conn.transaction(isolation="repeatable_read", readonly=True),
            ):
                position = await conn.fetchval(
                    "SELECT last_seq FROM tenants WHERE tenant_id = $1", tenant, timeout=timeout
                )
                configuration = await read_configuration(conn, tenant, timeout=timeout)
                pins = await conn.fetch(
                    "SELECT conversation_id FROM conversation_pins"
                    " WHERE tenant_id = $1 AND pinned_by = $2",
                    tenant,
                    pinner,
                    timeout=timeout,
                )
                scope = Scope(tenant=tenant, pinner=pinner)
                if agent_id is not None:
                    mine = agent_scope_of(
                        agent_id,
                        configuration.agents,
                        configuration.queues.values(),
                        configuration.team_reads,
                    )
                    scope = Scope(
                        tenant=tenant,
                        pinner=pinner,
                        agent_id=agent_id,
                        queues=mine.queues,
                        team=mine.team,
                    )
                counts = await read_counts(conn, scope, closed_since, departments, timeout=timeout)
        return WatchStart(
            position=int(position or 0),
            configuration=configuration,
            pins=frozenset(r["conversation_id"] for r in pins),
            counts=counts,
        )

    async def histories(
        self, tenant: str, bounds: Mapping[str, int], kinds: Sequence[str]
    ) -> dict[str, list[ev.Event]]:
        """Per conversation, its events of the types ``kinds`` (of ``MessageRecorded``, only
        agents') with positions up to its bound, in order; one statement for all."""
        if not bounds:
            return {}
        with translated_errors():
            rows = await self._pool.fetch(
                _HISTORY_SQL,
                tenant,
                list(bounds),
                max(bounds.values()),
                list(kinds),
                timeout=self._timeout,
            )
        found: dict[str, list[ev.Event]] = {}
        for row in rows:
            event = codec.decode(row["type"], row["payload"])
            conversation_id: str = getattr(event, "conversation_id", "")
            if row["seq"] <= bounds.get(conversation_id, -1):
                found.setdefault(conversation_id, []).append(event)
        return found

    async def events(self, tenant: str, after: int, up_to: int) -> list[tuple[int, ev.Event]]:
        """The tenant's events after position ``after`` up to ``up_to``, with their positions."""
        with translated_errors():
            rows = await self._pool.fetch(
                "SELECT seq, type, payload::text AS payload FROM events"
                " WHERE tenant_id = $1 AND seq > $2 AND seq <= $3 ORDER BY seq",
                tenant,
                after,
                up_to,
                timeout=self._timeout,
            )
        return [(int(r["seq"]), codec.decode(r["type"], r["payload"])) for r in rows]
