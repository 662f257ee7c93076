"""Bots' flows as the store keeps them (migration 0021): the engine's bot events projected, in
the same transaction as the event log, into

- ``bot_runs``: one row per flow started in a conversation (its bot, version, trigger and
  customer), finished by its hand-off (with the reason and the fields collected) or its end;
  ``stats`` counts them per bot;
- the customer's record: field values a flow collected or set (validated by the interpreter
  against the field's type) and its tag changes. A value of a unique field that another
  customer holds is not written (it stays in the flow and its hand-off).

``BotRows.add`` is pure (the projection builds it without I/O); ``write`` runs inside the event
log's transaction.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import asyncpg
import structlog

from core.bots.fields import BUILT_IN
from core.bots.flow import FieldValue
from core.routing import events as ev
from core.store.customer_fields import FieldDef, unique_text
from core.store.errors import translated_errors

log = structlog.get_logger(__name__)

Key = tuple[str, str, int]
"""(tenant, conversation, run)."""

COLUMNS: Final = {"display_name": "name", "phone": "phone", "email": "email"} | {
    key: key for key in BUILT_IN if key not in ("display_name", "phone", "email")
}
"""Built-in fields a bot may fill, and the ``customers`` column of each."""
BY_MESSAGE: Final = ("new_conversation", "phrase", "out_of_hours", "keyword")
"""Triggers counted as "triggered by message" (a customer wrote); ``reference``: by QR code."""


CustomerChange = tuple[
    str, str, tuple[tuple[str, FieldValue], ...], tuple[str, ...], tuple[str, ...]
]


def _ts(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


def _values_json(values: Sequence[tuple[str, FieldValue]]) -> str:
    return json.dumps(
        {k: list(v) if isinstance(v, tuple) else v for k, v in values}, ensure_ascii=False
    )


@dataclass(slots=True)
class BotRows:
    """The rows a batch of events writes: runs started (whole rows), runs finished, and the
    customers' values, in event order."""

    started: dict[Key, list[Any]] = field(default_factory=dict)
    finished: dict[Key, tuple[str, str, str, dt.datetime]] = field(default_factory=dict)
    """(outcome, reason, fields JSON, ended at) of runs started in an earlier batch."""
    customers: list[CustomerChange] = field(default_factory=list)
    """(tenant, customer, values, tags added, tags removed)."""

    def __bool__(self) -> bool:
        return bool(self.started or self.finished or self.customers)

    def add(self, tenant: str, e: ev.Event) -> None:
        if isinstance(e, ev.BotTurned):
            if e.trigger:
                self.started[tenant, e.conversation_id, e.run] = [
                    tenant,
                    e.conversation_id,
                    e.run,
                    e.bot_id,
                    e.version,
                    e.customer_id,
                    e.trigger,
                    "started",
                    "",
                    "{}",
                    _ts(e.at),
                    None,
                ]
            if e.fields or e.tags_added or e.tags_removed:
                self.customers.append(
                    (tenant, e.customer_id, e.fields, e.tags_added, e.tags_removed)
                )
        elif isinstance(e, ev.BotHandedOff):
            self._finish((tenant, e.conversation_id, e.run), "handed_off", e.reason, e.fields, e.at)
        elif isinstance(e, ev.BotEnded):
            outcome = "resolved" if e.closed else "ended"
            self._finish((tenant, e.conversation_id, e.run), outcome, "", (), e.at)

    def _finish(
        self,
        key: Key,
        outcome: str,
        reason: str,
        values: Sequence[tuple[str, FieldValue]],
        at: float,
    ) -> None:
        fields = _values_json(values)
        row = self.started.get(key)
        if row is not None:
            row[7:10] = [outcome, reason, fields]
            row[11] = _ts(at)
        else:
            self.finished[key] = (outcome, reason, fields, _ts(at))

    def extend(self, other: BotRows) -> None:
        self.started.update(other.started)
        self.finished.update(other.finished)
        self.customers.extend(other.customers)


_START_SQL: Final = """
INSERT INTO bot_runs (tenant_id, conversation_id, run, bot_id, version, customer_id, trigger,
                      outcome, reason, fields, started_at, ended_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb, $11, $12)
ON CONFLICT (tenant_id, conversation_id, run) DO NOTHING"""

_FINISH_SQL: Final = """
UPDATE bot_runs SET outcome = $4, reason = $5, fields = $6::jsonb, ended_at = $7
WHERE tenant_id = $1 AND conversation_id = $2 AND run = $3"""

_CUSTOMER_SQL: Final = """
UPDATE customers c SET
    fields = c.fields || $3::jsonb,
    tags = ARRAY(SELECT t FROM unnest(c.tags || $4::text[]) WITH ORDINALITY AS x(t, i)
                 WHERE t <> ALL($5::text[]) GROUP BY t ORDER BY min(i)),
    name = coalesce($6, c.name), phone = coalesce($7, c.phone), email = coalesce($8, c.email),
    company = coalesce($9, c.company), address = coalesce($10, c.address),
    updated_at = clock_timestamp()
WHERE c.tenant_id = $1 AND c.customer_id = $2"""

_TARGET_SQL: Final = """
SELECT coalesce(merged_into, customer_id) FROM customers
WHERE tenant_id = $1 AND customer_id = $2"""


async def write(conn: asyncpg.Connection, rows: BotRows, timeout: float) -> None:
    """Write ``rows`` (inside the event log's transaction)."""
    if rows.started:
        await conn.executemany(_START_SQL, list(rows.started.values()), timeout=timeout)
    if rows.finished:
        await conn.executemany(
            _FINISH_SQL,
            [(*key, *finished) for key, finished in rows.finished.items()],
            timeout=timeout,
        )
    for tenant, customer_id, values, added, removed in rows.customers:
        try:
            async with conn.transaction():  # a savepoint: a record that refuses is skipped
                await _write_customer(conn, tenant, customer_id, values, added, removed, timeout)
        except asyncpg.PostgresError as exc:  # never fail the events' commit for a record
            log.warning("customer record not written", customer=customer_id, error=repr(exc))


async def _write_customer(
    conn: asyncpg.Connection,
    tenant: str,
    customer_id: str,
    values: Sequence[tuple[str, FieldValue]],
    added: Sequence[str],
    removed: Sequence[str],
    timeout: float,
) -> None:
    target = await conn.fetchval(_TARGET_SQL, tenant, customer_id, timeout=timeout)
    if target is None:
        return  # no record (a customer id the door never resolved)
    custom = {k: v for k, v in values if k not in COLUMNS}
    if custom:
        custom = await _keep_unique(conn, tenant, target, custom, timeout)
    columns = {COLUMNS[k]: str(v) for k, v in values if k in COLUMNS}
    await conn.execute(
        _CUSTOMER_SQL,
        tenant,
        target,
        _values_json(list(custom.items())),
        list(added),
        list(removed),
        columns.get("name"),
        columns.get("phone"),
        columns.get("email"),
        columns.get("company"),
        columns.get("address"),
        timeout=timeout,
    )


async def _keep_unique(
    conn: asyncpg.Connection,
    tenant: str,
    customer_id: str,
    values: Mapping[str, FieldValue],
    timeout: float,
) -> dict[str, FieldValue]:
    """``values`` without those of unique fields another customer holds; the customer's unique
    values table follows the ones kept."""
    rows = await conn.fetch(
        "SELECT field_key, type FROM customer_fields"
        " WHERE tenant_id = $1 AND is_unique AND field_key = ANY($2::text[])",
        tenant,
        list(values),
        timeout=timeout,
    )
    kept = dict(values)
    for row in rows:
        key = row["field_key"]
        text = unique_text(FieldDef(key=key, type=row["type"], unique=True), values[key])
        holder = await conn.fetchval(
            "INSERT INTO customer_unique_values (tenant_id, field_key, value, customer_id)"
            " VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, field_key, value)"
            " DO UPDATE SET customer_id = customer_unique_values.customer_id"
            " RETURNING customer_id",
            tenant,
            key,
            text,
            customer_id,
            timeout=timeout,
        )
        if holder != customer_id:
            del kept[key]
            continue
        await conn.execute(
            "DELETE FROM customer_unique_values"
            " WHERE tenant_id = $1 AND field_key = $2 AND customer_id = $3 AND value <> $4",
            tenant,
            key,
            customer_id,
            text,
            timeout=timeout,
        )
    return kept


# --- reads ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BotStats:
    """One bot's flows started in a period."""

    conversations: int
    """Conversations the bot ran in."""
    by_message: int
    """Flows a customer's message started (``BY_MESSAGE`` triggers)."""
    by_reference: int
    """Flows a QR code's or campaign's reference started."""
    customers: int
    """Distinct customers reached."""
    finished: int
    """Flows that ended in the bot (closed as resolved or not)."""
    handed_off: int
    """Flows that handed the conversation to people (for any reason)."""
    not_answered: int
    """Hand-offs because the customer was not understood (``bot_could_not_answer``)."""


_STATS_SQL: Final = """
SELECT count(DISTINCT conversation_id) AS conversations,
       count(*) FILTER (WHERE trigger = ANY($5::text[])) AS by_message,
       count(*) FILTER (WHERE trigger = 'reference') AS by_reference,
       count(DISTINCT customer_id) AS customers,
       count(*) FILTER (WHERE outcome IN ('ended', 'resolved')) AS finished,
       count(*) FILTER (WHERE outcome = 'handed_off') AS handed_off,
       count(*) FILTER (WHERE reason = 'bot_could_not_answer') AS not_answered
FROM bot_runs
WHERE tenant_id = $1 AND bot_id = $2 AND started_at >= $3 AND started_at < $4"""

_EVER: Final = (
    dt.datetime(1970, 1, 1, tzinfo=dt.UTC),
    dt.datetime(9999, 1, 1, tzinfo=dt.UTC),
)


async def stats(
    pool: asyncpg.Pool,
    tenant: str,
    bot_id: str,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    *,
    timeout: float = 10.0,
) -> BotStats:
    """The bot's figures over the flows started in ``[since, until)`` (None: unbounded)."""
    with translated_errors():
        row = await pool.fetchrow(
            _STATS_SQL,
            tenant,
            bot_id,
            since or _EVER[0],
            until or _EVER[1],
            list(BY_MESSAGE),
            timeout=timeout,
        )
    assert row is not None
    return BotStats(**{name: int(row[name]) for name in BotStats.__slots__})


@dataclass(frozen=True, slots=True)
class HandOff:
    """A bot's latest hand-off of a conversation to people."""

    bot_id: str
    version: int
    reason: str
    fields: dict[str, FieldValue]
    at: dt.datetime


async def last_hand_off(
    pool: asyncpg.Pool, tenant: str, conversation_id: str, *, timeout: float = 10.0
) -> HandOff | None:
    """The conversation's latest hand-off by a bot, if any."""
    with translated_errors():
        row = await pool.fetchrow(
            "SELECT bot_id, version, reason, fields::text AS fields, ended_at FROM bot_runs"
            " WHERE tenant_id = $1 AND conversation_id = $2 AND outcome = 'handed_off'"
            " ORDER BY run DESC LIMIT 1",
            tenant,
            conversation_id,
            timeout=timeout,
        )
    if row is None:
        return None
    loaded: dict[str, Any] = json.loads(row["fields"])
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in loaded.items()}
    return HandOff(row["bot_id"], row["version"], row["reason"], values, row["ended_at"])
