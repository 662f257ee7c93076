"""Conversation lists for consoles: filters that combine, a caller's scope, keyset pages with a
total, counts per tab, and a streamed read for exports. Read-only over the shard's tables, plus
the caller's pins (``core.store.pins``).

The filters of ``core.store.records`` (customer, phone, created range) are reused through its
``_where`` (and its keyword validation); this module adds the rest. The keyword is a substring
match like the records' search (``core.store.records.keyword_match``: ``LIKE`` when it has no
letter case, an ASCII test in front of ``ILIKE`` otherwise). A page's total costs a second walk
(up to ``EXACT_TOTAL_UP_TO`` matches), skipped when a first page holds every match.

A ``Scope`` limits an agent to what ``core.api.policy`` lets them read: conversations they own
or served last, those offered to them now, those waiting (or never served) in a queue they
serve, and (``Scope.team``, where the tenant allows team reads) those owned or served last by a
department colleague.

The departments filter (``ListFilter.departments``) matches a conversation whose owner is a
member of one, whose queue designates one, or that waits after a transfer to one (its latest
transfer); members and designations are read as they are now, in the same statement
(uncorrelated sub-selects the planner runs once, so each branch can use its index).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

import asyncpg
import msgspec

from core.routing import model as m
from core.store.access import serves
from core.store.errors import InvalidInput, translated_errors
from core.store.records import (
    ConversationQuery,
    ConversationRecord,
    MessageRecord,
    _conversation,
    _where,
    keyword_match,
    like_pattern,
    message_from_row,
    validate_query,
)
from core.store.validation import require_aware, require_text

EXACT_TOTAL_UP_TO: Final = 1_000
"""A list's total is counted exactly up to this many matches, and estimated past it."""
CURSOR_PREFETCH: Final = 500
_PLANNER: Final = (
    "SET LOCAL plan_cache_mode = force_custom_plan; SET LOCAL max_parallel_workers_per_gather = 0;"
    " SET LOCAL jit = off"
)
"""For list reads: a plan per call (a filter's values decide whether the trigram index or a
walk down the newest conversations is cheaper), no parallel workers (a LIMIT's walk is
short; two workers walking it overshoot it, on a machine whose cores serve every caller), and
no JIT (a count's high estimate made PostgreSQL spend ~1 s compiling a 100 ms scan)."""
_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND: Final = dt.timedelta(microseconds=1)
STATES: Final = frozenset(s.value for s in m.ConversationState)
OUTCOMES: Final = frozenset(o.value for o in m.Outcome)
CLOSE_REASONS: Final = frozenset(r.value for r in m.CloseReason)


class Order(StrEnum):
    NEWEST_FIRST = "newest_first"
    LONGEST_WAITING_FIRST = "longest_waiting_first"


@dataclass(frozen=True, slots=True, kw_only=True)
class Scope:
    """Whose view a list is: ``agent_id`` None is the whole tenant (supervisors, admins)."""

    tenant: str
    pinner: str
    """Whose pins ``pinned`` reads: the agent's id, or ``credential:{id}``."""
    agent_id: str | None = None
    queues: tuple[str, ...] = ()
    """The queues the agent serves (``served_queues``)."""
    team: tuple[str, ...] = ()
    """The other agents who share a department with the agent, where the tenant allows team
    reads (``agent_scope``); empty otherwise."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ListFilter:
    """Set fields combine with AND, the values of one field with OR; empty matches all."""

    states: tuple[str, ...] = ()
    queues: tuple[str, ...] = ()
    owner: str | None = None
    channels: tuple[str, ...] = ()
    any_tags: tuple[str, ...] = ()
    all_tags: tuple[str, ...] = ()
    outcomes: tuple[str, ...] = ()
    close_reasons: tuple[str, ...] = ()
    pinned: bool = False
    customer_id: str | None = None
    phone: str | None = None
    email: str | None = None
    name: str | None = None
    keyword: str | None = None
    created_from: dt.datetime | None = None
    created_until: dt.datetime | None = None
    closed_from: dt.datetime | None = None
    closed_until: dt.datetime | None = None
    departments: tuple[str, ...] = ()
    """In the care of any of these departments (see the module docstring)."""
    bot_answered: bool = False
    """Closed by a bot as resolved (``bot_resolved``)."""
    bot_not_answered: bool = False
    """Handed to people by a bot that could not understand the customer (``bot_runs``)."""

    def fingerprint(self, order: Order) -> str:
        """A short digest of the filter and order: a page token is valid for these only."""
        return hashlib.sha256(repr((self, order)).encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class ListPage:
    rows: tuple[asyncpg.Record, ...]
    """Rows with the columns of ``core.store.reads.CONVERSATION_SQL`` plus ``pinned``."""
    next_page_token: str | None
    total: int
    exact: bool


@dataclass(frozen=True, slots=True)
class Counts:
    bot: int
    waiting: int
    mine: int
    active: int
    wrap_up: int
    closed_today: int
    pinned: int
    left_messages: int
    team: int = 0


@dataclass(frozen=True, slots=True)
class AgentScope:
    """What an agent's lists may show beyond their own: the queues they serve, and the
    colleagues whose conversations they may read."""

    queues: tuple[str, ...]
    team: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Care:
    """A departments filter resolved: whose conversations, in which queues, and which waiting
    ones were transferred to them (see the module docstring)."""

    members: tuple[str, ...]
    queues: tuple[str, ...]
    moving: tuple[str, ...]
    """Conversations waiting (QUEUED or OFFERED) whose latest transfer targets a department."""


_CARE_SQL: Final = """
SELECT ARRAY(SELECT a.agent_id FROM agents a
             WHERE a.tenant_id = $1 AND a.removed_at IS NULL
               AND a.profile -> 'departments' ?| $2::text[]) AS members,
       ARRAY(SELECT q.queue_id FROM queues q
             WHERE q.tenant_id = $1 AND q.settings -> 'designated_departments' ?| $2::text[])
           AS queues,
       ARRAY(SELECT t.conversation_id FROM transfers t
             JOIN conversations w
               ON w.tenant_id = t.tenant_id AND w.conversation_id = t.conversation_id
             WHERE t.tenant_id = $1 AND t.target = 'department' AND t.target_id = ANY($2::text[])
               AND w.state IN ('queued', 'offered')
               AND NOT EXISTS (SELECT 1 FROM transfers l
                               WHERE l.tenant_id = t.tenant_id
                                 AND l.conversation_id = t.conversation_id
                                 AND l.requested_at > t.requested_at)) AS moving
"""


async def read_care(
    conn: asyncpg.Connection, tenant: str, departments: Sequence[str], *, timeout: float
) -> Care | None:
    """The departments resolved as they are now; None for no departments."""
    if not departments:
        return None
    row = await conn.fetchrow(_CARE_SQL, tenant, list(departments), timeout=timeout)
    return Care(tuple(row["members"]), tuple(row["queues"]), tuple(row["moving"]))


def colleagues(me: m.AgentProfile, agents: Sequence[m.AgentProfile]) -> tuple[str, ...]:
    """The other agents who share a department with ``me``, sorted."""
    return tuple(
        sorted(
            a.agent_id
            for a in agents
            if a.agent_id != me.agent_id and not a.departments.isdisjoint(me.departments)
        )
    )


def _check_values(field: str, values: Sequence[str], allowed: frozenset[str]) -> None:
    for value in values:
        if value not in allowed:
            raise InvalidInput(f"{field} has an unknown value")


def validate_filter(f: ListFilter) -> None:
    """``InvalidInput`` naming the first malformed field."""
    _check_values("states", f.states, STATES)
    _check_values("outcomes", f.outcomes, OUTCOMES)
    _check_values("close_reasons", f.close_reasons, CLOSE_REASONS)
    for field in ("queues", "channels", "any_tags", "all_tags", "departments"):
        for value in getattr(f, field):
            require_text(field, value, min_len=1, max_len=200)
    for field in ("owner", "email", "name"):
        value = getattr(f, field)
        if value is not None:
            require_text(field, value, min_len=1, max_len=320)
    for field in ("closed_from", "closed_until"):
        value = getattr(f, field)
        if value is not None:
            require_aware(field, value)
    validate_query(_records_query("t", f))


def _records_query(tenant: str, f: ListFilter, *, keyword: bool = True) -> ConversationQuery:
    return ConversationQuery(
        tenant=tenant,
        customer_id=f.customer_id,
        phone=f.phone,
        created_from=f.created_from,
        created_until=f.created_until,
        keyword=f.keyword if keyword else None,
    )


_SELECT: Final = """
SELECT c.conversation_id, c.channel, c.customer_id, c.state, c.queue_id, c.owner_agent_id,
       c.last_agent_id, c.priority, c.outcome, c.close_reason, c.tags, c.created_at, c.queued_at,
       c.assigned_at, c.first_response_at, c.ended_at, c.closed_at, c.region, c.language,
       cu.name AS customer_name, cu.phone AS customer_phone, cu.email AS customer_email,
       (SELECT i.external_id FROM customer_identities i
        WHERE i.tenant_id = c.tenant_id AND i.channel = c.channel
          AND i.customer_id = c.customer_id LIMIT 1) AS external_id,
       {pinned} AS pinned
FROM {source} c
LEFT JOIN customers cu ON cu.tenant_id = c.tenant_id AND cu.customer_id = c.customer_id
"""

_WAITING_KEY: Final = "coalesce(c.queued_at, c.created_at)"


class _Sql:
    """A WHERE clause under construction ($1 is the tenant) and its arguments."""

    def __init__(self, scope: Scope, f: ListFilter, care: Care | None = None) -> None:
        """``care``: the departments of ``f`` resolved (``read_care``); required when ``f``
        names departments."""
        where, args = _where(_records_query(scope.tenant, f, keyword=False), None)
        self.clauses = [where]
        self.args: list[Any] = args
        self._pinner_value = scope.pinner
        self._pinner: str | None = None
        self._scope(scope)
        self._filter(f)
        if f.departments:
            if care is None:
                raise ValueError("a departments filter needs its care resolved (read_care)")
            self._care(care)

    def arg(self, value: object) -> str:
        self.args.append(value)
        return f"${len(self.args)}"

    @property
    def pinned(self) -> str:
        """SQL true when the scope's pinner pinned ``c`` (its argument added on first use: an
        unused argument has no type)."""
        if self._pinner is None:
            self._pinner = self.arg(self._pinner_value)
        return (
            "EXISTS (SELECT 1 FROM conversation_pins p WHERE p.tenant_id = c.tenant_id"
            f" AND p.pinned_by = {self._pinner} AND p.conversation_id = c.conversation_id)"
        )

    def select(self, order: Order, limit: int | None = None) -> str:
        """The rows in ``order``; with ``limit``, the page is chosen first and only its rows
        are joined and decorated (else every match would be, before the sort)."""
        pinned = self.pinned
        if limit is None:
            source = f"(SELECT * FROM conversations c WHERE {self.where})"
        else:
            source = (
                f"(SELECT * FROM conversations c WHERE {self.where}"
                f" ORDER BY {_order_sql(order)} LIMIT {limit})"
            )
        return f"{_SELECT.format(pinned=pinned, source=source)} ORDER BY {_order_sql(order)}"

    def _scope(self, scope: Scope) -> None:
        if scope.agent_id is None:
            return
        me, queues = self.arg(scope.agent_id), self.arg(list(scope.queues))
        team = ""
        if scope.team:
            colleagues = self.arg(list(scope.team))
            team = (
                f" OR c.owner_agent_id = ANY({colleagues}::text[])"
                f" OR c.last_agent_id = ANY({colleagues}::text[])"
            )
        self.clauses.append(
            f"(c.owner_agent_id = {me} OR c.last_agent_id = {me}"
            f" OR (c.queue_id = ANY({queues}::text[])"
            "     AND (c.state IN ('bot', 'queued', 'offered') OR c.last_agent_id IS NULL))"
            " OR EXISTS (SELECT 1 FROM offers o WHERE o.tenant_id = c.tenant_id"
            "            AND o.conversation_id = c.conversation_id AND o.outcome IS NULL"
            f"           AND {me} = ANY(o.agent_ids)){team})"
        )

    def _care(self, care: Care) -> None:
        self.clauses.append(
            f"(c.owner_agent_id = ANY({self.arg(list(care.members))}::text[])"
            f" OR c.queue_id = ANY({self.arg(list(care.queues))}::text[])"
            f" OR c.conversation_id = ANY({self.arg(list(care.moving))}::text[]))"
        )

    def _any(self, column: str, values: Sequence[str]) -> None:
        if values:
            self.clauses.append(f"{column} = ANY({self.arg(list(values))}::text[])")

    def _filter(self, f: ListFilter) -> None:
        keyword = (f.keyword or "").strip()
        if keyword:
            self.clauses.append(
                "EXISTS (SELECT 1 FROM messages k"
                " WHERE k.tenant_id = c.tenant_id AND k.conversation_id = c.conversation_id"
                f" AND {keyword_match('k.content', keyword, self.arg)})"
            )
        self._any("c.state", f.states)
        self._any("c.queue_id", f.queues)
        self._any("c.channel", f.channels)
        self._any("c.outcome", f.outcomes)
        self._any("c.close_reason", f.close_reasons)
        if f.bot_answered:
            self.clauses.append("c.close_reason = 'bot_resolved'")
        if f.bot_not_answered:
            self.clauses.append(
                "EXISTS (SELECT 1 FROM bot_runs r WHERE r.tenant_id = c.tenant_id"
                " AND r.conversation_id = c.conversation_id"
                " AND r.reason = 'bot_could_not_answer')"
            )
        if f.owner is not None:
            self.clauses.append(f"c.owner_agent_id = {self.arg(f.owner)}")
        if f.any_tags:
            self.clauses.append(f"c.tags && {self.arg(list(f.any_tags))}::text[]")
        if f.all_tags:
            self.clauses.append(f"c.tags @> {self.arg(list(f.all_tags))}::text[]")
        if f.pinned:
            self.clauses.append(self.pinned)
        if f.email is not None:
            self.clauses.append(
                "c.customer_id IN (SELECT e.customer_id FROM customers e WHERE e.tenant_id = $1"
                f" AND lower(e.email) = lower({self.arg(f.email)}))"
            )
        if f.name is not None:
            self.clauses.append(
                "c.customer_id IN (SELECT n.customer_id FROM customers n WHERE n.tenant_id = $1"
                f" AND n.name ILIKE {self.arg(like_pattern(f.name))} ESCAPE '\\')"
            )
        if f.closed_from is not None:
            self.clauses.append(f"c.closed_at >= {self.arg(f.closed_from)}")
        if f.closed_until is not None:
            self.clauses.append(f"c.closed_at < {self.arg(f.closed_until)}")

    def after(self, order: Order, key: tuple[dt.datetime, str]) -> None:
        at, conversation_id = self.arg(key[0]), self.arg(key[1])
        if order is Order.NEWEST_FIRST:
            self.clauses.append(f"(c.created_at, c.conversation_id) < ({at}, {conversation_id})")
        else:
            self.clauses.append(f"({_WAITING_KEY}, c.conversation_id) > ({at}, {conversation_id})")

    @property
    def where(self) -> str:
        return " AND ".join(self.clauses)


def _order_sql(order: Order) -> str:
    if order is Order.NEWEST_FIRST:
        return "c.created_at DESC, c.conversation_id DESC"
    return f"{_WAITING_KEY}, c.conversation_id"


def encode_token(order: Order, f: ListFilter, at: dt.datetime, conversation_id: str) -> str:
    raw = json.dumps(
        [f.fingerprint(order), (at - _EPOCH) // _MICROSECOND, conversation_id],
        ensure_ascii=False,
    )
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_token(token: str, order: Order, f: ListFilter) -> tuple[dt.datetime, str]:
    """The position after which the page starts; ``InvalidInput`` for a token this list (same
    filter and order) did not issue."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        fingerprint, micros, conversation_id = json.loads(raw)
        if (
            fingerprint != f.fingerprint(order)
            or not isinstance(micros, int)
            or not isinstance(conversation_id, str)
        ):
            raise ValueError("foreign token")
        return _EPOCH + micros * _MICROSECOND, conversation_id
    except (ValueError, TypeError, OverflowError, binascii.Error) as exc:
        raise InvalidInput("the page token is not one this list issued") from exc


def _sort_key(order: Order, row: asyncpg.Record) -> dt.datetime:
    if order is Order.NEWEST_FIRST:
        return row["created_at"]  # type: ignore[no-any-return]
    return row["queued_at"] or row["created_at"]  # type: ignore[no-any-return]


class ConversationLists:
    """Reads of conversation lists over an asyncpg pool."""

    def __init__(self, pool: asyncpg.Pool, *, timeout: float = 10.0) -> None:
        self._pool = pool
        self._timeout = timeout

    async def served_queues(self, tenant: str, agent_id: str) -> tuple[str, ...]:
        """The queues whose plan admits the agent (as ``core.store.access`` decides it for one
        conversation); empty for an unknown or removed agent."""
        return (await self.agent_scope(tenant, agent_id)).queues

    async def agent_scope(self, tenant: str, agent_id: str) -> AgentScope:
        """The queues the agent serves and, where the tenant allows team reads, their
        department colleagues; both empty for an unknown or removed agent."""
        with translated_errors():
            async with self._pool.acquire(timeout=self._timeout) as conn:
                return await read_agent_scope(conn, tenant, agent_id, timeout=self._timeout)

    async def page(
        self, scope: Scope, f: ListFilter, order: Order, size: int, token: str | None
    ) -> ListPage:
        """One page of at most ``size`` matching conversations, with the total."""
        validate_filter(f)
        after = decode_token(token, order, f) if token else None
        with translated_errors():
            async with self._pool.acquire(timeout=self._timeout) as conn, conn.transaction():
                await conn.execute(_PLANNER, timeout=self._timeout)
                care = await read_care(conn, scope.tenant, f.departments, timeout=self._timeout)
                sql = _Sql(scope, f, care)
                counted = f"SELECT 1 FROM conversations c WHERE {sql.where}"
                count_args = list(sql.args)
                if after is not None:
                    sql.after(order, after)
                query = sql.select(order, size + 1)
                rows = await conn.fetch(query, *sql.args, timeout=self._timeout)
                if after is None and len(rows) <= min(size, EXACT_TOTAL_UP_TO):
                    total, exact = len(rows), True  # the first page holds every match
                else:
                    total, exact = await self._total(conn, counted, count_args)
        more = len(rows) > size
        found = tuple(rows[:size])
        next_token = None
        if more:
            last = found[-1]
            next_token = encode_token(order, f, _sort_key(order, last), last["conversation_id"])
        return ListPage(found, next_token, total, exact)

    async def _total(
        self, conn: asyncpg.Connection, counted: str, args: list[Any]
    ) -> tuple[int, bool]:
        n = await conn.fetchval(
            f"SELECT count(*) FROM ({counted} LIMIT {EXACT_TOTAL_UP_TO + 1}) s",
            *args,
            timeout=self._timeout,
        )
        if n <= EXACT_TOTAL_UP_TO:
            return int(n), True
        plan = await conn.fetchval(f"EXPLAIN (FORMAT JSON) {counted}", *args, timeout=self._timeout)
        estimate = int(json.loads(plan)[0]["Plan"]["Plan Rows"])
        return max(estimate, EXACT_TOTAL_UP_TO + 1), False

    async def counts(
        self, scope: Scope, closed_since: dt.datetime, departments: Sequence[str] = ()
    ) -> Counts:
        """The size of each console list the scope sees (in the care of ``departments``, if
        any), in one statement."""
        with translated_errors():
            async with self._pool.acquire(timeout=self._timeout) as conn, conn.transaction():
                return await read_counts(
                    conn, scope, closed_since, departments, timeout=self._timeout
                )

    async def export(self, scope: Scope, f: ListFilter) -> AsyncIterator[ConversationRecord]:
        """Every matching conversation, newest first, through a server-side cursor (bounded
        memory); rows added meanwhile may or may not appear."""
        validate_filter(f)
        with translated_errors():
            async with self._pool.acquire(timeout=self._timeout) as conn, conn.transaction():
                care = await read_care(conn, scope.tenant, f.departments, timeout=self._timeout)
                sql = _Sql(scope, f, care)
                query = sql.select(Order.NEWEST_FIRST)
                async for row in conn.cursor(query, *sql.args, prefetch=CURSOR_PREFETCH):
                    yield _conversation(row)

    async def export_messages(self, scope: Scope, f: ListFilter) -> AsyncIterator[MessageRecord]:
        """Every message of every matching conversation, by conversation (newest first), oldest
        message first; through a server-side cursor."""
        validate_filter(f)
        with translated_errors():
            async with self._pool.acquire(timeout=self._timeout) as conn, conn.transaction():
                care = await read_care(conn, scope.tenant, f.departments, timeout=self._timeout)
                sql = _Sql(scope, f, care)
                query = f"""
                    SELECT m.message_id, m.conversation_id, m.channel, m.direction, m.sender,
                           m.agent_id, m.content, m.attachments, m.provider_message_id,
                           m.created_at
                    FROM (SELECT c.conversation_id, c.created_at FROM conversations c
                          WHERE {sql.where}) s
                    JOIN messages m ON m.tenant_id = $1 AND m.conversation_id = s.conversation_id
                    ORDER BY s.created_at DESC, s.conversation_id DESC, m.message_id"""
                async for row in conn.cursor(query, *sql.args, prefetch=CURSOR_PREFETCH):
                    yield message_from_row(row)


def agent_scope_of(
    agent_id: str,
    agents: Mapping[str, m.AgentProfile],
    queues: Iterable[m.QueueSettings],
    team_reads: bool,
) -> AgentScope:
    """The agent's scope in this configuration (agents not removed, every queue, the tenant's
    ``agents_see_team_conversations``): empty for an unknown or removed agent."""
    me = agents.get(agent_id)
    if me is None:
        return AgentScope((), ())
    team = colleagues(me, list(agents.values())) if team_reads else ()
    return AgentScope(tuple(sorted(q.queue_id for q in queues if serves(q, me))), team)


@dataclass(frozen=True, slots=True)
class Configuration:
    """What decides an agent's scope, as stored."""

    agents: dict[str, m.AgentProfile]
    """Agents not removed."""
    queues: dict[str, m.QueueSettings]
    team_reads: bool


async def read_configuration(
    conn: asyncpg.Connection, tenant: str, *, timeout: float
) -> Configuration:
    """The tenant's agents, queues and team-reads setting on ``conn``."""
    agents = await conn.fetch(
        "SELECT agent_id, profile::text AS profile FROM agents"
        " WHERE tenant_id = $1 AND removed_at IS NULL",
        tenant,
        timeout=timeout,
    )
    queues = await conn.fetch(
        "SELECT queue_id, settings::text AS settings FROM queues WHERE tenant_id = $1",
        tenant,
        timeout=timeout,
    )
    settings = await conn.fetchval(
        "SELECT settings::text FROM tenants WHERE tenant_id = $1", tenant, timeout=timeout
    )
    return Configuration(
        agents={
            r["agent_id"]: msgspec.json.decode(r["profile"], type=m.AgentProfile) for r in agents
        },
        queues={
            r["queue_id"]: msgspec.json.decode(r["settings"], type=m.QueueSettings) for r in queues
        },
        team_reads=msgspec.json.decode(
            settings or "{}", type=m.TenantSettings
        ).agents_see_team_conversations,
    )


async def read_agent_scope(
    conn: asyncpg.Connection, tenant: str, agent_id: str, *, timeout: float
) -> AgentScope:
    """``ConversationLists.agent_scope`` on ``conn`` (say, inside a snapshot's transaction)."""
    found = await read_configuration(conn, tenant, timeout=timeout)
    return agent_scope_of(agent_id, found.agents, found.queues.values(), found.team_reads)


async def read_counts(
    conn: asyncpg.Connection,
    scope: Scope,
    closed_since: dt.datetime,
    departments: Sequence[str] = (),
    *,
    timeout: float,
) -> Counts:
    """``ConversationLists.counts`` on ``conn``, which must be in a transaction (say, a
    snapshot's). One statement, one count per list, each walking the index of its list (the
    states', the owners', the closed ones', the left messages', the pins) rather than the
    tenant's every conversation."""
    require_aware("closed_since", closed_since)
    f = ListFilter(departments=tuple(departments))
    validate_filter(f)
    await conn.execute(_PLANNER, timeout=timeout)
    sql = _Sql(scope, f, await read_care(conn, scope.tenant, departments, timeout=timeout))
    since = sql.arg(closed_since)
    pinner = sql.arg(scope.pinner)
    where = sql.where

    def count(condition: str) -> str:
        return f"(SELECT count(*) FROM conversations c WHERE {where} AND {condition})"

    lists = {
        "bot": count("c.state = 'bot'"),
        "waiting": count("c.state IN ('queued', 'offered')"),
        "mine": (
            count(f"c.owner_agent_id = {sql.arg(scope.agent_id)}")
            if scope.agent_id is not None
            else "0"
        ),
        "active": count("c.state = 'active'"),
        "wrap_up": count("c.state = 'wrap_up'"),
        "closed_today": count(f"c.closed_at >= {since} AND c.state = 'closed'"),
        "pinned": count(
            "c.conversation_id IN (SELECT p.conversation_id FROM conversation_pins p"
            f" WHERE p.tenant_id = $1 AND p.pinned_by = {pinner})"
        ),
        "left_messages": count("c.close_reason = 'left_message'"),
        "team": (
            count(f"c.owner_agent_id = ANY({sql.arg(list(scope.team))}::text[])")
            if scope.team
            else "0"
        ),
    }
    query = "SELECT " + ", ".join(f"{q} AS {name}" for name, q in lists.items())
    row = await conn.fetchrow(query, *sql.args, timeout=timeout)
    return Counts(**{k: int(v) for k, v in dict(row).items()})
