"""API credentials: random tokens shown once, stored only as hashes.

A token reads ``ush_<credential id>_<secret>``. The secret is 32 random bytes, so a plain SHA-256
is as good as a slow password hash here; lookups are by id and compared in constant time. A
credential may expire (``expires_at``: console sessions' tokens, ``core.store.sessions``); once
expired it is refused like a revoked one, and ``revoked_since`` names it so streams end.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass

import asyncpg

from core.store.errors import InvalidCredential

ROLES = ("gateway", "agent", "supervisor", "admin")
PREFIX = "ush"


@dataclass(frozen=True, slots=True)
class Credential:
    credential_id: str
    tenant_id: str
    role: str
    agent_id: str | None


def secret_hash(secret: str) -> str:
    """What is stored of a token's secret."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> tuple[str, str]:
    """A new credential id and secret."""
    return secrets.token_hex(8), secrets.token_urlsafe(32)


def token_of(credential_id: str, secret: str) -> str:
    return f"{PREFIX}_{credential_id}_{secret}"


async def create(
    pool: asyncpg.Pool,
    tenant: str,
    role: str,
    agent_id: str | None = None,
    *,
    display_name: str = "",
) -> tuple[Credential, str]:
    """A new credential and its token (the only time the token exists in clear);
    ``display_name`` is a note for people (where the token is used)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if (role == "agent") != (agent_id is not None):
        raise ValueError("an agent credential names its agent, and only it does")
    credential_id, secret = new_secret()
    await pool.execute(
        "INSERT INTO api_credentials"
        " (credential_id, tenant_id, role, agent_id, secret_hash, display_name)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        credential_id,
        tenant,
        role,
        agent_id,
        secret_hash(secret),
        display_name,
    )
    return Credential(credential_id, tenant, role, agent_id), token_of(credential_id, secret)


async def verify(pool: asyncpg.Pool, token: str) -> Credential:
    """The credential a token stands for; ``InvalidCredential`` if unknown, wrong, revoked or
    expired."""
    prefix, _, rest = token.partition("_")
    credential_id, _, secret = rest.partition("_")
    if prefix != PREFIX or not credential_id or not secret:
        raise InvalidCredential("malformed token")
    row = await pool.fetchrow(
        "SELECT tenant_id, role, agent_id, secret_hash FROM api_credentials"
        " WHERE credential_id = $1 AND revoked_at IS NULL"
        " AND (expires_at IS NULL OR expires_at > now())",
        credential_id,
    )
    if row is None or not hmac.compare_digest(row["secret_hash"], secret_hash(secret)):
        raise InvalidCredential("unknown or revoked credential")
    return Credential(credential_id, row["tenant_id"], row["role"], row["agent_id"])


async def revoke(pool: asyncpg.Pool, credential_id: str) -> bool:
    """Revoke a credential (False if unknown or revoked before). Front doors that cached it
    notice within their revocation check's interval (``core.api.auth.RevocationCheck``)."""
    status = await pool.execute(
        "UPDATE api_credentials SET revoked_at = now() WHERE credential_id = $1"
        " AND revoked_at IS NULL",
        credential_id,
    )
    return bool(status.endswith(" 1"))


async def revoked_since(
    pool: asyncpg.Pool, since: dt.datetime | None
) -> tuple[frozenset[str], dt.datetime]:
    """(the credentials revoked, or expired, after ``since``, the store's clock now). With
    ``since`` None, only the clock: a first look has nothing cached to evict yet."""
    row = await pool.fetchrow(
        "SELECT now() AS now, array(SELECT credential_id FROM api_credentials"
        " WHERE $1::timestamptz IS NOT NULL AND revoked_at > $1"
        " UNION SELECT credential_id FROM api_credentials"
        " WHERE $1::timestamptz IS NOT NULL AND expires_at > $1 AND expires_at <= now())"
        " AS revoked",
        since,
    )
    assert row is not None
    return frozenset(row["revoked"]), row["now"]
