"""Server streams: admitted under caps, counted once, and ended as soon as their call is over.

``StreamGuard`` is a ``grpc.aio`` server interceptor that wraps every ``usher.v1``
server-streaming handler (``Server`` installs it after the ``Authenticator``, whose caller it
reads). For each stream it:

- admits it only while the caller's credential has fewer than ``StreamLimits.per_credential``
  and its tenant fewer than ``StreamLimits.per_tenant`` streams open in this process; otherwise
  the call ends ``RESOURCE_EXHAUSTED`` (reason ``TOO_MANY_STREAMS``, with ``QuotaFailure`` and
  ``RetryInfo``) before the servicer runs;
- counts it in ``usher_open_streams{service}`` and in ``open_streams`` exactly once, from
  admission to its end, whichever way it ends (client gone, deadline, server drain, an error,
  the slow-consumer cut-off);
- ends it the moment its call is over (``context.add_done_callback``): the task waiting for
  the stream's next item is cancelled, so the handler's ``finally`` releases its feed
  subscription at once instead of when the next item for it would have been written.

Dead peers that never close their connection are found by the server's keepalive pings
(``core.api.keepalive``); their calls then end and take this path too. The caps are per
front-door process: ``usher serve --workers N`` admits up to N times as many per host.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, NoReturn, TypeAlias

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from prometheus_client import Gauge

from core.api.auth import caller
from core.api.context import Caller
from core.api.errors import abort, status

Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"

PACKAGE: Final = "usher.v1"
REFUSED_REASON: Final = "TOO_MANY_STREAMS"
RETRY_AFTER: Final = 5.0
"""Seconds a refused client is told to wait before trying again."""

OPEN_STREAMS: Final = Gauge(
    "usher_open_streams", "Server streams being served now, per gRPC service.", ["service"]
)


@dataclass(frozen=True, slots=True)
class StreamLimits:
    """The most server streams open at once in one front-door process."""

    per_credential: int = 32
    per_tenant: int = 5_000

    def __post_init__(self) -> None:
        if self.per_credential < 1 or self.per_tenant < 1:
            raise ValueError("stream limits must be at least 1")


@dataclass(frozen=True, slots=True)
class _Refusal:
    subject: str
    """``credential`` or ``tenant``."""
    limit: int


class OpenStreams:
    """The streams open now, per credential and per tenant; ``admit`` reserves a place."""

    def __init__(self, limits: StreamLimits) -> None:
        self.limits = limits
        self._credentials: Counter[str] = Counter()
        self._tenants: Counter[str] = Counter()
        self.total = 0

    def admit(self, who: Caller) -> _Refusal | None:
        """Reserve a place for ``who``'s stream, or say which cap refuses it."""
        if self._credentials[who.credential_id] >= self.limits.per_credential:
            return _Refusal("credential", self.limits.per_credential)
        if self._tenants[who.tenant] >= self.limits.per_tenant:
            return _Refusal("tenant", self.limits.per_tenant)
        self._credentials[who.credential_id] += 1
        self._tenants[who.tenant] += 1
        self.total += 1
        return None

    def release(self, who: Caller) -> None:
        """Give back the place ``admit`` reserved (once per admitted stream)."""
        self.total -= 1
        for counts, key in ((self._credentials, who.credential_id), (self._tenants, who.tenant)):
            counts[key] -= 1
            if counts[key] <= 0:
                del counts[key]

    def of_credential(self, credential_id: str) -> int:
        return self._credentials[credential_id]

    def of_tenant(self, tenant: str) -> int:
        return self._tenants[tenant]


class StreamGuard(grpc.aio.ServerInterceptor):
    """See the module docstring."""

    def __init__(self, limits: StreamLimits | None = None) -> None:
        self.open = OpenStreams(limits or StreamLimits())
        self._calls: dict[str, set[_CallOver]] = {}
        """The open streams of each credential, to end when it is revoked."""

    def end_credentials(self, credential_ids: frozenset[str]) -> None:
        """End the open streams of these (revoked) credentials: each answers UNAUTHENTICATED."""
        for credential_id in credential_ids:
            for call in self._calls.pop(credential_id, set()):
                call.revoke()

    @property
    def open_streams(self) -> int:
        """How many admitted streams are being served now."""
        return self.open.total

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_stream is None:
            return handler
        service = handler_call_details.method.strip("/").partition("/")[0]
        package, _, short = service.rpartition(".")
        if package != PACKAGE:
            return handler  # health's Watch: no credential to count against
        stream: Any = handler.unary_stream
        gauge = OPEN_STREAMS.labels(short)
        streams = self.open
        calls = self._calls

        async def unary_stream(
            request: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            who = caller(context)
            refused = streams.admit(who)
            if refused is not None:
                await _refuse(context, refused)
            gauge.inc()
            over = _CallOver()
            calls.setdefault(who.credential_id, set()).add(over)
            try:
                async for item in _until_over(stream(request, context), context, over):
                    yield item
            finally:
                gauge.dec()
                streams.release(who)
                mine = calls.get(who.credential_id)
                if mine is not None:
                    mine.discard(over)
                    if not mine:
                        del calls[who.credential_id]
            if over.revoked:
                await abort(
                    context,
                    "UNAUTHENTICATED",
                    "the credential was revoked",
                    reason="CREDENTIAL_REVOKED",
                )

        return grpc.unary_stream_rpc_method_handler(
            unary_stream, handler.request_deserializer, handler.response_serializer
        )


class _CallOver:
    """Set by the call's done callback (or a revocation): cancels the task awaiting the
    stream's next item."""

    def __init__(self) -> None:
        self.over = False
        self.revoked = False
        self.waiting: asyncio.Task[Any] | None = None
        self._loop = asyncio.get_running_loop()

    def revoke(self) -> None:
        """End the stream because its credential was revoked (on the event loop's thread)."""
        self.revoked = True
        self._end()

    def __call__(self, _context: object) -> None:
        self._loop.call_soon_threadsafe(self._end)

    def _end(self) -> None:
        self.over = True
        if self.waiting is not None:
            self.waiting.cancel()


async def _until_over(
    result: Any, context: grpc.aio.ServicerContext[Any, Any], over: _CallOver
) -> AsyncIterator[Any]:
    """The items of ``result`` (an async iterator, or a coroutine writing with
    ``context.write``) until it ends, the call is over or its credential is revoked."""
    context.add_done_callback(over)  # type: ignore[arg-type]  # the stubs want a nominal type
    if not hasattr(result, "__aiter__"):
        over.waiting = asyncio.current_task()
        try:
            await result
        except asyncio.CancelledError:
            if not _revocation(over):
                raise
        finally:
            over.waiting = None
        return
    items = aiter(result)
    try:
        while not over.over:
            over.waiting = asyncio.current_task()
            try:
                item = await anext(items)
            except StopAsyncIteration:
                return
            except asyncio.CancelledError:
                if not _revocation(over):
                    raise
                return
            finally:
                over.waiting = None
            yield item
    finally:
        aclose = getattr(items, "aclose", None)
        if aclose is not None:
            await aclose()


def _revocation(over: _CallOver) -> bool:
    """Whether the cancellation came from a revocation; if so it is withdrawn, so that the
    stream can go on to answer UNAUTHENTICATED."""
    task = asyncio.current_task()
    if not over.revoked or task is None:
        return False
    task.uncancel()
    return True


async def _refuse(context: grpc.aio.ServicerContext[Any, Any], refused: _Refusal) -> NoReturn:
    message = (
        f"too many open streams: at most {refused.limit} per {refused.subject};"
        " close one before opening another"
    )
    built = status(
        "RESOURCE_EXHAUSTED",
        message,
        reason=REFUSED_REASON,
        details={"limit": str(refused.limit), "per": refused.subject},
        retry_after=RETRY_AFTER,
    )
    quota = error_details_pb2.QuotaFailure(
        violations=[
            error_details_pb2.QuotaFailure.Violation(
                subject=refused.subject,
                description=f"at most {refused.limit} open streams per {refused.subject}",
            )
        ]
    )
    built.details.add().Pack(quota)
    await context.abort_with_status(rpc_status.to_status(built))
    raise AssertionError("abort_with_status returned")  # pragma: no cover
