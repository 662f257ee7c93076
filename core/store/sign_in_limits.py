"""Failed sign-ins counted in Redis, so every front door refuses a guessing client alike.

Two fixed-window counters of failures: per tenant and login (the agent's id when the login
named one, so ``Ann`` and ``ann`` count together; else the login as typed, case-folded) and
per client address (all tenants). A window opens with its first failure and lasts
``FailureLimits.window`` seconds. While either counter has reached its limit, ``refusal``
answers how long to wait and the sign-in is refused without looking at the password. A
successful sign-in clears its login's counter (not the address's). Logins are hashed in keys.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import redis.asyncio as aioredis

from core.store.presence import _bounded


@dataclass(frozen=True, slots=True)
class FailureLimits:
    per_login: int = 5
    per_address: int = 20
    window: float = 300.0
    """Seconds."""


@dataclass(frozen=True, slots=True)
class Refusal:
    subject: str
    """``login`` or ``address``."""
    limit: int
    retry_after: float
    """Seconds until the window closes."""


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class SignInLimiter:
    def __init__(
        self,
        redis: aioredis.Redis,
        limits: FailureLimits | None = None,
        *,
        prefix: str = "usher:",
        timeout: float = 1.0,
    ) -> None:
        self._redis = redis
        self.limits = limits or FailureLimits()
        self._prefix = prefix
        self._timeout = timeout

    def _keys(self, tenant: str, login: str, address: str) -> tuple[str, str]:
        return (
            f"{self._prefix}signin:{tenant}:login:{_digest(login.strip().casefold())}",
            f"{self._prefix}signin:address:{_digest(address)}",
        )

    async def refusal(self, tenant: str, login: str, address: str) -> Refusal | None:
        """Why a sign-in must be refused now (None: it may go on). Raises ``RedisUnavailable``."""
        by_login, by_address = self._keys(tenant, login, address)
        pipe = self._redis.pipeline(transaction=False)
        pipe.get(by_login)
        pipe.pttl(by_login)
        pipe.get(by_address)
        pipe.pttl(by_address)
        login_count, login_ttl, address_count, address_ttl = await _bounded(
            pipe.execute(), self._timeout
        )
        limits = self.limits
        checks = (
            ("login", login_count, login_ttl, limits.per_login),
            ("address", address_count if address else None, address_ttl, limits.per_address),
        )
        for subject, count, ttl, limit in checks:
            if count is not None and int(count) >= limit:
                wait = int(ttl) / 1000 if int(ttl) > 0 else limits.window
                return Refusal(subject, limit, wait)
        return None

    async def failed(self, tenant: str, login: str, address: str) -> None:
        """Count a failure against the login and the address."""
        window_ms = max(1, round(self.limits.window * 1000))
        pipe = self._redis.pipeline(transaction=True)
        for key in self._keys(tenant, login, address)[: 2 if address else 1]:
            pipe.set(key, 0, nx=True, px=window_ms)
            pipe.incr(key)
        await _bounded(pipe.execute(), self._timeout)

    async def succeeded(self, tenant: str, login: str) -> None:
        """Forget the login's failures."""
        by_login, _ = self._keys(tenant, login, "")
        await _bounded(self._redis.delete(by_login), self._timeout)
