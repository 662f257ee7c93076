"""Several channels behind one: unary calls round robin, streams on the first; the keepalive
options every channel uses.

Each channel has its own subchannel pool, so its own TCP connection; a server running several
processes on one port (``usher serve --workers``) gets the connections spread over them by the
kernel, and so the unary calls.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, Self

import grpc

KEEPALIVE_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.http2.ping_timeout_ms", 10_000),  # else 60 s: it bounds keepalive pings too
    # keep pinging while a stream is open but quiet (an idle agent's events), so a server that
    # vanished without closing the connection is noticed and the stream reconnects elsewhere
    ("grpc.http2.max_pings_without_data", 0),
)
"""Keepalive pings every client channel sends: every 30 s of silence, dead after 10 s without
an answer (the server accepts pings down to 10 s apart, see ``core.api.keepalive``)."""


class _RoundRobin(grpc.aio.UnaryUnaryMultiCallable[Any, Any]):
    def __init__(self, callables: Sequence[grpc.aio.UnaryUnaryMultiCallable[Any, Any]]) -> None:
        self._next = itertools.cycle(callables).__next__

    def __call__(self, request: Any, **kwargs: Any) -> grpc.aio.UnaryUnaryCall[Any, Any]:
        return self._next()(request, **kwargs)


class RoundRobinChannel(grpc.aio.Channel):
    """``grpc.aio.Channel`` over ``channels`` (at least one): each unary call goes on the next
    channel in turn; streaming calls, connectivity and readiness use the first."""

    def __init__(self, channels: Sequence[grpc.aio.Channel]) -> None:
        if not channels:
            raise ValueError("at least one channel")
        self.channels = tuple(channels)
        self._first = self.channels[0]

    async def close(self, grace: float | None = None) -> None:
        for channel in self.channels:
            await channel.close(grace)

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        return self._first.get_state(try_to_connect)

    async def wait_for_state_change(self, last_observed_state: grpc.ChannelConnectivity) -> None:
        await self._first.wait_for_state_change(last_observed_state)

    async def channel_ready(self) -> None:
        for channel in self.channels:
            await channel.channel_ready()

    def unary_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return _RoundRobin([c.unary_unary(method, *args, **kwargs) for c in self.channels])

    def unary_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._first.unary_stream(method, *args, **kwargs)

    def stream_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._first.stream_unary(method, *args, **kwargs)

    def stream_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._first.stream_stream(method, *args, **kwargs)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        await self.close()


def open_channels(count: int, open_one: Callable[[], grpc.aio.Channel]) -> grpc.aio.Channel:
    """``open_one()`` itself for a ``count`` of 1, else a ``RoundRobinChannel`` over ``count``
    of them (``open_one`` must give each its own subchannel pool)."""
    if count < 1:
        raise ValueError(f"channels must be at least 1, not {count}")
    if count == 1:
        return open_one()
    return RoundRobinChannel([open_one() for _ in range(count)])
