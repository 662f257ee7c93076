"""Channels: where a tenant's customers reach it, and what each gateway needs to serve them.

Settings and secrets are flat string maps; the gateways know which keys their provider needs.
Secrets are stored in clear (gateways must present them to the providers) and leave the store
only through ``list_for_gateway``; everything else sees them blanked.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

import asyncpg

from core.store.errors import InvalidInput, translated_errors
from core.store.validation import require_name, require_text

TYPES: Final = ("web_chat", "whatsapp", "line", "sms", "email")
MAX_KEYS: Final = 64
MAX_KEY: Final = 64
MAX_VALUE: Final = 8192


@dataclass(frozen=True, slots=True)
class Channel:
    channel_id: str
    type: str
    display_name: str = ""
    settings: Mapping[str, str] = field(default_factory=dict)
    secrets: Mapping[str, str] = field(default_factory=dict)
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None

    def blanked(self) -> Channel:
        """The channel with its secrets' values removed (the keys stay: what is set)."""
        return Channel(
            self.channel_id,
            self.type,
            self.display_name,
            self.settings,
            dict.fromkeys(self.secrets, ""),
            self.created_at,
            self.updated_at,
        )


def validated(channel: Channel) -> Channel:
    """``channel`` if it can be stored, else ``InvalidInput`` naming the field."""
    require_name("channel_id", channel.channel_id)
    if channel.type not in TYPES:
        raise InvalidInput(f"type must be one of {', '.join(TYPES)}")
    require_text("display_name", channel.display_name, max_len=200)
    for name, values in (("settings", channel.settings), ("secrets", channel.secrets)):
        if len(values) > MAX_KEYS:
            raise InvalidInput(f"{name} holds at most {MAX_KEYS} keys")
        for key, value in values.items():
            require_text(f"{name} key", key, min_len=1, max_len=MAX_KEY)
            require_text(f"{name}[{key!r}]", value, max_len=MAX_VALUE)
    return channel


_COLUMNS: Final = "channel_id, type, display_name, settings, secrets, created_at, updated_at"


def _channel(row: asyncpg.Record) -> Channel:
    return Channel(
        row["channel_id"],
        row["type"],
        row["display_name"],
        json.loads(row["settings"]),
        json.loads(row["secrets"]),
        row["created_at"],
        row["updated_at"],
    )


class Channels:
    """The ``channels`` table of every tenant."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def get(self, tenant: str, channel_id: str) -> Channel | None:
        with translated_errors():
            row = await self._pool.fetchrow(
                f"SELECT {_COLUMNS} FROM channels WHERE tenant_id = $1 AND channel_id = $2",
                tenant,
                channel_id,
            )
        return None if row is None else _channel(row)

    async def page(self, tenant: str, after: str, size: int) -> list[Channel]:
        """Up to ``size`` channels whose id sorts after ``after``, by id."""
        with translated_errors():
            rows = await self._pool.fetch(
                f"SELECT {_COLUMNS} FROM channels WHERE tenant_id = $1 AND channel_id > $2"
                " ORDER BY channel_id LIMIT $3",
                tenant,
                after,
                size,
            )
        return [_channel(r) for r in rows]

    async def list_for_gateway(self, tenant: str, type: str) -> list[Channel]:
        """Every channel of one type, secrets included: for the gateway serving them."""
        with translated_errors():
            rows = await self._pool.fetch(
                f"SELECT {_COLUMNS} FROM channels WHERE tenant_id = $1 AND type = $2"
                " ORDER BY channel_id",
                tenant,
                type,
            )
        return [_channel(r) for r in rows]

    async def create(self, tenant: str, channel: Channel) -> Channel | None:
        """The stored channel, or None if the id is taken."""
        validated(channel)
        with translated_errors():
            row = await self._pool.fetchrow(
                "INSERT INTO channels (tenant_id, channel_id, type, display_name, settings,"
                " secrets) VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb)"
                f" ON CONFLICT DO NOTHING RETURNING {_COLUMNS}",
                tenant,
                channel.channel_id,
                channel.type,
                channel.display_name,
                json.dumps(dict(channel.settings)),
                json.dumps(dict(channel.secrets)),
            )
        return None if row is None else _channel(row)

    async def update(self, tenant: str, channel: Channel) -> Channel | None:
        """Write display name, settings and secrets; None if there is no such channel."""
        validated(channel)
        with translated_errors():
            row = await self._pool.fetchrow(
                "UPDATE channels SET display_name = $3, settings = $4::jsonb,"
                " secrets = $5::jsonb, updated_at = now()"
                f" WHERE tenant_id = $1 AND channel_id = $2 RETURNING {_COLUMNS}",
                tenant,
                channel.channel_id,
                channel.display_name,
                json.dumps(dict(channel.settings)),
                json.dumps(dict(channel.secrets)),
            )
        return None if row is None else _channel(row)

    async def delete(self, tenant: str, channel_id: str) -> bool:
        with translated_errors():
            status = await self._pool.execute(
                "DELETE FROM channels WHERE tenant_id = $1 AND channel_id = $2", tenant, channel_id
            )
        return bool(status == "DELETE 1")
