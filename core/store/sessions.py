"""Console sessions: chains of short-lived credentials, one per refresh.

A sign-in (``start``) creates a credential like an API token (``core.store.credentials``: the
same table, token format and checks, so every interceptor and the revocation check treat it
alike) with an expiry (``TOKEN_TTL``), a ``session_id`` (the first credential's id) and the
session's start. ``refresh`` issues the next credential of the chain, expiring no later than
``SESSION_MAX`` after the start, and lets the one it replaces expire ``GRACE`` later (calls in
flight and streams move over meanwhile). ``end`` revokes every live credential of a session;
``end_agent`` every session of an agent. Expired and revoked credentials stay (the revocation
check must see them go) until ``purge`` deletes those long gone.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final

import asyncpg

from core.store import credentials
from core.store.errors import translated_errors

TOKEN_TTL: Final = dt.timedelta(hours=1)
SESSION_MAX: Final = dt.timedelta(hours=12)
GRACE: Final = dt.timedelta(seconds=30)
DISPLAY_NAME: Final = "console session"


@dataclass(frozen=True, slots=True)
class Issued:
    """A session's new credential and its token (the only time the token exists in clear)."""

    credential_id: str
    session_id: str
    token: str
    role: str
    agent_id: str
    expires_at: dt.datetime
    session_ends_at: dt.datetime


@dataclass(frozen=True, slots=True)
class Lifetimes:
    token: dt.timedelta = TOKEN_TTL
    session: dt.timedelta = SESSION_MAX
    grace: dt.timedelta = GRACE


_INSERT: Final = """
INSERT INTO api_credentials
    (credential_id, tenant_id, role, agent_id, secret_hash, display_name, expires_at,
     session_id, session_started_at)
VALUES ($1, $2, $3, $4, $5, $6,
        least(now() + $7::interval, coalesce($9::timestamptz, now()) + $8::interval),
        coalesce($10, $1), coalesce($9::timestamptz, now()))
RETURNING session_id, expires_at, session_started_at + $8::interval AS session_ends_at
"""


class Sessions:
    def __init__(self, pool: asyncpg.Pool, lifetimes: Lifetimes | None = None) -> None:
        self._pool = pool
        self.lifetimes = lifetimes or Lifetimes()

    async def _issue(
        self,
        conn: asyncpg.Connection,
        tenant: str,
        agent_id: str,
        role: str,
        started: dt.datetime | None,
        session_id: str | None,
    ) -> Issued:
        if role not in ("agent", "supervisor", "admin"):
            raise ValueError(f"a console session's role is agent, supervisor or admin: {role!r}")
        credential_id, secret = credentials.new_secret()
        life = self.lifetimes
        row = await conn.fetchrow(
            _INSERT,
            credential_id,
            tenant,
            role,
            agent_id,
            credentials.secret_hash(secret),
            DISPLAY_NAME,
            life.token,
            life.session,
            started,
            session_id,
        )
        assert row is not None
        return Issued(
            credential_id,
            row["session_id"],
            credentials.token_of(credential_id, secret),
            role,
            agent_id,
            row["expires_at"],
            row["session_ends_at"],
        )

    async def start(self, tenant: str, agent_id: str, role: str) -> Issued:
        """A new session's first credential."""
        with translated_errors():
            async with self._pool.acquire() as conn:
                return await self._issue(conn, tenant, agent_id, role, None, None)

    async def refresh(self, credential_id: str, role: str) -> Issued | None:
        """The next credential of ``credential_id``'s session, with ``role``; the one replaced
        then expires within the grace. None when ``credential_id`` is no live session credential
        or its session has lasted ``SESSION_MAX``."""
        life = self.lifetimes
        with translated_errors():
            async with self._pool.acquire() as conn, conn.transaction():
                row = await conn.fetchrow(
                    "SELECT tenant_id, agent_id, session_id, session_started_at"
                    " FROM api_credentials WHERE credential_id = $1 AND session_id IS NOT NULL"
                    " AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())"
                    " AND session_started_at + $2::interval > now() FOR UPDATE",
                    credential_id,
                    life.session,
                )
                if row is None:
                    return None
                issued = await self._issue(
                    conn,
                    row["tenant_id"],
                    row["agent_id"],
                    role,
                    row["session_started_at"],
                    row["session_id"],
                )
                await conn.execute(
                    "UPDATE api_credentials"
                    " SET expires_at = least(expires_at, now() + $2::interval)"
                    " WHERE credential_id = $1",
                    credential_id,
                    life.grace,
                )
        return issued

    async def is_session(self, credential_id: str) -> bool:
        with translated_errors():
            found = await self._pool.fetchval(
                "SELECT session_id IS NOT NULL FROM api_credentials WHERE credential_id = $1",
                credential_id,
            )
        return bool(found)

    async def end(self, credential_id: str) -> tuple[str, ...]:
        """Revoke ``credential_id`` and, if it is a session's, every live credential of its
        session: the ids revoked."""
        with translated_errors():
            rows = await self._pool.fetch(
                "UPDATE api_credentials SET revoked_at = now()"
                " WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())"
                " AND (credential_id = $1 OR session_id = (SELECT session_id"
                "      FROM api_credentials WHERE credential_id = $1))"
                " RETURNING credential_id",
                credential_id,
            )
        return tuple(r["credential_id"] for r in rows)

    async def end_agent(self, tenant: str, agent_id: str) -> int:
        """Revoke every live session credential of the agent; how many sessions that ended."""
        with translated_errors():
            rows = await self._pool.fetch(
                "UPDATE api_credentials SET revoked_at = now()"
                " WHERE tenant_id = $1 AND agent_id = $2 AND session_id IS NOT NULL"
                " AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())"
                " RETURNING session_id",
                tenant,
                agent_id,
            )
        return len({r["session_id"] for r in rows})

    async def purge(self, older_than: dt.timedelta = dt.timedelta(days=30)) -> int:
        """Delete session credentials revoked or expired more than ``older_than`` ago (the
        sign-in log keeps their history); how many."""
        with translated_errors():
            status = await self._pool.execute(
                "DELETE FROM api_credentials WHERE session_id IS NOT NULL"
                " AND least(coalesce(revoked_at, 'infinity'), coalesce(expires_at, 'infinity'))"
                "     < now() - $1::interval",
                older_than,
            )
        return int(status.split()[-1])
