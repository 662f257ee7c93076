"""Errors: one ``UsherError`` subclass per canonical gRPC status code.

Usher answers a refused call with a ``google.rpc.Status``: the canonical code, a message, and
details such as ``ErrorInfo`` (a machine-readable reason), ``BadRequest`` (which fields are
wrong), ``ResourceInfo`` (what was not found), ``PreconditionFailure`` and ``RetryInfo`` (when
to try again). ``error.detail(ErrorInfo)`` unpacks the first detail of a type.
"""

from __future__ import annotations

from typing import ClassVar, TypeVar

import grpc
from google.protobuf import any_pb2, message
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

M = TypeVar("M", bound=message.Message)


class UsherError(Exception):
    """A call failed. ``code`` is the gRPC status code; ``status`` the full ``google.rpc.Status``
    when the server sent one (``details`` are its packed details)."""

    code: ClassVar[grpc.StatusCode] = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str, *, status: status_pb2.Status | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.details: tuple[any_pb2.Any, ...] = tuple(status.details) if status else ()

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"

    def detail(self, kind: type[M]) -> M | None:
        """The first detail of type ``kind`` (e.g. ``error_details_pb2.ErrorInfo``), or None."""
        for packed in self.details:
            found = kind()
            if packed.Unpack(found):  # False when the detail is of another type
                return found
        return None

    @property
    def reason(self) -> str | None:
        """``ErrorInfo.reason`` (e.g. ``OFFER_GONE``), if the server gave one."""
        info = self.detail(error_details_pb2.ErrorInfo)
        return info.reason if info is not None else None

    @property
    def retry_delay(self) -> float | None:
        """Seconds the server asks to wait before retrying (``RetryInfo``), if it said."""
        info = self.detail(error_details_pb2.RetryInfo)
        if info is None or not info.HasField("retry_delay"):
            return None
        return info.retry_delay.ToTimedelta().total_seconds()

    @property
    def retryable(self) -> bool:
        """Whether trying the same idempotent call again may succeed."""
        return False


class Cancelled(UsherError):
    code = grpc.StatusCode.CANCELLED


class Unknown(UsherError):
    code = grpc.StatusCode.UNKNOWN


class InvalidArgument(UsherError):
    """The request is malformed whatever the state; ``BadRequest`` names the fields."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class DeadlineExceeded(UsherError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED

    @property
    def retryable(self) -> bool:
        return True


class NotFound(UsherError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(UsherError):
    code = grpc.StatusCode.ALREADY_EXISTS


class PermissionDenied(UsherError):
    """The credential's role (or agent) may not do this."""

    code = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhausted(UsherError):
    """A rate limit (with ``RetryInfo``: retryable) or an agent's capacity (not retryable)."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED

    @property
    def retryable(self) -> bool:
        return self.retry_delay is not None


class FailedPrecondition(UsherError):
    """Well formed, but the state does not allow it (an offer that is gone, a closed chat)."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class Aborted(UsherError):
    code = grpc.StatusCode.ABORTED

    @property
    def retryable(self) -> bool:
        return True


class OutOfRange(UsherError):
    """E.g. a stream's resume point is older than the server keeps."""

    code = grpc.StatusCode.OUT_OF_RANGE


class Unimplemented(UsherError):
    code = grpc.StatusCode.UNIMPLEMENTED


class Internal(UsherError):
    code = grpc.StatusCode.INTERNAL


class Unavailable(UsherError):
    """The server or its store is unreachable for now; idempotent calls are retried."""

    code = grpc.StatusCode.UNAVAILABLE

    @property
    def retryable(self) -> bool:
        return True


class DataLoss(UsherError):
    code = grpc.StatusCode.DATA_LOSS


class Unauthenticated(UsherError):
    """The token is missing, malformed, unknown or revoked."""

    code = grpc.StatusCode.UNAUTHENTICATED


ERRORS: dict[grpc.StatusCode, type[UsherError]] = {
    cls.code: cls
    for cls in (
        Cancelled,
        Unknown,
        InvalidArgument,
        DeadlineExceeded,
        NotFound,
        AlreadyExists,
        PermissionDenied,
        ResourceExhausted,
        FailedPrecondition,
        Aborted,
        OutOfRange,
        Unimplemented,
        Internal,
        Unavailable,
        DataLoss,
        Unauthenticated,
    )
}


def from_rpc_error(error: grpc.aio.AioRpcError) -> UsherError:
    """The ``UsherError`` for a failed call, with the ``google.rpc.Status`` details it carried."""
    try:
        status: status_pb2.Status | None = rpc_status.from_call(error)
    except ValueError:  # a Status whose code or message contradicts the call's: ignore it
        status = None
    cls = ERRORS.get(error.code(), UsherError)
    return cls(error.details() or "", status=status)
