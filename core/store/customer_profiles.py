"""Customers' profiles as they travel with their conversations (``CustomerProfile``), read in
one statement each way:

- ``profiles``: the profiles of some customers, when a conversation starts or reopens;
- ``open_profiles``: the profiles of the customers of open conversations among some customers
  (a customer merged into one of them included), when their records changed;
- ``changed_open_profiles``: the same for customers changed since an instant (a bulk import);
- ``block_targets``: the customers a block's target names (their id, phone, e-mail, or a
  channel id that is one), to refresh when a block starts or ends.

A profile is the record a conversation's customer id leads to (following ``merged_into``): its
enabled custom fields with a value in display order, its tags and groups, the conversations of
the customer (and of those merged into it) that were over when read and the agent of the latest
of them, and the oldest block that stands on any of its keys (as ``sender_keys`` makes them).
Everything is cut to the ``MAX_PROFILE_*`` bounds of ``core.routing.model``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any, Final

import asyncpg

from core.routing import model as m
from core.store.blocklist import Kind
from core.store.customer_fields import FieldValue, format_value
from core.store.errors import translated_errors

MAX_BLOCK_TARGETS: Final = 1_000
"""Customers one block refreshes at most (a phone number shared by more is unusual)."""

_PROFILE_SQL: Final = f"""
SELECT w.customer_id AS wanted, r.customer_id, r.name,
       r.tags[1:{m.MAX_PROFILE_TAGS}] AS tags,
       (SELECT jsonb_agg(jsonb_build_array(s.field_key, s.display_name, s.value)
                         ORDER BY s.display_order, s.field_key)
        FROM (SELECT f.field_key, f.display_name, f.display_order, r.fields -> f.field_key AS value
              FROM customer_fields f
              WHERE f.tenant_id = $1 AND f.enabled AND r.fields ? f.field_key
              ORDER BY f.display_order, f.field_key
              LIMIT {m.MAX_PROFILE_FIELDS}) s)::text AS shown_fields,
       (SELECT jsonb_agg(jsonb_build_array(s.group_id, s.display_name) ORDER BY s.group_id)
        FROM (SELECT g.group_id, g.display_name
              FROM customer_group_members gm
              JOIN customer_groups g ON g.tenant_id = gm.tenant_id AND g.group_id = gm.group_id
              WHERE gm.tenant_id = $1 AND gm.customer_id = r.customer_id
              ORDER BY g.group_id
              LIMIT {m.MAX_PROFILE_GROUPS}) s)::text AS shown_groups,
       (SELECT count(*) FROM conversations c
        WHERE c.tenant_id = $1 AND c.customer_id = ANY(fam.ids)
          AND c.state IN ('closed', 'abandoned') AND c.conversation_id <> $3) AS previous,
       (SELECT c.last_agent_id FROM conversations c
        WHERE c.tenant_id = $1 AND c.customer_id = ANY(fam.ids)
          AND c.state IN ('closed', 'abandoned') AND c.conversation_id <> $3
          AND c.last_agent_id IS NOT NULL
        ORDER BY c.created_at DESC LIMIT 1) AS last_agent,
       (SELECT jsonb_build_array(b.block_id, b.reason, extract(epoch FROM b.expires_at))
        FROM (SELECT 'customer', x FROM unnest(fam.ids) AS x
              UNION ALL SELECT 'phone', r.phone WHERE r.phone IS NOT NULL
              UNION ALL SELECT 'email', lower(r.email) WHERE coalesce(r.email, '') <> ''
              UNION ALL
              SELECT 'phone', CASE WHEN i.external_id LIKE '+%' THEN i.external_id
                                   ELSE '+' || i.external_id END
              FROM customer_identities i
              WHERE i.tenant_id = $1 AND i.customer_id = r.customer_id
                AND i.external_id ~ '^\\+?[1-9][0-9]{{4,14}}$'
              UNION ALL
              SELECT 'email', lower(i.external_id) FROM customer_identities i
              WHERE i.tenant_id = $1 AND i.customer_id = r.customer_id
                AND i.external_id LIKE '%@%') AS k(kind, value)
        JOIN blocks b ON b.tenant_id = $1 AND b.kind = k.kind AND b.value = k.value
        WHERE b.unblocked_at IS NULL AND (b.expires_at IS NULL OR b.expires_at > now())
        ORDER BY b.block_id LIMIT 1)::text AS block
FROM wanted w
JOIN customers c0 ON c0.tenant_id = $1 AND c0.customer_id = w.customer_id
JOIN customers r ON r.tenant_id = $1 AND r.customer_id = coalesce(c0.merged_into, c0.customer_id)
CROSS JOIN LATERAL (
    SELECT ARRAY(SELECT r.customer_id
                 UNION ALL
                 SELECT mc.customer_id FROM customers mc
                 WHERE mc.tenant_id = $1 AND mc.merged_into = r.customer_id) AS ids) fam
"""

_GIVEN: Final = "WITH wanted(customer_id) AS (SELECT DISTINCT unnest($2::text[]))"
_OPEN_AMONG: Final = """WITH wanted(customer_id) AS (
    SELECT DISTINCT c.customer_id FROM conversations c
    WHERE c.tenant_id = $1 AND c.state IN ('bot', 'queued', 'offered', 'active', 'wrap_up')
      AND c.customer_id IN (SELECT unnest($2::text[])
                            UNION
                            SELECT mc.customer_id FROM customers mc
                            WHERE mc.tenant_id = $1 AND mc.merged_into = ANY($2::text[])))"""
_OPEN_CHANGED: Final = """WITH wanted(customer_id) AS (
    SELECT DISTINCT c.customer_id FROM conversations c
    JOIN customers c0 ON c0.tenant_id = c.tenant_id AND c0.customer_id = c.customer_id
    JOIN customers r ON r.tenant_id = c.tenant_id
                    AND r.customer_id = coalesce(c0.merged_into, c0.customer_id)
    WHERE c.tenant_id = $1 AND c.state IN ('bot', 'queued', 'offered', 'active', 'wrap_up')
      AND r.updated_at >= $2::timestamptz)"""


def _cut(text: str | None) -> str:
    return (text or "")[: m.MAX_PROFILE_TEXT]


def _value(raw: Any) -> str:
    """A stored custom field value as text (``format_value``)."""
    value: FieldValue
    if isinstance(raw, list):
        value = tuple(str(v) for v in raw)
    elif isinstance(raw, int | float) and not isinstance(raw, bool):
        value = float(raw)
    elif isinstance(raw, bool | str):
        value = raw
    else:
        value = json.dumps(raw, ensure_ascii=False)
    return _cut(format_value(value))


def _profile(row: asyncpg.Record) -> m.CustomerProfile:
    fields = json.loads(row["shown_fields"] or "[]")
    groups = json.loads(row["shown_groups"] or "[]")
    block = json.loads(row["block"]) if row["block"] else None
    return m.CustomerProfile(
        customer_id=_cut(row["customer_id"]),
        display_name=_cut(row["name"]),
        fields=tuple(
            m.ProfileField(key=_cut(key), label=_cut(label), value=_value(value))
            for key, label, value in fields
        ),
        tags=tuple(_cut(tag) for tag in row["tags"] or ()),
        groups=tuple(m.ProfileGroup(group_id=_cut(g), name=_cut(name)) for g, name in groups),
        previous_conversations=int(row["previous"]),
        last_agent=_cut(row["last_agent"]),
        block=None
        if block is None
        else m.StandingBlock(
            block_id=int(block[0]),
            reason=_cut(block[1]),
            until=None if block[2] is None else float(block[2]),
        ),
    )


async def _fetch(
    pool: asyncpg.Pool, wanted: str, *args: Any, timeout: float
) -> dict[str, m.CustomerProfile]:
    with translated_errors():
        rows = await pool.fetch(wanted + _PROFILE_SQL, *args, timeout=timeout)
    return {row["wanted"]: _profile(row) for row in rows}


async def profiles(
    pool: asyncpg.Pool,
    tenant: str,
    customer_ids: Sequence[str],
    *,
    excluding: str = "",
    timeout: float = 5.0,
) -> dict[str, m.CustomerProfile]:
    """Customer id -> profile, for those of ``customer_ids`` that exist; ``excluding`` names
    a conversation not to count among the previous ones (one being reopened)."""
    if not customer_ids:
        return {}
    return await _fetch(pool, _GIVEN, tenant, list(customer_ids), excluding, timeout=timeout)


async def open_profiles(
    pool: asyncpg.Pool, tenant: str, customer_ids: Sequence[str], *, timeout: float = 5.0
) -> dict[str, m.CustomerProfile]:
    """The customers of open (stored) conversations among ``customer_ids`` and the customers
    merged into them -> the profile each conversation should show now."""
    if not customer_ids:
        return {}
    return await _fetch(pool, _OPEN_AMONG, tenant, list(customer_ids), "", timeout=timeout)


async def changed_open_profiles(
    pool: asyncpg.Pool, tenant: str, since: dt.datetime, *, timeout: float = 10.0
) -> dict[str, m.CustomerProfile]:
    """As ``open_profiles``, for the customers whose record changed at ``since`` or later
    (by ``database_now``'s clock)."""
    return await _fetch(pool, _OPEN_CHANGED, tenant, since, "", timeout=timeout)


async def database_now(pool: asyncpg.Pool, *, timeout: float = 5.0) -> dt.datetime:
    """The database's clock, which ``customers.updated_at`` follows."""
    with translated_errors():
        found: dt.datetime = await pool.fetchval("SELECT clock_timestamp()", timeout=timeout)
    return found


async def block_targets(
    pool: asyncpg.Pool, tenant: str, kind: Kind, value: str, *, timeout: float = 5.0
) -> list[str]:
    """The customers a block of ``kind`` on ``value`` (normalized) stands on: the customer
    itself, or those whose phone or e-mail it is, directly or as a channel id (a WhatsApp id
    is the number without its +). At most ``MAX_BLOCK_TARGETS``."""
    if kind is Kind.CUSTOMER:
        return [value]
    if kind is Kind.IP:
        return []
    if kind is Kind.PHONE:
        sql = """SELECT customer_id FROM customers WHERE tenant_id = $1 AND phone = $2
                 UNION
                 SELECT customer_id FROM customer_identities
                 WHERE tenant_id = $1 AND external_id IN ($2, substr($2, 2))
                 LIMIT $3"""
    else:
        sql = """SELECT customer_id FROM customers WHERE tenant_id = $1 AND lower(email) = $2
                 UNION
                 SELECT customer_id FROM customer_identities
                 WHERE tenant_id = $1 AND lower(external_id) = $2
                 LIMIT $3"""
    with translated_errors():
        rows = await pool.fetch(sql, tenant, value, MAX_BLOCK_TARGETS, timeout=timeout)
    return [row["customer_id"] for row in rows]
