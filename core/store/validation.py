"""Checks of input against the schema's rules, done before writing (the schema is the backstop)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Final

import asyncpg

from core.store.errors import InvalidInput, UnknownTenant

NAME_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
"""Tenant ids (the schema's CHECK) and channel names: no ``:``, so Redis keys stay unambiguous."""
PHONE_PATTERN: Final = re.compile(r"\+[1-9][0-9]{4,14}")
"""E.164, as the schema's CHECK on ``customers.phone`` (the gateways normalise)."""
MAX_CONTENT: Final = 65536
"""A message's content, in characters (the schema's CHECK on ``messages.content``)."""
MAX_PROVIDER_ID: Final = 256
"""A provider's message id, in characters (the schema's CHECK on ``messages``)."""


def require_text(field: str, value: object, *, min_len: int = 0, max_len: int) -> str:
    """``value`` if it is text PostgreSQL can store within the limits, else ``InvalidInput``."""
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be text, got {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput(f"{field} is not valid UTF-8 (at character {exc.start})") from exc
    if "\x00" in value:
        raise InvalidInput(f"{field} contains a NUL character")
    if not min_len <= len(value) <= max_len:
        raise InvalidInput(
            f"{field} must be {min_len} to {max_len} characters long, got {len(value)}"
        )
    return value


def require_name(field: str, value: object) -> str:
    text = require_text(field, value, min_len=1, max_len=64)
    if NAME_PATTERN.fullmatch(text) is None:
        raise InvalidInput(f"{field} {text!r} must match {NAME_PATTERN.pattern}")
    return text


def require_phone(value: object) -> str:
    text = require_text("phone", value, max_len=16)
    if PHONE_PATTERN.fullmatch(text) is None:
        raise InvalidInput(f"phone {text!r} is not E.164 (like +85291234567)")
    return text


def require_aware(field: str, value: object) -> dt.datetime:
    if not isinstance(value, dt.datetime) or value.utcoffset() is None:
        raise InvalidInput(f"{field} must be a datetime with a time zone")
    return value


async def require_tenant(conn: asyncpg.Connection, tenant: str, timeout: float) -> None:
    """``UnknownTenant`` unless the tenant exists; holds it (``FOR KEY SHARE``) till commit."""
    found = await conn.fetchval(
        "SELECT 1 FROM tenants WHERE tenant_id = $1 FOR KEY SHARE", tenant, timeout=timeout
    )
    if found is None:
        raise UnknownTenant(f"unknown tenant {tenant!r}")
