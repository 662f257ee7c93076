"""Broadcast sends between the store and the channel gateways: claims, results, statuses.

A recipient's state is durable and moves forward only:
``queued -> sending -> sent -> delivered -> read``, or ``failed``, ``skipped_*``,
``cancelled``. The gateways drive it through two calls (``BroadcastService``):

- ``claim``: a gateway (``sender``: its stable id; ``session``: this run of it) takes up to
  ``limit`` sends of one channel for ``lease`` seconds, in one transaction: scheduled
  broadcasts whose time came start SENDING; recipients are picked in order with
  ``FOR UPDATE SKIP LOCKED`` (so gateways never take the same one); those opted out or blocked
  since the broadcast was sent become skipped instead; the rest become ``sending`` with the
  claim stamped on them. A recipient still ``sending`` under an older session of the same
  sender (the gateway was restarted) or past its lease (the gateway is gone) is claimed again
  with ``previous_claims`` > 0: it may have gone out, so the gateway reconciles it with the
  provider first. A release (never attempted) takes its claim back.
- ``report``: results by recipient (sent with the provider's id, failed with its reason,
  released) and statuses by recipient or provider id (delivered, read, failed later). A sent
  result is a fact and applies to a recipient still queued or sending under any session; a
  failure or release applies only under the session that holds the claim (a release after its
  broadcast was cancelled cancels the recipient and gives its quota back); statuses only move
  forward. A repeated report changes nothing. A broadcast with no recipient left queued or
  sending completes.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

import asyncpg

from core.broadcasts.content import sms_messages
from core.store import quotas
from core.store.errors import translated_errors

MAX_CLAIM: Final = 1_000
REPLY_WINDOW: Final = dt.timedelta(days=7)
"""A customer's first message on the channel this long after a send is its reply."""
Outcome = Literal["sent", "failed", "released", "delivered", "read"]


@dataclass(frozen=True, slots=True)
class Send:
    """One claimed send: everything a gateway needs to deliver it."""

    broadcast_id: str
    recipient_id: int
    address: str
    text: str
    subject: str
    parameters: tuple[str, ...]
    template_name: str
    template_language: str
    previous_claims: int
    queued_at: dt.datetime
    claimed_at: dt.datetime
    first_claimed_at: dt.datetime

    @property
    def key(self) -> str:
        """Stable across claims: what the provider gets as idempotency or correlation key."""
        return f"broadcasts/{self.broadcast_id}/recipients/{self.recipient_id}"


@dataclass(frozen=True, slots=True)
class Claimed:
    sends: tuple[Send, ...]
    lease_until: dt.datetime


@dataclass(frozen=True, slots=True)
class Result:
    """A report about one send: by recipient (``broadcast_id`` and ``recipient_id``) or, for
    a status, by ``provider_id`` alone (``broadcast_id`` empty)."""

    outcome: Outcome
    broadcast_id: str = ""
    recipient_id: int = 0
    provider_id: str = ""
    error: str = ""
    session: str = ""


@dataclass(frozen=True, slots=True)
class Reported:
    applied: int
    stopped: tuple[str, ...]
    """Broadcasts of the results that are paused or cancelled now."""


@dataclass(frozen=True, slots=True)
class Recipient:
    broadcast_id: str
    recipient_id: int
    customer_id: str | None
    address: str
    state: str
    error: str
    provider_id: str | None
    text: str
    parameters: tuple[str, ...]
    queued_at: dt.datetime
    sent_at: dt.datetime | None
    delivered_at: dt.datetime | None
    read_at: dt.datetime | None
    reply_conversation: str | None


_OPTED: Final = """EXISTS (SELECT 1 FROM broadcast_opt_outs o
                  WHERE o.tenant_id = r.tenant_id AND o.channel_id = $2
                    AND (o.address = r.address OR o.customer_id = r.customer_id))"""
_BLOCKED: Final = """EXISTS (SELECT 1 FROM blocks k
                  WHERE k.tenant_id = r.tenant_id AND k.unblocked_at IS NULL
                    AND (k.expires_at IS NULL OR k.expires_at > now())
                    AND ((k.kind = 'customer' AND k.value = r.customer_id)
                         OR (k.kind IN ('phone', 'email') AND k.value = r.address)))"""


async def claim(
    pool: asyncpg.Pool,
    tenant: str,
    channel_id: str,
    sender: str,
    session: str,
    limit: int,
    lease: dt.timedelta,
) -> Claimed:
    """Up to ``limit`` sends of the channel, claimed for ``lease`` (see the module docstring)."""
    with translated_errors():
        async with pool.acquire() as conn, conn.transaction():
            now: dt.datetime = await conn.fetchval("SELECT now()")
            await conn.execute(
                """UPDATE broadcasts SET state = 'sending', updated_at = now()
                   WHERE tenant_id = $1 AND channel_id = $2 AND state = 'scheduled'
                     AND schedule_at <= now()""",
                tenant,
                channel_id,
            )
            rows = await conn.fetch(
                """SELECT broadcast_id, content->>'template_name' AS template_name,
                          content->>'template_language' AS template_language
                   FROM broadcasts
                   WHERE tenant_id = $1 AND channel_id = $2 AND state = 'sending'
                   ORDER BY submitted_at, broadcast_id""",
                tenant,
                channel_id,
            )
            sends: list[Send] = []
            touched: list[str] = []
            for b in rows:
                if len(sends) >= limit:
                    break
                touched.append(b["broadcast_id"])
                sends.extend(
                    await _claim_one(
                        conn,
                        tenant,
                        channel_id,
                        b["broadcast_id"],
                        (b["template_name"] or "", b["template_language"] or ""),
                        sender,
                        session,
                        limit - len(sends),
                        lease,
                    )
                )
            await _complete(conn, tenant, touched)
    return Claimed(tuple(sends), now + lease)


async def _claim_one(
    conn: asyncpg.Connection,
    tenant: str,
    channel_id: str,
    broadcast_id: str,
    template: tuple[str, str],
    sender: str,
    session: str,
    limit: int,
    lease: dt.timedelta,
) -> list[Send]:
    picked = await conn.fetch(
        f"""SELECT r.recipient_id, {_OPTED} AS opted, {_BLOCKED} AS blocked
            FROM broadcast_recipients r
            WHERE r.tenant_id = $1 AND r.broadcast_id = $3 AND r.state IN ('queued', 'sending')
              AND (r.state = 'queued' OR r.lease_until < now()
                   OR (r.claim_sender = $4 AND r.claim_session <> $5))
            ORDER BY r.recipient_id
            LIMIT $6
            FOR UPDATE OF r SKIP LOCKED""",
        tenant,
        channel_id,
        broadcast_id,
        sender,
        session,
        limit,
    )
    if not picked:
        return []
    skipped_opted = [r["recipient_id"] for r in picked if r["opted"]]
    skipped_blocked = [r["recipient_id"] for r in picked if r["blocked"] and not r["opted"]]
    for state, ids in (("skipped_opted_out", skipped_opted), ("skipped_blocked", skipped_blocked)):
        if ids:
            await conn.execute(
                """UPDATE broadcast_recipients SET state = $4, lease_until = NULL
                   WHERE tenant_id = $1 AND broadcast_id = $2 AND recipient_id = ANY($3::int[])""",
                tenant,
                broadcast_id,
                ids,
                state,
            )
    wanted = [r["recipient_id"] for r in picked if not (r["opted"] or r["blocked"])]
    if not wanted:
        return []
    claimed = await conn.fetch(
        """UPDATE broadcast_recipients SET state = 'sending', claims = claims + 1,
               claim_sender = $4, claim_session = $5, claimed_at = now(),
               first_claimed_at = coalesce(first_claimed_at, now()), lease_until = now() + $6
           WHERE tenant_id = $1 AND broadcast_id = $2 AND recipient_id = ANY($3::int[])
           RETURNING recipient_id, address, text, subject, parameters, claims, queued_at,
                     claimed_at, first_claimed_at""",
        tenant,
        broadcast_id,
        wanted,
        sender,
        session,
        lease,
    )
    claimed = sorted(claimed, key=lambda r: r["recipient_id"])
    return [
        Send(
            broadcast_id,
            r["recipient_id"],
            r["address"],
            r["text"],
            r["subject"],
            tuple(r["parameters"]),
            template[0],
            template[1],
            r["claims"] - 1,
            r["queued_at"],
            r["claimed_at"],
            r["first_claimed_at"],
        )
        for r in claimed
    ]


async def _complete(conn: asyncpg.Connection, tenant: str, broadcast_ids: Sequence[str]) -> None:
    """Complete the sending broadcasts among ``broadcast_ids`` that have nothing left to send
    (one broadcast at a time, so that the check walks the pending recipients' index)."""
    for broadcast_id in broadcast_ids:
        await conn.execute(
            """UPDATE broadcasts b SET state = 'completed', ended_at = now(), updated_at = now()
               WHERE b.tenant_id = $1 AND b.broadcast_id = $2 AND b.state = 'sending'
                 AND NOT EXISTS (SELECT 1 FROM broadcast_recipients r
                                 WHERE r.tenant_id = $1 AND r.broadcast_id = $2
                                   AND r.state IN ('queued', 'sending'))""",
            tenant,
            broadcast_id,
        )


_BY_RECIPIENT: Final = """
    FROM unnest($3::text[], $4::int[], $5::text[], $6::text[], $7::text[])
         AS u(broadcast_id, recipient_id, provider_id, error, session)
    WHERE r.tenant_id = $1 AND r.broadcast_id = u.broadcast_id
      AND r.recipient_id = u.recipient_id
      AND EXISTS (SELECT 1 FROM broadcasts b WHERE b.tenant_id = r.tenant_id
                  AND b.broadcast_id = r.broadcast_id AND b.channel_id = $2)"""
_SQL: Final[dict[str, str]] = {
    "sent": f"""UPDATE broadcast_recipients r SET state = 'sent', provider_id = u.provider_id,
                    sent_at = now(), lease_until = NULL
                {_BY_RECIPIENT} AND r.state IN ('queued', 'sending')""",
    "failed": f"""UPDATE broadcast_recipients r SET state = 'failed', error = left(u.error, 1000),
                      failed_at = now(), lease_until = NULL
                  {_BY_RECIPIENT}
                    AND ((r.state = 'sending' AND r.claim_session = u.session)
                         OR r.state IN ('sent', 'delivered'))""",
    "released": f"""UPDATE broadcast_recipients r
                    SET state = CASE WHEN (SELECT b.state FROM broadcasts b
                                           WHERE b.tenant_id = r.tenant_id
                                             AND b.broadcast_id = r.broadcast_id) = 'cancelled'
                                     THEN 'cancelled' ELSE 'queued' END,
                        claims = greatest(0, claims - 1), lease_until = NULL
                    {_BY_RECIPIENT} AND r.state = 'sending' AND r.claim_session = u.session
                    RETURNING r.broadcast_id, r.state, r.text""",
    "delivered": f"""UPDATE broadcast_recipients r SET state = 'delivered', delivered_at = now()
                     {_BY_RECIPIENT} AND r.state = 'sent'""",
    "read": f"""UPDATE broadcast_recipients r SET state = 'read', read_at = now(),
                    delivered_at = coalesce(delivered_at, now())
                {_BY_RECIPIENT} AND r.state IN ('sent', 'delivered')""",
}


async def report(
    pool: asyncpg.Pool, tenant: str, channel_id: str, results: Sequence[Result]
) -> Reported:
    """Apply ``results`` from the channel's gateway (see the module docstring)."""
    applied = 0
    with translated_errors():
        async with pool.acquire() as conn, conn.transaction():
            resolved = await _resolve(conn, tenant, results)
            for outcome in ("sent", "delivered", "read", "failed", "released"):
                batch = [r for r in resolved if r.outcome == outcome]
                if outcome in ("delivered", "read", "failed"):
                    # a status naming the recipient (WhatsApp's callback data) first records
                    # that it was sent, if the gateway died before reporting it
                    accepted = [r for r in batch if r.provider_id]
                    if accepted:
                        await _apply(conn, tenant, channel_id, "sent", accepted)
                if batch:
                    applied += await _apply(conn, tenant, channel_id, outcome, batch)
            ids = sorted({r.broadcast_id for r in resolved})
            await _complete(conn, tenant, ids)
            stopped = await conn.fetch(
                "SELECT broadcast_id FROM broadcasts WHERE tenant_id = $1"
                " AND broadcast_id = ANY($2::text[]) AND state IN ('paused', 'cancelled')",
                tenant,
                ids,
            )
    return Reported(applied, tuple(r["broadcast_id"] for r in stopped))


async def _resolve(
    conn: asyncpg.Connection, tenant: str, results: Sequence[Result]
) -> list[Result]:
    """``results`` with the recipient of each status known only by its provider id filled in
    (unknown ids dropped: not a broadcast's message)."""
    by_provider = [r.provider_id for r in results if not r.broadcast_id and r.provider_id]
    found: dict[str, tuple[str, int]] = {}
    if by_provider:
        rows = await conn.fetch(
            "SELECT provider_id, broadcast_id, recipient_id FROM broadcast_recipients"
            " WHERE tenant_id = $1 AND provider_id = ANY($2::text[])",
            tenant,
            by_provider,
        )
        found = {r["provider_id"]: (r["broadcast_id"], r["recipient_id"]) for r in rows}
    resolved = []
    for r in results:
        if r.broadcast_id:
            resolved.append(r)
        elif r.provider_id in found:
            b, n = found[r.provider_id]
            resolved.append(Result(r.outcome, b, n, r.provider_id, r.error, r.session))
    return resolved


async def _apply(
    conn: asyncpg.Connection, tenant: str, channel_id: str, outcome: str, batch: list[Result]
) -> int:
    args = (
        tenant,
        channel_id,
        [r.broadcast_id for r in batch],
        [r.recipient_id for r in batch],
        [r.provider_id or None for r in batch],
        [r.error for r in batch],
        [r.session for r in batch],
    )
    if outcome != "released":
        status = await conn.execute(_SQL[outcome], *args)
        return int(status.split()[-1])
    rows = await conn.fetch(_SQL[outcome], *args)
    gone: dict[str, list[str]] = {}
    for row in rows:
        if row["state"] == "cancelled":
            gone.setdefault(row["broadcast_id"], []).append(row["text"])
    for broadcast_id, texts in gone.items():
        await _give_back(conn, tenant, broadcast_id, texts)
    return len(rows)


async def _give_back(
    conn: asyncpg.Connection, tenant: str, broadcast_id: str, texts: list[str]
) -> None:
    """The quota of sends a gateway released after their broadcast was cancelled."""
    found = await conn.fetchrow(
        "SELECT channel_type, quota::text AS quota FROM broadcasts"
        " WHERE tenant_id = $1 AND broadcast_id = $2",
        tenant,
        broadcast_id,
    )
    quota = json.loads(found["quota"]) if found is not None else {}
    if "month" not in quota:
        return
    month = dt.date.fromisoformat(quota["month"])
    await quotas.release(conn, tenant, "broadcast_recipients", len(texts), month=month)
    if found["channel_type"] == "sms":
        pieces = sum(sms_messages(t) for t in texts)
        await quotas.release(conn, tenant, "sms_per_month", pieces, month=month)


_RECIPIENT_SELECT: Final = """
SELECT r.broadcast_id, r.recipient_id, r.customer_id, r.address, r.state, r.error,
       r.provider_id, r.text, r.parameters, r.queued_at, r.sent_at, r.delivered_at, r.read_at,
       reply.conversation_id AS reply_conversation
FROM broadcast_recipients r
JOIN broadcasts b ON b.tenant_id = r.tenant_id AND b.broadcast_id = r.broadcast_id
LEFT JOIN LATERAL (
    SELECT array_remove(r.customer_id || ARRAY(
               SELECT i.customer_id FROM customer_identities i
               WHERE i.tenant_id = r.tenant_id AND i.channel = b.channel_id
                 AND i.external_id IN (r.address, ltrim(r.address, '+'))), NULL) AS customers
    ) who ON true
LEFT JOIN LATERAL (
    SELECT m.conversation_id FROM conversations c
    JOIN messages m ON m.tenant_id = c.tenant_id AND m.conversation_id = c.conversation_id
    WHERE r.sent_at IS NOT NULL AND c.tenant_id = r.tenant_id
      AND c.customer_id = ANY(who.customers) AND c.channel = b.channel_id
      AND m.sender = 'customer' AND m.created_at > r.sent_at AND m.created_at < r.sent_at + $5
    ORDER BY m.created_at LIMIT 1) reply ON true
WHERE r.tenant_id = $1 AND r.broadcast_id = $2 AND r.recipient_id > $3
  AND ($4::text IS NULL OR r.state = $4)
ORDER BY r.recipient_id
LIMIT $6"""


async def recipients(
    pool: asyncpg.Pool,
    tenant: str,
    broadcast_id: str,
    state: str | None,
    after: int,
    limit: int,
) -> list[Recipient]:
    """A page of the broadcast's recipients by id, after ``after``, each with the conversation
    its reply went to: the first customer message on the channel within ``REPLY_WINDOW`` after
    the send, from the recipient's customer or from the customer the address is on the channel
    (a reply from a number the gateway had not seen makes a customer of its own)."""
    with translated_errors():
        rows = await pool.fetch(
            _RECIPIENT_SELECT, tenant, broadcast_id, after, state, REPLY_WINDOW, limit
        )
    return [
        Recipient(
            r["broadcast_id"],
            r["recipient_id"],
            r["customer_id"],
            r["address"],
            r["state"],
            r["error"],
            r["provider_id"],
            r["text"],
            tuple(r["parameters"]),
            r["queued_at"],
            r["sent_at"],
            r["delivered_at"],
            r["read_at"],
            r["reply_conversation"],
        )
        for r in rows
    ]
