"""``Limits``: the ``grpc.aio`` server interceptor that checks every ``usher.v1`` request
before its servicer runs.

- A body that does not parse as the method's request message is answered INVALID_ARGUMENT
  ("the request is not a valid <message>"), not gRPC's UNKNOWN with the parser's text.
- A request that breaks its limits (``core.api.validation.walk.violations``) is answered
  INVALID_ARGUMENT with one ``BadRequest`` field violation per bad field; the servicer never
  runs, so nothing is stored.

Install it innermost (after authentication), so an unauthenticated caller learns nothing about
the limits and the servicer sees only requests within them.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final, TypeAlias

import grpc
from google.protobuf import descriptor_pool
from google.protobuf.message import DecodeError, Message

from core.api.errors import abort
from core.api.validation.walk import violations

PREFIX: Final = "/usher.v1."

Ctx = grpc.aio.ServicerContext[Any, Any]
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"


class Undecodable:
    """What the tolerant deserializer hands on for a body that is not the request message."""

    def __init__(self, expected: str) -> None:
        self.expected = expected


def tolerant(deserializer: Callable[[bytes], Any] | None, expected: str) -> Callable[[bytes], Any]:
    """``deserializer`` returning ``Undecodable`` instead of raising on a malformed body."""

    def parse(body: bytes) -> Any:
        if deserializer is None:
            return body
        try:
            return deserializer(body)
        except (DecodeError, ValueError, TypeError, RuntimeError):
            return Undecodable(expected)

    return parse


async def admit(request: Any, context: Ctx) -> None:
    """Abort with INVALID_ARGUMENT unless ``request`` parsed and is within its limits."""
    if isinstance(request, Undecodable):
        await abort(
            context,
            "INVALID_ARGUMENT",
            f"the request is not a valid {request.expected} message",
            reason="MALFORMED_REQUEST",
            violations={"": "the body does not parse as the request message"},
        )
    if not isinstance(request, Message):
        return
    found = violations(request)
    if not found:
        return
    first = found[0]
    more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
    shown = first.field or "request"
    table: dict[str, str] = {}
    for violation in found:
        table.setdefault(violation.field, violation.description)
    await abort(
        context,
        "INVALID_ARGUMENT",
        f"{shown} {first.description}{more}",
        violations=table,
    )


def _request_name(method: str) -> str:
    """The request message's full name for a method path (``/usher.v1.AgentService/SetStatus``)."""
    service, _, name = method.lstrip("/").partition("/")
    try:
        found = descriptor_pool.Default().FindServiceByName(service)
        return str(found.methods_by_name[name].input_type.full_name)
    except KeyError:
        return "request"


class Limits(grpc.aio.ServerInterceptor):
    """See the module docstring."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or not method.startswith(PREFIX):
            return handler
        parse = tolerant(handler.request_deserializer, _request_name(method))
        if handler.unary_unary is not None:
            unary: Any = handler.unary_unary

            async def unary_unary(request: Any, context: Ctx) -> Any:
                await admit(request, context)
                result = unary(request, context)
                return await result if inspect.isawaitable(result) else result

            return grpc.unary_unary_rpc_method_handler(
                unary_unary, parse, handler.response_serializer
            )
        if handler.unary_stream is not None:
            stream: Any = handler.unary_stream

            async def unary_stream(request: Any, context: Ctx) -> AsyncIterator[Any]:
                await admit(request, context)
                result: Any = stream(request, context)
                if inspect.isawaitable(result):  # a coroutine writing with context.write
                    await result
                    return
                async for item in result:
                    yield item

            return grpc.unary_stream_rpc_method_handler(
                unary_stream, parse, handler.response_serializer
            )
        return handler
