"""What every client shares: the channel, the bearer token, deadlines and retries."""

from __future__ import annotations

import asyncio
import copy
import uuid
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import Protocol, Self, TypeVar

import grpc
from google.protobuf import message

from usher.client._channels import KEEPALIVE_OPTIONS, open_channels
from usher.client._retry import DEFAULT_RETRY, RetryPolicy
from usher.client._stream import EventStream
from usher.client.errors import from_rpc_error

Req = TypeVar("Req", bound=message.Message)
Resp = TypeVar("Resp", bound=message.Message)
Item = TypeVar("Item")

USER_AGENT = "usher-client/0.1.0"


class _Keyed(Protocol):
    request_id: str


Keyed = TypeVar("Keyed", bound=_Keyed)


def keyed(request: Keyed) -> Keyed:
    """A copy of ``request`` whose ``request_id`` idempotency key is set: the caller's, or a fresh
    UUID when it was empty, so every retry of the call carries the same key."""
    fresh = copy.deepcopy(request)
    if not fresh.request_id:
        fresh.request_id = uuid.uuid4().hex
    return fresh


class BaseClient:
    """A channel to Usher with the caller's credential.

    ``target`` is ``host:port``. The token goes as ``authorization: Bearer <token>`` metadata on
    every call. With ``tls`` (implied by ``root_certificates``, PEM bytes; None trusts the
    system's roots) the channel is encrypted; otherwise it is plaintext (local development).
    ``timeout`` is the default deadline of each unary call attempt, in seconds. With ``channels``
    above 1 the client opens that many channels, each its own connection, and sends unary calls
    over them in turn (streams use the first): a server running several processes on one port
    (``usher serve --workers``) then shares the calls among them. Use as an async context
    manager, or call ``close()``.
    """

    def __init__(
        self,
        target: str,
        token: str,
        *,
        tls: bool = False,
        root_certificates: bytes | None = None,
        timeout: float = 10.0,
        retry: RetryPolicy = DEFAULT_RETRY,
        options: Sequence[tuple[str, str | int]] = (),
        channels: int = 1,
    ) -> None:
        channel_options = [
            ("grpc.primary_user_agent", USER_AGENT),
            *KEEPALIVE_OPTIONS,
            *options,
        ]
        if channels > 1:  # else channels to one target share one connection (the global pool)
            channel_options.append(("grpc.use_local_subchannel_pool", 1))
        secure = tls or root_certificates is not None

        def open_one() -> grpc.aio.Channel:
            if secure:
                credentials = grpc.ssl_channel_credentials(root_certificates)
                return grpc.aio.secure_channel(target, credentials, channel_options)
            return grpc.aio.insecure_channel(target, channel_options)

        self._channel = open_channels(channels, open_one)
        self._metadata: tuple[tuple[str, str], ...] = (
            (("authorization", f"Bearer {token}"),) if token else ()
        )  # no token: only for calls that need none (AuthService.SignIn)
        self._timeout = timeout
        self._retry = retry

    @property
    def channel(self) -> grpc.aio.Channel:
        return self._channel

    @classmethod
    def sharing(cls, other: BaseClient) -> Self:
        """A client of this class over ``other``'s channel, credential, deadline and retries
        (another service for the same caller, without a second connection). Closing either
        closes the channel both use."""
        client = cls.__new__(cls)
        client._channel = other._channel
        client._metadata = other._metadata
        client._timeout = other._timeout
        client._retry = other._retry
        return client

    async def close(self) -> None:
        """Close the channel; open streams end."""
        await self._channel.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _call(
        self,
        rpc: grpc.aio.UnaryUnaryMultiCallable[Req, Resp],
        request: Req,
        *,
        idempotent: bool,
        timeout: float | None,
    ) -> Resp:
        """Call ``rpc``; retry with backoff when ``idempotent`` and the error is transient."""
        attempt = 1
        while True:
            try:
                return await rpc(request, timeout=timeout or self._timeout, metadata=self._metadata)
            except grpc.aio.AioRpcError as exc:
                error = from_rpc_error(exc)
                if not (idempotent and error.retryable and attempt < self._retry.max_attempts):
                    raise error from exc
            await asyncio.sleep(self._retry.backoff(attempt, error))
            attempt += 1

    def _stream(
        self,
        rpc: grpc.aio.UnaryStreamMultiCallable[Req, Resp],
        request: Callable[[int], Req],
        items: Callable[[Resp], Iterable[Item]],
        event_id: Callable[[Item], int | None] | None,
        resume_after_event_id: int = 0,
    ) -> EventStream[Resp, Item]:
        """A reconnecting feed: ``request(after)`` builds the request resuming after an event id."""
        return EventStream(
            lambda after: rpc(request(after), metadata=self._metadata),
            items,
            event_id,
            resume_after_event_id=resume_after_event_id,
            retry=self._retry,
        )
