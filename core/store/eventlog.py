"""The event log: group-committed, epoch-fenced appends, and loading a tenant's history back.

``append`` returns only after the batch holding its events has committed, so a caller that
acknowledges after ``append`` never acknowledges anything that is not stored. Appends that arrive
while a batch is being written wait for the next one: under load, one transaction (one COPY and
a few batched statements) carries the events of many commands.

Each shard incarnation ``claim``s its tenants, which bumps their epoch; an append carrying an
older epoch is refused with ``StaleEpoch`` and writes nothing. The fence is the conditional
``UPDATE tenants ... WHERE epoch = $epoch`` that also hands out the sequence numbers, so a
claim and an append cannot interleave.

Appends of one tenant and epoch build on each other (a shard executes the next batch while the
previous one commits), so once one fails, every later append of that tenant and epoch is
refused with ``StaleEpoch`` too, queued or not: the store never holds events that followed
events it does not hold.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from core.routing import events as ev
from core.store import bot_runs, codec
from core.store import rollups as rollup_rows
from core.store.errors import PG_CONNECTION_ERRORS, StaleEpoch, StoreUnavailable
from core.store.projection import MESSAGE_COLUMNS, Projection, Row, as_json, ts


@dataclass(frozen=True, slots=True)
class EventLogStatistics:
    commits: int
    appends: int
    events: int

    @property
    def events_per_commit(self) -> float:
        return self.events / self.commits if self.commits else 0.0


@dataclass(slots=True)
class _Append:
    tenant: str
    epoch: int
    rows: list[tuple[str, str, float]]
    """(type, payload, at) of each event, in order."""
    projection: Projection
    done: asyncio.Future[int] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class EventLog:
    """Group commit over an asyncpg pool. One per process; safe for many concurrent callers."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        max_batch_events: int = 2000,
        linger: float = 0.0,
        timeout: float = 5.0,
    ) -> None:
        self._pool = pool
        self._max_batch = max_batch_events
        self._linger = linger
        """Extra seconds to wait for company before writing a batch (0: only what queued up
        while the previous batch was being written)."""
        self._timeout = timeout
        self._queue: deque[_Append] = deque()
        self._writer: asyncio.Task[None] | None = None
        self._commits = self._appends = self._events = 0
        self._failed_epochs: dict[str, int] = {}
        """Each tenant's newest epoch with a failed append: appends of it or older are refused."""

    async def claim(self, tenant: str) -> int:
        """Start a new incarnation for ``tenant``: returns its epoch, fencing off older ones."""
        try:
            async with self._pool.acquire(timeout=self._timeout) as conn:
                epoch: int = await conn.fetchval(
                    """INSERT INTO tenants (tenant_id, epoch) VALUES ($1, 1)
                       ON CONFLICT (tenant_id) DO UPDATE SET epoch = tenants.epoch + 1
                       RETURNING epoch""",
                    tenant,
                    timeout=self._timeout,
                )
        except PG_CONNECTION_ERRORS as exc:
            raise StoreUnavailable(f"PostgreSQL is unavailable: {exc}") from exc
        return epoch

    async def append(
        self, tenant: str, epoch: int, events: Sequence[ev.Event], projection: Projection
    ) -> int:
        """Store the events (and their record rows) durably; return the last one's sequence.

        ``StoreUnavailable`` means the outcome is unknown (the connection may have dropped after
        COMMIT was sent): the caller rebuilds from the store before going on. A caller that
        stops waiting does not withdraw its events: they are written with their batch."""
        if epoch <= self._failed_epochs.get(tenant, 0):
            raise _after_failure(tenant, epoch)
        rows = [(*codec.encode(e), e.at) for e in events]
        item = _Append(tenant, epoch, rows, projection)
        self._queue.append(item)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_batches())
        return await item.done

    async def load(self, tenant: str, after: int = 0, up_to: int | None = None) -> list[ev.Event]:
        """The tenant's events after sequence ``after`` (up to ``up_to``), in order."""
        try:
            async with self._pool.acquire(timeout=self._timeout) as conn:
                records = await conn.fetch(
                    "SELECT type, payload FROM events WHERE tenant_id = $1 AND seq > $2"
                    " AND seq <= $3 ORDER BY seq",
                    tenant,
                    after,
                    up_to if up_to is not None else 2**62,
                )
        except PG_CONNECTION_ERRORS as exc:
            raise StoreUnavailable(f"PostgreSQL is unavailable: {exc}") from exc
        return [codec.decode(r["type"], r["payload"]) for r in records]

    async def last_sequences(self) -> dict[str, int]:
        """Every tenant's newest event sequence."""
        try:
            async with self._pool.acquire(timeout=self._timeout) as conn:
                rows = await conn.fetch(
                    "SELECT tenant_id, last_seq FROM tenants", timeout=self._timeout
                )
        except PG_CONNECTION_ERRORS as exc:
            raise StoreUnavailable(f"PostgreSQL is unavailable: {exc}") from exc
        return {r["tenant_id"]: int(r["last_seq"]) for r in rows}

    def statistics(self) -> EventLogStatistics:
        """Committed transactions, appends and events so far."""
        return EventLogStatistics(self._commits, self._appends, self._events)

    def __repr__(self) -> str:
        queued = len(self._queue)
        return f"<EventLog {self._events} events in {self._commits} commits, {queued} queued>"

    async def close(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer

    # --- the writer -----------------------------------------------------------------------

    async def _write_batches(self) -> None:
        while self._queue:
            if self._linger:
                await asyncio.sleep(self._linger)
            batch: list[_Append] = []
            size = 0
            while self._queue and (not batch or size + len(self._queue[0].rows) <= self._max_batch):
                item = self._queue.popleft()
                batch.append(item)
                size += len(item.rows)
            await self._write(batch)

    async def _write(self, batch: list[_Append]) -> None:
        newest: dict[str, int] = {}
        for item in batch:
            newest[item.tenant] = max(item.epoch, newest.get(item.tenant, 0))
        live = []
        for item in batch:
            if item.epoch <= self._failed_epochs.get(item.tenant, 0):
                self._fail(item, _after_failure(item.tenant, item.epoch))
            elif item.epoch != newest[item.tenant]:
                self._fail(item, StaleEpoch(f"tenant {item.tenant!r}: epoch {item.epoch} is stale"))
            else:
                live.append(item)
        if not live:
            return
        try:
            try:
                last = await self._commit(live)
            except _Stale as stale:  # rolled back: the current tenants go again, alone
                current = [item for item in live if item.tenant in stale.claimed]
                last = await self._commit(current) if current else {}
        except PG_CONNECTION_ERRORS as exc:
            for item in live:
                self._fail(item, StoreUnavailable(f"PostgreSQL is unavailable: {exc}"))
            return
        except Exception as exc:  # a bug or a constraint: nobody in the batch is acknowledged
            for item in live:
                self._fail(item, exc)
            return
        stored = [item for item in live if item.tenant in last]
        if stored:
            self._commits += 1
            self._appends += len(stored)
            self._events += sum(len(item.rows) for item in stored)
        for item in live:
            if item.tenant not in last:
                self._fail(
                    item, StaleEpoch(f"tenant {item.tenant!r}: epoch {item.epoch} is not current")
                )
        # Sequences run per tenant in batch order: count back from each tenant's new last.
        remaining = dict(last)
        for item in reversed(live):
            if item.tenant in last:
                if not item.done.done():  # a caller may have stopped waiting; still stored
                    item.done.set_result(remaining[item.tenant])
                remaining[item.tenant] -= len(item.rows)

    def _fail(self, item: _Append, error: Exception) -> None:
        """Refuse the append, and every later one of its tenant and epoch."""
        self._failed_epochs[item.tenant] = max(item.epoch, self._failed_epochs.get(item.tenant, 0))
        if not item.done.done():
            item.done.set_exception(error)

    async def _commit(self, batch: list[_Append]) -> dict[str, int]:
        counts: dict[str, int] = {}
        epochs: dict[str, int] = {}
        for item in batch:
            counts[item.tenant] = counts.get(item.tenant, 0) + len(item.rows)
            epochs[item.tenant] = item.epoch
        tenants = list(counts)
        # Each event's offset within its tenant's share of the batch (1, 2, ...): the statement
        # turns it into a sequence number once the fence has handed out the tenant's range.
        columns: tuple[list[object], ...] = ([], [], [], [], [], [])
        offsets = dict.fromkeys(tenants, 0)
        for item in batch:
            for type_name, payload, at in item.rows:
                offsets[item.tenant] += 1
                for column, value in zip(
                    columns,
                    (item.tenant, offsets[item.tenant], item.epoch, ts(at), type_name, payload),
                    strict=True,
                ):
                    column.append(value)
        projection = Projection()
        for item in batch:
            projection.extend(item.projection)
        # The conversations' and messages' rows ride in the same statement as the events.
        conversations = _conversation_columns(projection.conversations)
        messages = [list(column) for column in zip(*projection.messages, strict=True)]
        deltas = {t: d for t, d in projection.rollups.items() if d}
        rollups = [rollup_rows.payload(deltas)] if deltas else []
        projection.conversations, projection.messages = [], []
        async with self._pool.acquire(timeout=self._timeout) as conn, conn.transaction():
            claimed = await conn.fetch(
                _append_sql(bool(conversations), bool(messages)),
                tenants,
                [epochs[t] for t in tenants],
                [counts[t] for t in tenants],
                *columns,
                *conversations,
                *messages,
                timeout=self._timeout,
            )
            last = {r["tenant_id"]: r["last_seq"] for r in claimed}
            if len(last) < len(tenants):  # a stale epoch: keep the others' events only
                raise _Stale(last)
            if rollups:  # the reports' facts, once the fence held (core.store.rollups)
                await conn.execute(rollup_rows.APPLY, *rollups, timeout=self._timeout)
                marks = _reports_marks(batch, last)
                await conn.executemany(rollup_rows.MARK, marks.items(), timeout=self._timeout)
            await _write_projection(conn, projection, self._timeout)
        return last


_CLAIM_AND_EVENTS = """
WITH claimed AS (
    UPDATE tenants t SET last_seq = t.last_seq + v.n
    FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS v(tenant_id, epoch, n)
    WHERE t.tenant_id = v.tenant_id AND t.epoch = v.epoch
    RETURNING t.tenant_id, t.last_seq, v.n
), stored AS (
    INSERT INTO events (tenant_id, seq, epoch, at, type, payload)
    SELECT e.tenant_id, c.last_seq - c.n + e.offset_in_batch, e.epoch, e.at, e.type,
           e.payload::jsonb
    FROM unnest($4::text[], $5::bigint[], $6::bigint[], $7::timestamptz[], $8::text[],
                $9::text[]) AS e(tenant_id, offset_in_batch, epoch, at, type, payload)
    JOIN claimed c ON c.tenant_id = e.tenant_id
)"""

_CONVERSATIONS_CTE = """, conversations_written AS (
    INSERT INTO conversations (tenant_id, conversation_id, channel, customer_id, state, queue_id,
        owner_agent_id, last_agent_id, priority, outcome, close_reason, tags, created_at,
        queued_at, assigned_at, first_response_at, ended_at, closed_at, updated_at, region,
        language, reference)
    SELECT r.tenant_id, r.conversation_id, r.channel, r.customer_id, r.state, r.queue_id,
        r.owner_agent_id, r.last_agent_id, r.priority, r.outcome, r.close_reason,
        ARRAY(SELECT jsonb_array_elements_text(r.tags)), r.created_at, r.queued_at,
        r.assigned_at, r.first_response_at, r.ended_at, r.closed_at, r.updated_at, r.region,
        r.language, r.reference
    FROM unnest(${0}::text[], ${1}::text[], ${2}::text[], ${3}::text[], ${4}::text[],
                ${5}::text[], ${6}::text[], ${7}::text[], ${8}::int[], ${9}::text[],
                ${10}::text[], ${11}::jsonb[], ${12}::timestamptz[], ${13}::timestamptz[],
                ${14}::timestamptz[], ${15}::timestamptz[], ${16}::timestamptz[],
                ${17}::timestamptz[], ${18}::timestamptz[], ${19}::text[], ${20}::text[],
                ${21}::text[])
        AS r(tenant_id, conversation_id, channel, customer_id, state, queue_id, owner_agent_id,
             last_agent_id, priority, outcome, close_reason, tags, created_at, queued_at,
             assigned_at, first_response_at, ended_at, closed_at, updated_at, region, language,
             reference)
    JOIN claimed c ON c.tenant_id = r.tenant_id
    ON CONFLICT (tenant_id, conversation_id) DO UPDATE SET
        state = EXCLUDED.state, queue_id = EXCLUDED.queue_id,
        owner_agent_id = EXCLUDED.owner_agent_id, last_agent_id = EXCLUDED.last_agent_id,
        priority = EXCLUDED.priority, outcome = EXCLUDED.outcome,
        close_reason = EXCLUDED.close_reason, tags = EXCLUDED.tags,
        queued_at = EXCLUDED.queued_at, assigned_at = EXCLUDED.assigned_at,
        first_response_at = EXCLUDED.first_response_at, ended_at = EXCLUDED.ended_at,
        closed_at = EXCLUDED.closed_at, updated_at = EXCLUDED.updated_at,
        region = EXCLUDED.region, language = EXCLUDED.language
)"""

_MESSAGES_CTE = """, messages_written AS (
    INSERT INTO messages (tenant_id, message_id, conversation_id, channel, direction, sender,
        agent_id, content, attachments, provider_message_id, created_at, choices,
        selected_option_id, canned_reply_id)
    SELECT m.tenant_id, m.message_id, m.conversation_id, m.channel, m.direction, m.sender,
        m.agent_id, m.content, m.attachments::jsonb, m.provider_message_id, m.created_at,
        m.choices::jsonb, m.selected_option_id, m.canned_reply_id
    FROM unnest(${0}::text[], ${1}::bigint[], ${2}::text[], ${3}::text[], ${4}::text[],
                ${5}::text[], ${6}::text[], ${7}::text[], ${8}::text[], ${9}::text[],
                ${10}::timestamptz[], ${11}::text[], ${12}::text[], ${13}::text[])
        AS m(tenant_id, message_id, conversation_id, channel, direction, sender, agent_id,
             content, attachments, provider_message_id, created_at, choices,
             selected_option_id, canned_reply_id)
    JOIN claimed c ON c.tenant_id = m.tenant_id
)"""


@functools.cache
def _append_sql(conversations: bool, messages: bool) -> str:
    """The epoch fence, the sequence numbers, the events and (when the batch has them) the
    conversations' and messages' rows in one statement: one round trip for the hot tables."""
    sql = _CLAIM_AND_EVENTS
    first = 10  # the parameter after the nine of the claim and the events
    for present, cte, count in (
        (conversations, _CONVERSATIONS_CTE, 22),
        (messages, _MESSAGES_CTE, len(MESSAGE_COLUMNS)),
    ):
        if present:
            sql += cte.format(*range(first, first + count))
            first += count
    return sql + "\nSELECT tenant_id, last_seq FROM claimed"


def _conversation_columns(rows: list[Row]) -> list[list[Any]]:
    """Conversation rows as columns for ``unnest``; the newest row of a conversation wins."""
    latest = {(row[0], row[1]): row for row in rows}
    columns = [list(column) for column in zip(*latest.values(), strict=True)]
    if columns:
        columns[11] = [as_json(tags) for tags in columns[11]]
    return columns


def _reports_marks(batch: list[_Append], last: dict[str, int]) -> dict[str, int]:
    """Each tenant's last event whose reports' facts this batch writes: the last event of
    its latest append carrying facts (an append carries the tenant's facts held so far)."""
    marks: dict[str, int] = {}
    remaining = dict(last)
    for item in reversed(batch):
        if item.tenant in remaining:
            if item.projection.rollups.get(item.tenant) and item.tenant not in marks:
                marks[item.tenant] = remaining[item.tenant]
            remaining[item.tenant] -= len(item.rows)
    return marks


class _Stale(Exception):
    """Some tenants of a batch were claimed by a newer incarnation: roll back and go again
    without them (``claimed`` names the tenants whose epoch was current)."""

    def __init__(self, claimed: dict[str, int]) -> None:
        super().__init__("stale epoch in batch")
        self.claimed = claimed


def _after_failure(tenant: str, epoch: int) -> StaleEpoch:
    return StaleEpoch(f"tenant {tenant!r}: an earlier append of epoch {epoch} failed")


_PROJECTION_SQL: list[tuple[str, str]] = [
    (
        "tenants",
        "UPDATE tenants SET settings = $2::jsonb WHERE tenant_id = $1",
    ),
    (
        "skills",
        "INSERT INTO skills (tenant_id, skill) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    ),
    (
        "departments",
        """INSERT INTO departments (tenant_id, department_id, name) VALUES ($1, $2, $3)
           ON CONFLICT (tenant_id, department_id) DO UPDATE SET name = EXCLUDED.name""",
    ),
    (
        "agents",
        """INSERT INTO agents (tenant_id, agent_id, profile, status, custom_status, removed_at,
                               updated_at)
           VALUES ($1, $2, $3::jsonb, $4, $5, $6, $7)
           ON CONFLICT (tenant_id, agent_id) DO UPDATE SET
               profile = CASE WHEN EXCLUDED.removed_at IS NULL THEN EXCLUDED.profile
                              ELSE agents.profile END,
               status = EXCLUDED.status, custom_status = EXCLUDED.custom_status,
               removed_at = EXCLUDED.removed_at, updated_at = EXCLUDED.updated_at""",
    ),
    (
        "queues",
        """INSERT INTO queues (tenant_id, queue_id, settings, updated_at)
           VALUES ($1, $2, $3::jsonb, $4)
           ON CONFLICT (tenant_id, queue_id) DO UPDATE SET
               settings = EXCLUDED.settings, updated_at = EXCLUDED.updated_at""",
    ),
    (
        "sessions",
        """WITH ended AS (
               UPDATE agent_sessions SET ended_at = $5
               WHERE tenant_id = $1 AND agent_id = $2 AND ended_at IS NULL AND started_at < $5)
           INSERT INTO agent_sessions (tenant_id, agent_id, status, custom_status, started_at,
                                       client_address)
           VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (tenant_id, agent_id, started_at) DO UPDATE SET
               status = EXCLUDED.status, custom_status = EXCLUDED.custom_status,
               client_address = EXCLUDED.client_address""",
    ),
    (
        "ratings",
        """INSERT INTO conversation_ratings (tenant_id, conversation_id, channel, queue_id,
                                             agent_id, score, comment, rated_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
           ON CONFLICT (tenant_id, conversation_id) DO NOTHING""",
    ),
    (
        "visits",
        """INSERT INTO conversation_visits (tenant_id, conversation_id, channel, page,
                                            referrer_host, region, started_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7)
           ON CONFLICT (tenant_id, conversation_id) DO NOTHING""",
    ),
]


_DELETE_SQL: dict[str, str] = {
    "skills": "DELETE FROM skills WHERE tenant_id = $1 AND skill = $2",
    "departments": "DELETE FROM departments WHERE tenant_id = $1 AND department_id = $2",
    "queues": "DELETE FROM queues WHERE tenant_id = $1 AND queue_id = $2",
}


_HISTORY_SQL: dict[str, tuple[str, str]] = {
    "offers": (
        """UPDATE offers SET outcome = $3, resolved_at = $4
           WHERE tenant_id = $1 AND offer_id = $2 AND outcome IS NULL""",
        """INSERT INTO offers (tenant_id, offer_id, conversation_id, agent_ids, broadcast,
               decision, made_at, deadline, outcome, resolved_at)
           VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9, $10)""",
    ),
    "transfers": (
        """UPDATE transfers SET outcome = $3, resolved_at = $4
           WHERE tenant_id = $1 AND transfer_id = $2 AND outcome IS NULL""",
        """INSERT INTO transfers (tenant_id, transfer_id, conversation_id, from_agent, target,
               target_id, note, requested_at, deadline, outcome, resolved_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)""",
    ),
}


async def _write_projection(
    conn: asyncpg.Connection, projection: Projection, timeout: float
) -> None:
    """Write the record rows other than conversations and messages (those ride with the
    events, see ``_append_sql``), one batched statement per kind, in dependency order; for
    offers and transfers, resolutions of older entries before new entries (``History``)."""
    for table, key in projection.removed:
        await conn.execute(_DELETE_SQL[table], *key, timeout=timeout)
    for name, sql in _PROJECTION_SQL:
        rows = getattr(projection, name)
        if rows:
            await conn.executemany(sql, rows, timeout=timeout)
    for name, (update, insert) in _HISTORY_SQL.items():
        history = getattr(projection, name)
        for sql, rows in ((update, history.updates()), (insert, history.inserts())):
            if rows:
                await conn.executemany(sql, rows, timeout=timeout)
    if projection.bots:
        await bot_runs.write(conn, projection.bots, timeout)
