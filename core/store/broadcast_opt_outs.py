"""Opt-outs of broadcasts, per channel and address (migration 0023): written when a customer
replies with an opt-out keyword (``core.broadcasts.stop``), removed by an opt-in keyword; read
by previews, sends (``core.store.broadcast_audience``) and claims (``broadcast_sends``), which
skip a recipient whose address or customer opted out on the broadcast's channel."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from core.broadcasts import addresses
from core.broadcasts.stop import Keyword
from core.store.errors import translated_errors


@dataclass(frozen=True, slots=True)
class OptedOut:
    """A channel's opt-outs, as sets to test recipients against."""

    addresses: frozenset[str]
    customers: frozenset[str]

    def __contains__(self, who: tuple[str, str | None]) -> bool:
        address, customer_id = who
        return address in self.addresses or (
            customer_id is not None and customer_id in self.customers
        )


async def note(
    pool: asyncpg.Pool,
    tenant: str,
    channel_id: str,
    channel_type: str,
    external_id: str,
    customer_id: str | None,
    keyword: Keyword,
) -> None:
    """Record what a customer's keyword message asks: opt out (again: no change) or back in
    (every opt-out of the address or the customer on the channel goes)."""
    address = addresses.from_external_id(channel_type, external_id)
    with translated_errors():
        if keyword.action == "stop":
            await pool.execute(
                """INSERT INTO broadcast_opt_outs (tenant_id, channel_id, address, customer_id,
                                                   keyword)
                   VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING""",
                tenant,
                channel_id,
                address,
                customer_id,
                keyword.word,
            )
            return
        await pool.execute(
            """DELETE FROM broadcast_opt_outs WHERE tenant_id = $1 AND channel_id = $2
               AND (address = $3 OR customer_id = $4)""",
            tenant,
            channel_id,
            address,
            customer_id,
        )


async def of_channel(
    conn: asyncpg.Pool | asyncpg.Connection, tenant: str, channel_id: str
) -> OptedOut:
    """Every opt-out of the channel (read once per preview or send)."""
    rows = await conn.fetch(
        "SELECT address, customer_id FROM broadcast_opt_outs WHERE tenant_id = $1"
        " AND channel_id = $2",
        tenant,
        channel_id,
    )
    return OptedOut(
        frozenset(r["address"] for r in rows),
        frozenset(r["customer_id"] for r in rows if r["customer_id"] is not None),
    )


async def is_opted_out(pool: asyncpg.Pool, tenant: str, channel_id: str, address: str) -> bool:
    """Whether ``address`` opted out on the channel."""
    with translated_errors():
        found = await pool.fetchval(
            "SELECT 1 FROM broadcast_opt_outs WHERE tenant_id = $1 AND channel_id = $2"
            " AND address = $3",
            tenant,
            channel_id,
            address,
        )
    return found is not None
