"""Agents' console passwords: argon2id hashes, the console role, and whom a login names.

Hashes are argon2-cffi's ``PasswordHasher`` with its default parameters (argon2id, RFC 9106's
low-memory profile: 3 passes over 64 MiB, 4 lanes); the parameters travel in each hash, so a
hash made under older parameters still verifies, and ``verify`` rehashes it under the current
ones (``Check.rehashed``). Hashing is CPU- and memory-hard by design (tens of milliseconds and
64 MiB each), so it runs in worker threads, at most ``concurrency`` at once per process: a
burst of sign-ins queues rather than exhausting memory.

``verify`` costs one hash whether or not the login named an agent with a password (a fixed
dummy hash stands in), so the answer's timing does not tell which logins exist.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, TypeVar

import asyncpg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from core.store.errors import translated_errors

MIN_LENGTH: Final = 10
MAX_LENGTH: Final = 128
CONSOLE_ROLES: Final = ("agent", "supervisor", "admin")

T = TypeVar("T")


class Outcome(StrEnum):
    """How a sign-in's password check went (the caller is told only yes or no)."""

    OK = "ok"
    UNKNOWN_LOGIN = "unknown_login"
    WRONG_PASSWORD = "wrong_password"
    NO_PASSWORD = "no_password"


@dataclass(frozen=True, slots=True)
class Account:
    """An agent a login names, with what signing in needs."""

    tenant: str
    agent_id: str
    display_name: str
    password_hash: str | None
    """None: no password set, so no sign-in."""
    console_role: str


@dataclass(frozen=True, slots=True)
class Check:
    outcome: Outcome
    rehashed: bool = False
    """The stored hash was made under other parameters and has been replaced."""


def problem(password: str, agent_id: str, display_name: str) -> str | None:
    """Why ``password`` may not be the agent's (None: it may): 10 to 128 characters, and not
    the agent's id or display name (compared without regard to case)."""
    if len(password) < MIN_LENGTH:
        return f"a password has at least {MIN_LENGTH} characters"
    if len(password) > MAX_LENGTH:
        return f"a password has at most {MAX_LENGTH} characters"
    folded = password.strip().casefold()
    if folded in (agent_id.casefold(), display_name.strip().casefold()):
        return "a password may not be the agent's id or display name"
    return None


_ACCOUNTS: Final = """
SELECT a.agent_id, coalesce(a.profile ->> 'name', '') AS display_name, p.password_hash,
       coalesce(p.console_role, 'agent') AS console_role,
       CASE WHEN a.agent_id = $2 THEN 0 WHEN lower(a.agent_id) = lower($2) THEN 1 ELSE 2 END
           AS rank
FROM agents a
LEFT JOIN agent_passwords p ON p.tenant_id = a.tenant_id AND p.agent_id = a.agent_id
WHERE a.tenant_id = $1 AND a.removed_at IS NULL
  AND (lower(a.agent_id) = lower($2) OR lower(a.profile ->> 'name') = lower($2))
ORDER BY rank, a.agent_id
LIMIT 4
"""


class Passwords:
    """The ``agent_passwords`` table and the hashing around it."""

    def __init__(
        self, pool: asyncpg.Pool, *, hasher: PasswordHasher | None = None, concurrency: int = 2
    ) -> None:
        self._pool = pool
        self.hasher = hasher or PasswordHasher()
        self._slots = asyncio.Semaphore(concurrency)
        self._dummy: str | None = None

    async def _run(self, call: functools.partial[T]) -> T:
        async with self._slots:
            return await asyncio.to_thread(call)

    async def hash(self, password: str) -> str:
        return await self._run(functools.partial(self.hasher.hash, password))

    async def account(self, tenant: str, login: str) -> Account | None:
        """The live agent ``login`` names: its id exactly, else its id or display name without
        regard to case; None when none does, or when several do at the best match."""
        with translated_errors():
            rows = await self._pool.fetch(_ACCOUNTS, tenant, login.strip())
        if not rows:
            return None
        best = [r for r in rows if r["rank"] == rows[0]["rank"]]
        if len(best) > 1:
            return None
        row = best[0]
        return Account(
            tenant, row["agent_id"], row["display_name"], row["password_hash"], row["console_role"]
        )

    async def agent(self, tenant: str, agent_id: str) -> Account | None:
        """The live agent ``agent_id`` (exactly), with its password's facts."""
        found = await self.account(tenant, agent_id)
        return found if found is not None and found.agent_id == agent_id else None

    async def verify(self, account: Account | None, password: str) -> Check:
        """Whether ``password`` is the account's, always at the cost of one hash; a correct
        password whose hash used other parameters is rehashed and stored."""
        stored = None if account is None else account.password_hash
        if stored is None:
            if self._dummy is None:
                self._dummy = await self.hash("not a password: a stand-in for timing")
            await self._matches(self._dummy, password)
            if account is None:
                return Check(Outcome.UNKNOWN_LOGIN)
            return Check(Outcome.NO_PASSWORD)
        assert account is not None
        if not await self._matches(stored, password):
            return Check(Outcome.WRONG_PASSWORD)
        if not self.hasher.check_needs_rehash(stored):
            return Check(Outcome.OK)
        fresh = await self.hash(password)
        with translated_errors():
            await self._pool.execute(
                "UPDATE agent_passwords SET password_hash = $4"
                " WHERE tenant_id = $1 AND agent_id = $2 AND password_hash = $3",
                account.tenant,
                account.agent_id,
                stored,
                fresh,
            )
        return Check(Outcome.OK, rehashed=True)

    async def _matches(self, stored: str, password: str) -> bool:
        try:
            return await self._run(functools.partial(self.hasher.verify, stored, password))
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    async def set(
        self, tenant: str, agent_id: str, password: str, console_role: str | None
    ) -> tuple[str, dt.datetime]:
        """Store the agent's new password (``console_role`` None: keep the one set before, or
        ``agent``): (the console role now, when it was set). The caller checks ``problem``."""
        if console_role is not None and console_role not in CONSOLE_ROLES:
            raise ValueError(f"console_role must be one of {', '.join(CONSOLE_ROLES)}")
        hashed = await self.hash(password)
        with translated_errors():
            row = await self._pool.fetchrow(
                "INSERT INTO agent_passwords (tenant_id, agent_id, password_hash, console_role)"
                " VALUES ($1, $2, $3, coalesce($4, 'agent'))"
                " ON CONFLICT (tenant_id, agent_id) DO UPDATE"
                " SET password_hash = EXCLUDED.password_hash, updated_at = now(),"
                "     console_role = coalesce($4, agent_passwords.console_role)"
                " RETURNING console_role, updated_at",
                tenant,
                agent_id,
                hashed,
                console_role,
            )
        assert row is not None
        return row["console_role"], row["updated_at"]
