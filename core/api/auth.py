"""Who may call what: bearer tokens, roles per service, and per-tenant rate limits.

``Authenticator`` is a ``grpc.aio`` server interceptor. For every ``usher.v1`` method it wraps
the handler so that, before the servicer runs, the call's ``authorization: Bearer <token>`` is
verified (``core.store.credentials.verify``; verified tokens are cached in memory for at most
``TokenCache.ttl`` seconds), the credential's role is checked (``core.api.policy.may_call``,
the one table of who may call what), and the tenant's rate limit is counted in Redis when one
is configured. The servicer then reads the caller with ``caller(context)``. Health checking,
reflection and the methods ``core.api.policy.ANONYMOUS`` lists (signing in) need no token.
Refusals: ``UNAUTHENTICATED`` (no, malformed, unknown, revoked or expired token),
``PERMISSION_DENIED`` (the role may not call the method), ``RESOURCE_EXHAUSTED`` with
``RetryInfo`` (rate limited).

Revocation: while calls arrive, each front door looks at most every ``RevocationCheck.interval``
seconds (1 s) for credentials revoked (or expired) since its last look (one read) and drops
them from its cache, so a revocation bites on every front door within about a second; should
the store be unreadable, cached tokens still expire after the cache's TTL (10 s). Tokens are
never logged (nor put in error messages): only credential ids are.
"""

from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import inspect
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeAlias

import asyncpg
import grpc
import redis.asyncio as aioredis
import structlog

from core.api.context import Caller
from core.api.errors import abort
from core.api.policy import anonymous, may_call
from core.store import credentials
from core.store.errors import StoreError
from core.store.presence import BatchedRateLimiter, RateLimiter

log = structlog.get_logger(__name__)

PACKAGE = "usher.v1"


def allowed(service: str, method: str, role: str) -> bool:
    """Whether ``role`` may call ``method`` of ``service`` (short names, e.g. ``AdminService``)."""
    return may_call(service, method, role)


_caller: contextvars.ContextVar[Caller] = contextvars.ContextVar("usher_caller")
call_deadline: contextvars.ContextVar[float] = contextvars.ContextVar("usher_call_deadline")
"""The current call's deadline on the event loop's clock, when the client set one."""


def caller(context: grpc.aio.ServicerContext[Any, Any] | None = None) -> Caller:
    """The verified caller of the current call (set by ``Authenticator`` before the servicer
    runs). ``context`` is accepted for readability at call sites; the value is per call."""
    try:
        return _caller.get()
    except LookupError:
        raise RuntimeError("no authenticated caller: is the Authenticator installed?") from None


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``limit`` calls per tenant in each window of ``window`` seconds (all front doors
    together, counted in Redis; see ``BatchedRateLimiter`` for the slack)."""

    limit: int = 1_000
    window: float = 1.0


DEFAULT_RATE_LIMIT = RateLimit()


class TokenCache:
    """Verified tokens for ``ttl`` seconds, at most ``size`` of them (oldest dropped first).
    Credentials named revoked (``revoked``) are dropped and not cached again while so named."""

    def __init__(
        self, *, ttl: float = 10.0, size: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self._size = size
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, Caller]] = OrderedDict()
        self._revoked: frozenset[str] = frozenset()

    def get(self, token: str) -> Caller | None:
        entry = self._entries.get(token)
        if entry is None:
            return None
        if entry[0] <= self._clock():
            del self._entries[token]
            return None
        return entry[1]

    def put(self, token: str, who: Caller) -> None:
        if who.credential_id in self._revoked:
            return  # verified just before its revocation committed
        self._entries[token] = (self._clock() + self.ttl, who)
        self._entries.move_to_end(token)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def revoked(self, credential_ids: Iterable[str]) -> None:
        """Drop the tokens of these credentials; refuse to cache them until the next call
        (each call names the credentials revoked recently, so the set stays small)."""
        self._revoked = frozenset(credential_ids)
        if not self._revoked:
            return
        gone = [t for t, (_, who) in self._entries.items() if who.credential_id in self._revoked]
        for token in gone:
            del self._entries[token]

    def clear(self) -> None:
        self._entries.clear()


class RevocationCheck:
    """Tells a ``TokenCache`` which credentials were revoked: at most every ``interval``
    seconds, when asked (``maybe_run``), one read of those revoked since a little before the
    previous look (``margin`` covers a revocation whose transaction began before that look and
    committed after it)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        cache: TokenCache,
        *,
        interval: float = 1.0,
        margin: dt.timedelta = dt.timedelta(seconds=10),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = interval
        self._pool = pool
        self._cache = cache
        self._margin = margin
        self._clock = clock
        self._next = 0.0
        self._since: dt.datetime | None = None
        self._running = False
        self.listeners: list[Callable[[frozenset[str]], None]] = []
        """Also told the revoked credentials (``StreamGuard`` ends their open streams)."""

    async def maybe_run(self) -> None:
        """Look now if the interval has passed and no look is under way (calls arriving
        meanwhile do not wait for it); a failed look is logged and retried next interval."""
        if self._running or self._clock() < self._next:
            return
        self._running = True
        try:
            revoked, now = await credentials.revoked_since(self._pool, self._since)
            self._cache.revoked(revoked)
            for listener in self.listeners:
                listener(revoked)
            self._since = now - self._margin
        except Exception as exc:  # the store away: cached tokens still expire after their TTL
            log.warning("revocation check failed", error=type(exc).__name__)
        finally:
            self._next = self._clock() + self.interval
            self._running = False


def bearer(metadata: Any) -> str | None:
    """The token of an ``authorization: Bearer <token>`` metadata entry, if any."""
    for key, value in metadata or ():
        if key.lower() == "authorization":
            text = value.decode() if isinstance(value, bytes) else str(value)
            scheme, _, token = text.strip().partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            return ""
    return None


Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"


class Authenticator(grpc.aio.ServerInterceptor):
    """Authenticates and authorizes ``usher.v1`` calls; see the module docstring."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        redis: aioredis.Redis | None = None,
        rate_limit: RateLimit | None = DEFAULT_RATE_LIMIT,
        cache: TokenCache | None = None,
    ) -> None:
        self._pool = pool
        self._limiter = (
            BatchedRateLimiter(RateLimiter(redis)) if redis is not None and rate_limit else None
        )
        self._rate_limit = rate_limit or RateLimit()
        self.cache = cache or TokenCache()
        self.revocations = RevocationCheck(pool, self.cache)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        service, _, method = handler_call_details.method.strip("/").partition("/")
        package, _, short = service.rpartition(".")
        if handler is None or package != PACKAGE:
            return handler  # health, reflection: open to all
        if anonymous(short, method):
            return handler  # signing in: limits its callers itself (policy.ANONYMOUS)
        metadata = handler_call_details.invocation_metadata

        async def admit(context: grpc.aio.ServicerContext[Any, Any]) -> None:
            who = await self._authenticate(context, metadata)
            if not allowed(short, method, who.role):
                await abort(
                    context,
                    "PERMISSION_DENIED",
                    f"a {who.role} credential may not call {short}.{method}",
                    reason="ROLE_NOT_ALLOWED",
                    details={"role": who.role, "method": f"{service}/{method}"},
                )
            await self._count(context, who)
            _caller.set(who)
            remaining = context.time_remaining()
            if remaining is not None:
                call_deadline.set(asyncio.get_running_loop().time() + remaining)
            # Every log line of this call carries who made it.
            structlog.contextvars.bind_contextvars(
                tenant=who.tenant, role=who.role, agent=who.agent_id, method=method
            )

        return wrap(handler, admit)

    async def _authenticate(
        self, context: grpc.aio.ServicerContext[Any, Any], metadata: Any
    ) -> Caller:
        token = bearer(metadata)
        if not token:
            message = "no credential: send authorization: Bearer <token>"
            if token == "":
                message = "malformed authorization metadata: expected Bearer <token>"
            await abort(context, "UNAUTHENTICATED", message, reason="NO_CREDENTIAL")
        await self.revocations.maybe_run()
        who = self.cache.get(token)
        if who is not None:
            return who
        try:
            found = await credentials.verify(self._pool, token)
        except StoreError as exc:
            if exc.code == "UNAUTHENTICATED":
                await abort(context, "UNAUTHENTICATED", str(exc), reason="INVALID_CREDENTIAL")
            await abort(context, exc.code, f"cannot verify the credential: {exc}")
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            # The cause in the log (never the token), not in the answer.
            log.warning("cannot verify a credential", error=type(exc).__name__)
            await abort(context, "UNAVAILABLE", "cannot verify the credential now", retry_after=1.0)
        who = Caller(found.tenant_id, found.role, found.agent_id, found.credential_id)
        self.cache.put(token, who)
        return who

    async def _count(self, context: grpc.aio.ServicerContext[Any, Any], who: Caller) -> None:
        if self._limiter is None:
            return
        limit = self._rate_limit
        try:
            ok = await self._limiter.allow(who.tenant, limit.limit, limit.window)
        except Exception as exc:  # Redis away: serve rather than refuse everyone
            log.warning("rate limit unavailable", tenant=who.tenant, error=repr(exc))
            return
        if not ok:
            await abort(
                context,
                "RESOURCE_EXHAUSTED",
                f"tenant rate limit: {limit.limit} calls per {limit.window:g} s",
                reason="RATE_LIMITED",
                details={"limit": str(limit.limit), "window_seconds": f"{limit.window:g}"},
                retry_after=limit.window,
            )


Admit = Callable[[grpc.aio.ServicerContext[Any, Any]], Awaitable[None]]


def wrap(handler: Handler, admit: Admit) -> Handler:
    """``handler`` with ``admit(context)`` awaited first (it aborts to refuse the call).

    Client-streaming methods are passed through unwrapped: ``usher.v1`` has none."""
    if handler.unary_unary is not None:
        unary: Any = handler.unary_unary

        async def unary_unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            await admit(context)
            result = unary(request, context)
            return await result if inspect.isawaitable(result) else result

        return grpc.unary_unary_rpc_method_handler(
            unary_unary, handler.request_deserializer, handler.response_serializer
        )
    if handler.unary_stream is not None:
        stream: Any = handler.unary_stream

        async def unary_stream(
            request: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            await admit(context)
            result: Any = stream(request, context)
            if inspect.isawaitable(result):  # a coroutine writing with context.write
                await result
                return
            async for item in result:
                yield item

        return grpc.unary_stream_rpc_method_handler(
            unary_stream, handler.request_deserializer, handler.response_serializer
        )
    return handler
