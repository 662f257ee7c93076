"""Failures as ``google.rpc.Status``: a canonical code, an English message and typed details.

Every refusal the servicers answer goes through ``abort``: the status (with an ``ErrorInfo`` in
domain ``usher.v1``, plus ``RetryInfo`` or ``BadRequest`` where given) travels in the
``grpc-status-details-bin`` trailer, so the SDK can switch on ``ErrorInfo.reason``.
``fail_from`` does the same for what the layers below raise or return: a shard's ``Failure``,
a ``RoutingError``, a ``StoreError`` or a feed error, each of which names its canonical code.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NoReturn

import grpc
from google.protobuf import duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from core.routing.errors import RoutingError
from core.runtime.feed import FeedError, SlowConsumer
from core.runtime.shard import Failure
from core.store.errors import StoreError

DOMAIN = "usher.v1"

Failed = Failure | RoutingError | StoreError | FeedError


def code_number(code: str) -> int:
    """The numeric value of a canonical code name (``NOT_FOUND`` -> 5); unknown names: INTERNAL."""
    try:
        return int(code_pb2.Code.Value(code))
    except ValueError:
        return int(code_pb2.INTERNAL)


def reason_of(text: str) -> str:
    """``text`` as an UPPER_SNAKE reason constant (``offer gone`` -> ``OFFER_GONE``)."""
    return re.sub(r"[^A-Z0-9]+", "_", text.upper()).strip("_") or "UNKNOWN"


def status(
    code: str,
    message: str,
    *,
    reason: str = "",
    details: Mapping[str, str] | None = None,
    retry_after: float | None = None,
    violations: Mapping[str, str] | None = None,
) -> status_pb2.Status:
    """The ``google.rpc.Status`` for a failure: ``ErrorInfo`` always (reason defaults to the
    code), ``ResourceInfo`` when the details name a ``resource_name``, ``RetryInfo`` when
    ``retry_after`` seconds are given, ``BadRequest`` with one field
    violation per entry of ``violations`` (field -> description)."""
    info = error_details_pb2.ErrorInfo(
        reason=reason_of(reason or code),
        domain=DOMAIN,
        metadata={k: str(v) for k, v in (details or {}).items()},
    )
    result = status_pb2.Status(code=code_number(code), message=message)
    result.details.add().Pack(info)
    if details and "resource_name" in details:
        resource = error_details_pb2.ResourceInfo(
            resource_type=str(details.get("resource_type", "")),
            resource_name=str(details["resource_name"]),
        )
        result.details.add().Pack(resource)
    if retry_after is not None:
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(int(max(0.0, retry_after) * 1e9))
        result.details.add().Pack(error_details_pb2.RetryInfo(retry_delay=delay))
    if violations:
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=f, description=d)
                for f, d in violations.items()
            ]
        )
        result.details.add().Pack(bad)
    return result


async def abort(
    context: grpc.aio.ServicerContext[Any, Any],
    code: str,
    message: str,
    *,
    reason: str = "",
    details: Mapping[str, str] | None = None,
    retry_after: float | None = None,
    violations: Mapping[str, str] | None = None,
) -> NoReturn:
    """End the call with ``code`` (a canonical name such as ``NOT_FOUND``) and the details.

    Never returns: ``abort_with_status`` raises to unwind the handler."""
    built = status(
        code,
        message,
        reason=reason,
        details=details,
        retry_after=retry_after,
        violations=violations,
    )
    await context.abort_with_status(rpc_status.to_status(built))
    raise AssertionError("abort_with_status returned")  # pragma: no cover


def describe(failed: Failed | Exception) -> tuple[str, str, dict[str, str]]:
    """(code, message, details) of a failure from the layers below; other exceptions: INTERNAL."""
    if isinstance(failed, Failure):
        return failed.code, failed.message, dict(failed.details)
    if isinstance(failed, RoutingError):
        return failed.code, failed.message, {k: str(v) for k, v in failed.details.items()}
    if isinstance(failed, StoreError | FeedError):
        return failed.code, str(failed) or type(failed).__name__, {}
    return "INTERNAL", f"internal error: {type(failed).__name__}", {}


RETRY_AFTER_UNAVAILABLE = 1.0
"""Seconds suggested (RetryInfo) before retrying an UNAVAILABLE answer."""
RETRY_AFTER_SLOW_CONSUMER = 0.1
"""Seconds suggested before a stream cut for falling behind resumes (it then catches up)."""


async def fail_from(
    context: grpc.aio.ServicerContext[Any, Any], failed: Failed | Exception
) -> NoReturn:
    """Abort the call with the status ``failed`` stands for (its code, message and details;
    the reason is the code unless the details carry a ``reason``)."""
    code, message, details = describe(failed)
    reason = details.pop("reason", "") or code
    retry_after = RETRY_AFTER_UNAVAILABLE if code == "UNAVAILABLE" else None
    if isinstance(failed, SlowConsumer):  # resuming from the last id catches up from the store
        reason, retry_after = "SLOW_CONSUMER", RETRY_AFTER_SLOW_CONSUMER
    await abort(context, code, message, reason=reason, details=details, retry_after=retry_after)
