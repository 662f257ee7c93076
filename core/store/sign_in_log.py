"""The console sign-in log (``console_logins``): sign-ins, refreshes, sign-outs, refusals.

Entries are appended by ``AuthService`` after the fact and read newest first in keyset pages.
An entry of a tenant that does not exist (a sign-in attempt naming one) is not recorded.
Texts from the client (the login typed, the user agent) are cut to their columns' lengths.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

import asyncpg

from core.store.errors import translated_errors

MAX_LOGIN: Final = 200
MAX_ADDRESS: Final = 64
MAX_USER_AGENT: Final = 512


class Kind(StrEnum):
    SIGN_IN = "sign_in"
    REFRESH = "refresh"
    SIGN_OUT = "sign_out"
    FAILED = "failed"


class Failure(StrEnum):
    UNKNOWN_LOGIN = "unknown_login"
    WRONG_PASSWORD = "wrong_password"
    NO_PASSWORD = "no_password"
    RATE_LIMITED = "rate_limited"


@dataclass(frozen=True, slots=True)
class Client:
    """Who called, as the front door saw it."""

    address: str = ""
    user_agent: str = ""


@dataclass(frozen=True, slots=True)
class Entry:
    login_id: int
    kind: Kind
    at: dt.datetime
    agent_id: str | None
    login: str
    client: Client
    failure: Failure | None
    credential_id: str | None


class SignInLog:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def record(
        self,
        tenant: str,
        kind: Kind,
        client: Client,
        *,
        agent_id: str | None = None,
        login: str = "",
        failure: Failure | None = None,
        credential_id: str | None = None,
    ) -> None:
        """Append an entry (nothing for an unknown tenant)."""
        with translated_errors():
            await self._pool.execute(
                "INSERT INTO console_logins (tenant_id, kind, agent_id, login, client_address,"
                " user_agent, failure, credential_id)"
                " SELECT $1, $2, $3, $4, $5, $6, $7, $8 WHERE EXISTS"
                " (SELECT 1 FROM tenants WHERE tenant_id = $1)",
                tenant,
                kind.value,
                agent_id,
                login[:MAX_LOGIN],
                client.address[:MAX_ADDRESS],
                client.user_agent[:MAX_USER_AGENT],
                None if failure is None else failure.value,
                credential_id,
            )

    async def page(
        self, tenant: str, *, agent_id: str | None, before: int | None, limit: int
    ) -> list[Entry]:
        """Up to ``limit`` entries older than id ``before`` (None: from the newest), newest
        first; only ``agent_id``'s when given."""
        with translated_errors():
            rows = await self._pool.fetch(
                "SELECT login_id, kind, at, agent_id, login, client_address, user_agent,"
                " failure, credential_id FROM console_logins"
                " WHERE tenant_id = $1 AND ($2::text IS NULL OR agent_id = $2)"
                " AND ($3::bigint IS NULL OR login_id < $3)"
                " ORDER BY login_id DESC LIMIT $4",
                tenant,
                agent_id,
                before,
                limit,
            )
        return [
            Entry(
                r["login_id"],
                Kind(r["kind"]),
                r["at"],
                r["agent_id"],
                r["login"],
                Client(r["client_address"], r["user_agent"]),
                None if r["failure"] is None else Failure(r["failure"]),
                r["credential_id"],
            )
            for r in rows
        ]
