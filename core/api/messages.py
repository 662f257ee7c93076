"""Stored messages and the events that stand for them.

``MessageIndex`` maps a ``MessageRecorded`` event to its stored message; each ``ApiContext`` has
one, shared by its servicers (writers record there what readers look up).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import Final

import asyncpg

from core.routing import events as ev
from core.routing.errors import NotFound
from core.runtime.shard import Outcome
from core.store.records import MessageRecord, message_from_row

MESSAGE_SQL: Final = """
SELECT message_id, conversation_id, channel, direction, sender, agent_id, content, attachments,
       provider_message_id, created_at FROM messages"""


async def load_message(pool: asyncpg.Pool, tenant: str, message_id: int) -> MessageRecord:
    row = await pool.fetchrow(
        MESSAGE_SQL + " WHERE tenant_id = $1 AND message_id = $2", tenant, message_id
    )
    if row is None:
        raise NotFound(f"message {message_id} not found")
    return message_from_row(row)


async def latest_message(
    pool: asyncpg.Pool, tenant: str, conversation_id: str, sender: str
) -> MessageRecord | None:
    row = await pool.fetchrow(
        MESSAGE_SQL + " WHERE tenant_id = $1 AND conversation_id = $2 AND sender = $3"
        " ORDER BY message_id DESC LIMIT 1",
        tenant,
        conversation_id,
        sender,
    )
    return None if row is None else message_from_row(row)


class MessageIndex:
    """Maps a ``MessageRecorded`` event to the stored message it stands for.

    Writers call ``expect`` before submitting ``RecordMessage`` and ``settle`` after (with the
    outcome): the event id then names the message. A stream that sees the event before the
    writer settles takes the oldest expected message of that conversation and sender. Without
    either (another process wrote it), ``lookup`` falls back to the conversation's latest
    message of that sender, which is right unless messages arrive faster than streams read.
    Bounded: the oldest ``size`` mappings are kept.
    """

    def __init__(self, size: int = 100_000) -> None:
        self._size = size
        self._pending: dict[tuple[str, str, str], deque[int]] = {}
        self._by_event: OrderedDict[tuple[str, int], int] = OrderedDict()

    def expect(self, tenant: str, conversation_id: str, sender: str, message_id: int) -> None:
        self._pending.setdefault((tenant, conversation_id, sender), deque()).append(message_id)

    def settle(
        self, tenant: str, conversation_id: str, sender: str, message_id: int, outcome: Outcome
    ) -> None:
        key = (tenant, conversation_id, sender)
        pending = self._pending.get(key)
        if pending is not None and message_id in pending:
            pending.remove(message_id)
            if not pending:
                del self._pending[key]
        for offset, event in enumerate(outcome.events):
            if isinstance(event, ev.MessageRecorded):
                self._remember((tenant, outcome.first_id + offset), message_id)

    def _remember(self, key: tuple[str, int], message_id: int) -> None:
        self._by_event[key] = message_id
        while len(self._by_event) > self._size:
            self._by_event.popitem(last=False)

    async def lookup(
        self, pool: asyncpg.Pool, tenant: str, event_id: int, event: ev.MessageRecorded
    ) -> MessageRecord | None:
        sender = event.sender.value
        message_id = self._by_event.get((tenant, event_id))
        if message_id is None:
            pending = self._pending.get((tenant, event.conversation_id, sender))
            if pending:
                message_id = pending.popleft()
                self._remember((tenant, event_id), message_id)
        if message_id is not None:
            return await load_message(pool, tenant, message_id)
        return await latest_message(pool, tenant, event.conversation_id, sender)
