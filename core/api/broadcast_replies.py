"""Customers' replies that opt them out of broadcasts, or back in: the front door's side.

After ``ReceiveCustomerMessage`` recorded a message (the reply is an ordinary conversation:
nothing about it changes), a message that is nothing but an opt-out keyword (``STOP``,
``UNSUBSCRIBE``, ``退訂``...; ``core.broadcasts.stop``) opts the sender's address on that
channel out of broadcasts, and an opt-in keyword (``START``) back in
(``core.store.broadcast_opt_outs``). The check is a string comparison; only a keyword costs a
read (the channel's type) and a write. It follows the message and never fails it: if the write
fails it is logged, and the customer can send the keyword again.
"""

from __future__ import annotations

import structlog

from core.api.context import ApiContext
from core.broadcasts import stop
from core.broadcasts.content import CHANNEL_TYPES
from core.store import broadcast_opt_outs
from core.store.channels import Channels
from core.store.errors import StoreError

log = structlog.get_logger(__name__)


async def note_keyword(
    api: ApiContext, tenant: str, channel_id: str, customer_id: str, external_id: str, text: str
) -> bool:
    """Record the opt-out or opt-in ``text`` asks for, if any; whether one was recorded."""
    found = stop.keyword(text)
    if found is None:
        return False
    try:
        channel = await Channels(api.pool).get(tenant, channel_id)
        if channel is None or channel.type not in CHANNEL_TYPES:
            return False
        await broadcast_opt_outs.note(
            api.pool, tenant, channel_id, channel.type, external_id, customer_id, found
        )
    except (StoreError, OSError) as exc:
        log.warning("broadcast opt-out not recorded", channel=channel_id, error=str(exc))
        return False
    log.info(
        "broadcast opt-out" if found.action == "stop" else "broadcast opt-in",
        tenant=tenant,
        channel=channel_id,
        customer=customer_id,
    )
    return True
