"""The API in browsers: Connect and gRPC-Web calls relayed to this process's gRPC server.

``bridge_app(target, services)`` is an ASGI application built on ``connectrpc``'s server (the
Connect protocol, unary and server streams, GET for reads, gRPC-Web, compression, deadlines,
the error wire format, a client's disconnect). Each of its endpoints relays the request's
bytes to the front door's own ``grpc.aio`` server at ``target`` (a local socket, see
``core.api.server.Server``) with the caller's ``authorization`` header as metadata and the
remaining deadline as the call's timeout, and relays the answers back. So authentication, the
role table, rate limits, validation, stream caps, the drain and every servicer apply exactly as
to a gRPC client: nothing of the API is implemented twice. A refusal comes back as the same
``google.rpc.Status``: its code, message and details (``BadRequest``, ``ErrorInfo``,
``QuotaFailure``...) become the Connect error's (or gRPC-Web's ``grpc-status-details-bin``).

Binary messages are never decoded here (``Relayed`` carries the bytes); Connect's JSON codec
converts to and from the binary form with the method's generated message class.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

import grpc
import structlog
from connectrpc.code import Code
from connectrpc.errors import ConnectError, ErrorDetail
from connectrpc.method import IdempotencyLevel, MethodInfo, StreamType
from connectrpc.request import RequestContext
from connectrpc.server import ConnectASGIApplication, Endpoint
from google.protobuf import descriptor, json_format, message, message_factory
from google.rpc import status_pb2
from protobuf.wkt import Any as WireAny

from core.api.client_info import CLIENT_ADDRESS, USER_AGENT

log = structlog.get_logger(__name__)

STATUS_DETAILS = "grpc-status-details-bin"
FORWARDED_HEADERS = ("authorization",)
"""Request headers passed on to the gRPC server as metadata."""


@dataclass(frozen=True, slots=True)
class Relayed:
    """A message in its binary wire form, and the generated class that reads it."""

    data: bytes
    kind: type[message.Message]


class RelayBinaryCodec:
    """Connect's ``proto`` codec without decoding: the bytes go to gRPC as they came."""

    def name(self) -> str:
        return "proto"

    def encode(self, value: Relayed) -> bytes:
        return value.data

    def decode(self, data: bytes | bytearray, message_class: type[message.Message]) -> Relayed:
        return Relayed(bytes(data), message_class)


class RelayJsonCodec:
    """Connect's ``json`` codec (the proto3 JSON mapping) to and from the binary form."""

    def name(self) -> str:
        return "json"

    def encode(self, value: Relayed) -> bytes:
        decoded = value.kind.FromString(value.data)
        return json_format.MessageToJson(decoded, indent=None).encode()

    def decode(self, data: bytes | bytearray, message_class: type[message.Message]) -> Relayed:
        parsed = message_class()
        json_format.Parse(bytes(data), parsed, ignore_unknown_fields=True)
        return Relayed(parsed.SerializeToString(), message_class)


_CODES: dict[grpc.StatusCode, Code] = {
    grpc.StatusCode.CANCELLED: Code.CANCELED,
    grpc.StatusCode.UNKNOWN: Code.UNKNOWN,
    grpc.StatusCode.INVALID_ARGUMENT: Code.INVALID_ARGUMENT,
    grpc.StatusCode.DEADLINE_EXCEEDED: Code.DEADLINE_EXCEEDED,
    grpc.StatusCode.NOT_FOUND: Code.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS: Code.ALREADY_EXISTS,
    grpc.StatusCode.PERMISSION_DENIED: Code.PERMISSION_DENIED,
    grpc.StatusCode.RESOURCE_EXHAUSTED: Code.RESOURCE_EXHAUSTED,
    grpc.StatusCode.FAILED_PRECONDITION: Code.FAILED_PRECONDITION,
    grpc.StatusCode.ABORTED: Code.ABORTED,
    grpc.StatusCode.OUT_OF_RANGE: Code.OUT_OF_RANGE,
    grpc.StatusCode.UNIMPLEMENTED: Code.UNIMPLEMENTED,
    grpc.StatusCode.INTERNAL: Code.INTERNAL,
    grpc.StatusCode.UNAVAILABLE: Code.UNAVAILABLE,
    grpc.StatusCode.DATA_LOSS: Code.DATA_LOSS,
    grpc.StatusCode.UNAUTHENTICATED: Code.UNAUTHENTICATED,
}


def connect_error(error: grpc.aio.AioRpcError) -> ConnectError:
    """The Connect error for a failed gRPC call: its code, message and ``google.rpc.Status``
    details (packed as they came)."""
    details: list[ErrorDetail] = []
    for key, value in error.trailing_metadata() or ():
        if key == STATUS_DETAILS and isinstance(value, bytes):
            try:
                status = status_pb2.Status.FromString(value)
            except Exception:  # a malformed status names no details; the code still holds
                log.warning("unreadable grpc-status-details-bin", code=error.code().name)
                continue
            details += (
                ErrorDetail(WireAny(type_url=d.type_url, value=d.value)) for d in status.details
            )
    return ConnectError(_CODES.get(error.code(), Code.UNKNOWN), error.details() or "", details)


def _metadata(ctx: RequestContext[Any, Any]) -> list[tuple[str, str]]:
    headers = ctx.request_headers
    metadata = [(key, headers[key]) for key in FORWARDED_HEADERS if key in headers]
    if ctx.client_address:  # "address:port"
        host = ctx.client_address.rpartition(":")[0] or ctx.client_address
        metadata.append((CLIENT_ADDRESS, host.strip("[]")))
    agent = headers.get("user-agent")
    if agent:
        metadata.append((USER_AGENT, agent[:512]))
    return metadata


def _timeout(ctx: RequestContext[Any, Any]) -> float | None:
    remaining = ctx.timeout_ms
    return None if remaining is None else max(remaining, 0.0) / 1000


@dataclass(frozen=True, slots=True)
class _Method:
    """One RPC relayed over ``channel``."""

    channel: grpc.aio.Channel
    path: str
    output: type[message.Message]

    async def unary(self, request: Relayed, ctx: RequestContext[Any, Any]) -> Relayed:
        call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = self.channel.unary_unary(self.path)
        try:
            data = await call(request.data, metadata=_metadata(ctx), timeout=_timeout(ctx))
        except grpc.aio.AioRpcError as exc:
            raise connect_error(exc) from None
        return Relayed(data, self.output)

    async def server_stream(
        self, request: Relayed, ctx: RequestContext[Any, Any]
    ) -> AsyncIterator[Relayed]:
        rpc: grpc.aio.UnaryStreamMultiCallable[bytes, bytes] = self.channel.unary_stream(self.path)
        call = rpc(request.data, metadata=_metadata(ctx), timeout=_timeout(ctx))
        try:
            async for data in call:
                yield Relayed(data, self.output)
        except grpc.aio.AioRpcError as exc:
            raise connect_error(exc) from None
        finally:
            call.cancel()  # the browser went away (or the stream ended): end the gRPC call too


def endpoints(
    channel: grpc.aio.Channel, services: Iterable[descriptor.ServiceDescriptor]
) -> dict[str, Endpoint[Any, Any]]:
    """An endpoint per unary and server-streaming method of ``services``, by URL path
    (``/usher.v1.AgentService/StreamEvents``). Client and bidi streams cannot be served to
    browsers and Usher has none; they are left out."""
    found: dict[str, Endpoint[Any, Any]] = {}
    for service in services:
        for method in service.methods:
            if method.client_streaming:
                log.warning("not relayed: a client stream", method=method.full_name)
                continue
            path = f"/{service.full_name}/{method.name}"
            output = message_factory.GetMessageClass(method.output_type)
            info: MethodInfo[Any, Any] = MethodInfo(
                name=method.name,
                service_name=service.full_name,
                input=message_factory.GetMessageClass(method.input_type),
                output=output,
                idempotency_level=IdempotencyLevel.UNKNOWN,
                stream_type=StreamType.SERVER_STREAM
                if method.server_streaming
                else StreamType.UNARY,
            )
            relay = _Method(channel, path, output)
            if method.server_streaming:
                found[path] = Endpoint.server_stream(info, relay.server_stream)
            else:
                found[path] = Endpoint.unary(info, relay.unary)
    return found


class _Bridge(ConnectASGIApplication[Any]):
    """One ASGI application for every relayed service (paths name the service)."""

    @property
    def path(self) -> str:
        return "/"


def bridge_app(
    channel: grpc.aio.Channel,
    services: Iterable[descriptor.ServiceDescriptor],
    *,
    max_message_bytes: int,
) -> Any:
    """The ASGI application relaying ``services`` over ``channel`` (see the module docstring);
    requests larger than ``max_message_bytes`` are refused RESOURCE_EXHAUSTED."""
    table = endpoints(channel, services)
    return _Bridge(
        service=table,
        endpoints=lambda found: found,
        read_max_bytes=max_message_bytes,
        codecs=[RelayBinaryCodec(), RelayJsonCodec()],
    )
