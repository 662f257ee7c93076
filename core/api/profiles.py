"""The customer's profile on their conversations, for the front door (``core.store.
customer_profiles`` reads it, the shard holds it):

- ``read`` once when a conversation starts or reopens; the command carries it;
- ``refresh``, ``refresh_changed`` and ``refresh_block`` after a customer's record changed
  (details, tags, groups, a merge, an import, a block or unblock): one read for all the
  customers concerned that have an open conversation, then one ``RefreshCustomerProfile`` per
  customer, which updates their conversations in the shard and tells the agents who see them.

A refresh follows the store's write and never fails the call that wrote: if it cannot run (the
store or a shard unavailable) the failure is logged, and consoles show the older profile until
the customer changes again or the conversation reopens. A conversation that starts while its
customer changes may read the profile just before the change and be stored just after the
refresh looked for open conversations; it then shows the older profile likewise.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Final

import structlog

from core.api.context import ApiContext
from core.routing import commands as c
from core.routing.model import CustomerProfile
from core.store import customer_profiles
from core.store.blocklist import Kind
from core.store.errors import StoreError

log = structlog.get_logger(__name__)

IN_FLIGHT: Final = 64
"""Refresh commands submitted at once (the dispatcher coalesces them per shard)."""


async def read(
    api: ApiContext, tenant: str, customer_id: str, *, excluding: str = ""
) -> CustomerProfile | None:
    """The customer's profile now (None: no such customer); ``excluding`` a conversation not
    counted among their previous ones (the one being reopened)."""
    found = await customer_profiles.profiles(api.pool, tenant, [customer_id], excluding=excluding)
    return found.get(customer_id)


async def refresh(api: ApiContext, tenant: str, customer_ids: Sequence[str]) -> int:
    """Show these customers' records now on their open conversations; how many customers'
    conversations were sent a profile."""
    try:
        found = await customer_profiles.open_profiles(api.pool, tenant, customer_ids)
    except StoreError:
        log.exception("profile refresh: reading profiles failed", tenant=tenant)
        return 0
    return await _submit(api, tenant, found)


async def refresh_changed(api: ApiContext, tenant: str, since: dt.datetime) -> int:
    """As ``refresh``, for the customers written at ``since`` or later (an import)."""
    try:
        found = await customer_profiles.changed_open_profiles(api.pool, tenant, since)
    except StoreError:
        log.exception("profile refresh: reading changed profiles failed", tenant=tenant)
        return 0
    return await _submit(api, tenant, found)


async def refresh_block(api: ApiContext, tenant: str, kind: Kind, value: str) -> int:
    """As ``refresh``, for the customers a block's target (normalized) stands on."""
    try:
        targets = await customer_profiles.block_targets(api.pool, tenant, kind, value)
    except StoreError:
        log.exception("profile refresh: finding a block's customers failed", tenant=tenant)
        return 0
    return await refresh(api, tenant, targets)


async def since_now(api: ApiContext) -> dt.datetime | None:
    """The instant to pass ``refresh_changed`` after a bulk write (None: unknown, skip)."""
    try:
        return await customer_profiles.database_now(api.pool)
    except StoreError:
        log.exception("profile refresh: reading the database clock failed")
        return None


async def _submit(api: ApiContext, tenant: str, found: Mapping[str, CustomerProfile]) -> int:
    items = sorted(found.items())
    done = 0
    for start in range(0, len(items), IN_FLIGHT):
        chunk = items[start : start + IN_FLIGHT]
        outcomes = await asyncio.gather(
            *(
                api.submit(
                    c.RefreshCustomerProfile(tenant=tenant, customer_id=customer, profile=profile)
                )
                for customer, profile in chunk
            ),
            return_exceptions=True,
        )
        for (customer, _), outcome in zip(chunk, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                log.error("profile refresh failed", tenant=tenant, customer=customer, exc=outcome)
            elif outcome.failure is not None:
                log.warning(
                    "profile refresh refused",
                    tenant=tenant,
                    customer=customer,
                    code=outcome.failure.code,
                    message=outcome.failure.message,
                )
            else:
                done += 1
    return done
