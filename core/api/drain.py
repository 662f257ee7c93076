"""Ending calls cleanly when the server shuts down.

A feed stream never finishes on its own, so a graceful stop would wait out its whole grace
period and then cancel them. ``Drain`` is a ``grpc.aio`` server interceptor that wraps every
server-streaming handler: once ``begin()`` is called, each open stream (and any stream that
starts afterwards) ends with ``UNAVAILABLE`` "server shutting down" and a ``RetryInfo``, so
clients reconnect elsewhere and resume from their last event id.

Unary calls already running finish within the grace period. A ``usher.v1`` unary call that
reaches its handler after ``begin()`` is refused with the same ``UNAVAILABLE``: it did nothing,
and the client may retry elsewhere. (Left to ``grpc.aio``'s own stop, calls that had arrived
but not yet been handed to the application would end ``CANCELLED``, leaving the client unsure
whether they happened; ``Server.stop`` lets those reach this refusal before stopping.)
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeAlias

import grpc

from core.api.errors import abort

Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"

SHUTTING_DOWN = "server shutting down"
RETRY_AFTER = 1.0


class Drain(grpc.aio.ServerInterceptor):
    def __init__(self) -> None:
        self._closing = asyncio.Event()
        self._open = 0

    @property
    def open_streams(self) -> int:
        """How many server streams are being served now."""
        return self._open

    def begin(self) -> None:
        """End every open stream, and refuse new ones, with UNAVAILABLE."""
        self._closing.set()

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        if handler.unary_unary is not None:
            if self._closing.is_set() and handler_call_details.method.startswith("/usher.v1."):
                return grpc.unary_unary_rpc_method_handler(
                    _refuse, handler.request_deserializer, handler.response_serializer
                )
            return handler
        if handler.unary_stream is None:
            return handler
        stream: Any = handler.unary_stream

        async def unary_stream(
            request: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            self._open += 1
            try:
                async for item in self._until_closing(stream(request, context)):
                    yield item
                if self._closing.is_set():
                    await abort(
                        context,
                        "UNAVAILABLE",
                        SHUTTING_DOWN,
                        reason="SHUTTING_DOWN",
                        retry_after=RETRY_AFTER,
                    )
            finally:
                self._open -= 1

        return grpc.unary_stream_rpc_method_handler(
            unary_stream, handler.request_deserializer, handler.response_serializer
        )

    async def _until_closing(self, result: Any) -> AsyncIterator[Any]:
        """The items of ``result`` (an async iterator, or a coroutine that writes with
        ``context.write``) until it ends or ``begin()`` is called."""
        closing = asyncio.ensure_future(self._closing.wait())
        try:
            if inspect.isawaitable(result):
                task = asyncio.ensure_future(result)
                await asyncio.wait({task, closing}, return_when=asyncio.FIRST_COMPLETED)
                if not task.done():
                    await _cancel(task)
                else:
                    task.result()
                return
            items = aiter(result)
            step: asyncio.Future[Any] | None = None
            try:
                while not self._closing.is_set():
                    step = asyncio.ensure_future(anext(items))
                    await asyncio.wait({step, closing}, return_when=asyncio.FIRST_COMPLETED)
                    if not step.done():
                        await _cancel(step)
                        return
                    try:
                        item = step.result()
                    except StopAsyncIteration:
                        return
                    yield item
            finally:
                if step is not None and not step.done():  # the call was cancelled while waiting:
                    await _cancel(step)  # end the handler's step too, so its cleanup runs now
                aclose = getattr(items, "aclose", None)
                if aclose is not None:
                    with contextlib.suppress(Exception):
                        await aclose()
        finally:
            closing.cancel()


async def _refuse(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
    await abort(
        context, "UNAVAILABLE", SHUTTING_DOWN, reason="SHUTTING_DOWN", retry_after=RETRY_AFTER
    )


async def _cancel(task: asyncio.Future[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
