"""Event feeds that survive reconnects: resume from the last event id, never repeat one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable
from typing import Any, Generic, TypeVar

import grpc

from usher.client._retry import RetryPolicy
from usher.client.errors import Internal, Unavailable, Unknown, UsherError, from_rpc_error

Resp = TypeVar("Resp")
Item = TypeVar("Item")

OpenCall = Callable[[int], "grpc.aio.UnaryStreamCall[Any, Resp]"]


def _reconnectable(error: UsherError) -> bool:
    """Transient failures, and the INTERNAL/UNKNOWN a dropped connection can surface as."""
    return error.retryable or isinstance(error, Internal | Unknown)


class EventStream(Generic[Resp, Item]):
    """An endless feed of ``Item`` that reconnects by itself.

    ``async for item in stream`` yields each item once, in order. When the connection drops (or
    the server ends the stream) it reopens with backoff, asking to resume after
    ``last_event_id``, and drops any item whose event id it has already yielded, so there is no
    gap and no duplicate (items whose ``event_id`` is None are not numbered: each is yielded as
    it comes and none is replayed). Persist ``last_event_id`` to resume across restarts of your
    process. Errors that retrying cannot fix (``Unauthenticated``, ``PermissionDenied``,
    ``OutOfRange`` when the resume point is too old...) end the iteration as exceptions.

    Iterate a stream once. Breaking out of the loop cancels the call (at once with
    ``await stream.aclose()``, else when the iterator is collected).
    """

    def __init__(
        self,
        open_call: OpenCall[Resp],
        items: Callable[[Resp], Iterable[Item]],
        event_id: Callable[[Item], int | None] | None,
        *,
        resume_after_event_id: int,
        retry: RetryPolicy,
    ) -> None:
        self._open = open_call
        self._items = items
        self._event_id = event_id
        self._last = resume_after_event_id
        self._retry = retry
        self._iterator: AsyncGenerator[Item, None] | None = None
        self.reconnects = 0
        """How many times the stream was reopened (for logs and tests)."""

    @property
    def last_event_id(self) -> int:
        """The event id of the last item yielded (or the resume point given)."""
        return self._last

    def __aiter__(self) -> AsyncIterator[Item]:
        if self._iterator is None:
            self._iterator = self._iterate()
        return self._iterator

    async def aclose(self) -> None:
        """Cancel the call now."""
        if self._iterator is not None:
            await self._iterator.aclose()

    def _fresh(self, item: Item) -> bool:
        """Record ``item``'s event id; False if it was delivered before."""
        if self._event_id is None:
            return True
        event_id = self._event_id(item)
        if event_id is None:  # not numbered (a presence change): shown, not resumed from
            return True
        if event_id <= self._last:
            return False
        self._last = event_id
        return True

    async def _iterate(self) -> AsyncGenerator[Item, None]:
        failures = 0
        while True:
            call = self._open(self._last)
            error: UsherError | None = None
            try:
                async for response in call:
                    for item in self._items(response):
                        if self._fresh(item):
                            failures = 0
                            yield item
            except grpc.aio.AioRpcError as exc:
                error = from_rpc_error(exc)
                if not _reconnectable(error):
                    raise error from exc
            finally:
                call.cancel()
            failures += 1
            limit = self._retry.max_stream_reconnects
            if limit is not None and failures > limit:
                raise error or Unavailable("the stream kept ending")
            await asyncio.sleep(self._retry.backoff(failures, error))
            self.reconnects += 1
