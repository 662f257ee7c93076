"""Failures as ``google.rpc.Status``: a canonical code, an English message and typed details.

Every refusal the servicers answer goes through ``abort``: the status travels in the
``grpc-status-details-bin`` trailer, so the SDK can switch on ``ErrorInfo.reason``. ``status``
adds the details protos/README.md promises, from what the failure names:

- ``ErrorInfo`` (domain ``usher.v1``) always, its metadata the failure's details;
- INVALID_ARGUMENT: ``BadRequest``, one violation per field (the ``field`` a ``RoutingError``
  names, e.g. ``InvalidArgument(msg, field="customer.external_id")``);
- NOT_FOUND, ALREADY_EXISTS: ``ResourceInfo`` (``usher.v1.Conversation``,
  ``conversations/abc``) for the resource the details name by one of the keys the layers below
  use (``conversation``, ``agent_id``, ``offer``...; see ``_KEYS``);
- ``RetryInfo`` for UNAVAILABLE and when a retry delay is given;
- RESOURCE_EXHAUSTED for a quota (``core.store.quotas.QuotaExceeded``): ``QuotaFailure`` naming
  the metric (``quota_status``).

``fail_from`` does the same for what the layers below raise or return: a shard's ``Failure``,
a ``RoutingError``, a ``StoreError`` or a feed error, each of which names its canonical code.
Internal text never reaches a client: INTERNAL and UNAVAILABLE answers from below carry a
generic message (the original is logged), an unexpected exception is INTERNAL
(``fail_unexpected``), a message is cut to ``MAX_MESSAGE`` characters and a quoted request value
to ``MAX_QUOTED`` (``shown``), a detail value or field path to ``MAX_DETAIL``. Requests are
checked against their limits before any servicer runs (``core.api.validation``).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from typing import Any, Final, NoReturn

import grpc
import structlog
from google.protobuf import duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from core.routing.errors import RoutingError
from core.runtime.feed import FeedError, SlowConsumer
from core.runtime.shard import Failure
from core.store.errors import StoreError
from core.store.quotas import QuotaExceeded

DOMAIN = "usher.v1"

log = structlog.get_logger(__name__)

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


MAX_MESSAGE = 1024
"""Characters of a status message at most (a refusal from below may quote a long value)."""
MAX_QUOTED = 64
"""Characters of a request value quoted in a message at most (``shown``)."""


def shown(value: object, limit: int = MAX_QUOTED) -> str:
    """``repr(value)`` of a request value for a message, its text cut to ``limit`` characters
    with an ellipsis, so that an error never echoes oversized input back."""
    text = str(value)
    if len(text) > limit:
        text = text[: limit - 1] + "\u2026"
    return repr(text)


MAX_DETAIL = 256
"""Characters of a detail value (``ErrorInfo.metadata``, a resource name) at most: the edge's
limits keep request values shorter, this keeps a value from below from riding back whole."""


def _cut(text: str, limit: int = MAX_DETAIL) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _clipped(message: str) -> str:
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 1] + "\u2026"


# --- resources ---------------------------------------------------------------------------------

RESOURCES: Final[dict[str, tuple[str, str]]] = {
    "conversation": ("usher.v1.Conversation", "conversations"),
    "agent": ("usher.v1.Agent", "agents"),
    "queue": ("usher.v1.Queue", "queues"),
    "offer": ("usher.v1.Offer", "offers"),
    "transfer": ("usher.v1.Transfer", "transfers"),
    "skill": ("usher.v1.Skill", "skills"),
    "department": ("usher.v1.Department", "departments"),
    "message": ("usher.v1.Message", "messages"),
    "channel": ("usher.v1.Channel", "channels"),
    "credential": ("usher.v1.Credential", "credentials"),
    "custom_status": ("usher.v1.CustomStatus", ""),
    "tenant": ("usher.v1.TenantSettings", ""),
}
"""Kind of resource -> (``ResourceInfo.resource_type``, collection of its names). A custom status
is named by its ``name`` alone; the tenant is never named in the API: a missing tenant is its
unconfigured ``settings`` singleton."""

_KEYS: Final[tuple[tuple[str, str], ...]] = (
    # (detail key, kind), most specific first: a message's details also name its conversation
    ("message", "message"),
    ("message_id", "message"),
    ("offer", "offer"),
    ("offer_id", "offer"),
    ("transfer", "transfer"),
    ("transfer_id", "transfer"),
    ("open_conversation", "conversation"),
    ("conversation", "conversation"),
    ("conversation_id", "conversation"),
    ("agent", "agent"),
    ("agent_id", "agent"),
    ("queue", "queue"),
    ("queue_id", "queue"),
    ("skill", "skill"),
    ("department", "department"),
    ("department_id", "department"),
    ("channel", "channel"),
    ("channel_id", "channel"),
    ("credential", "credential"),
    ("credential_id", "credential"),
    ("custom_status", "custom_status"),
    ("tenant", "tenant"),
)
"""The detail keys the layers below name a resource with (``NotFound(..., agent_id=...)``)."""

_NAMED: Final = re.compile(
    r"(?:^|\s)(?:unknown )?(?P<kind>custom status|conversation|agent|queue|offer|transfer|skill"
    r"|department|message|channel|credential|tenant) (?P<q>'?)(?P<id>[^'\s]+)(?P=q)"
    r"(?: not found)?$"
)
"""``<kind> '<id>' not found`` / ``unknown <kind> '<id>'``: how a refusal without details reads."""


def resource_name(kind: str, value: str, conversation: str = "") -> str:
    """The resource name of ``value`` (an id, or already a name) of a ``RESOURCES`` kind; a
    message's parent is ``conversation`` (``-``, any conversation, when not known)."""
    _, collection = RESOURCES[kind]
    if kind == "tenant":
        return "settings"
    if not collection:
        return value
    if kind == "message":
        if value.startswith("conversations/"):
            return value
        parent = conversation.removeprefix("conversations/") or "-"
        return f"conversations/{parent}/messages/{value}"
    return value if value.startswith(f"{collection}/") else f"{collection}/{value}"


def resource(kind: str, value: str) -> dict[str, str]:
    """Details naming one resource (``resource_type``, ``resource_name``), for ``abort``."""
    return {"resource_type": RESOURCES[kind][0], "resource_name": resource_name(kind, value)}


def resource_info(
    message: str, details: Mapping[str, str]
) -> error_details_pb2.ResourceInfo | None:
    """The resource ``details`` name: explicitly (``resource_type``/``resource_name``), by one of
    the keys of ``_KEYS``, or failing both in ``message`` (``queue 'q' not found``)."""
    if "resource_name" in details:
        return error_details_pb2.ResourceInfo(
            resource_type=str(details.get("resource_type", "")),
            resource_name=str(details["resource_name"]),
            description=message,
        )
    found: tuple[str, str] | None = None
    for key, kind in _KEYS:
        if details.get(key):
            found = kind, str(details[key])
            break
    if found is None:
        match = _NAMED.search(message)
        if match is None:
            return None
        found = match["kind"].replace(" ", "_"), match["id"]
    kind, value = found
    parent = str(details.get("conversation") or details.get("conversation_id") or "")
    return error_details_pb2.ResourceInfo(
        resource_type=RESOURCES[kind][0],
        resource_name=resource_name(kind, value, parent),
        description=message,
    )


# --- statuses ----------------------------------------------------------------------------------

_RESOURCE_CODES: Final = ("NOT_FOUND", "ALREADY_EXISTS")


def status(
    code: str,
    message: str,
    *,
    reason: str = "",
    details: Mapping[str, str] | None = None,
    retry_after: float | None = None,
    violations: Mapping[str, str] | None = None,
) -> status_pb2.Status:
    """The ``google.rpc.Status`` for a failure (the message cut to ``MAX_MESSAGE``):

    - ``ErrorInfo`` always (reason defaults to the code; ``details`` are its metadata);
    - ``ResourceInfo`` for NOT_FOUND and ALREADY_EXISTS when the details (or the message) name
      the resource (see ``resource_info``), and for any code given a ``resource_name``;
    - ``BadRequest`` for INVALID_ARGUMENT: one field violation per entry of ``violations``
      (field path -> description), else one for the ``field`` the details name (described by
      the message), else one with an empty field (the request as a whole);
    - ``RetryInfo`` when ``retry_after`` seconds are given."""
    message = _clipped(message)
    given = {_cut(str(k)): _cut(str(v)) for k, v in (details or {}).items()}
    info = error_details_pb2.ErrorInfo(
        reason=reason_of(reason or code), domain=DOMAIN, metadata=given
    )
    result = status_pb2.Status(code=code_number(code), message=message)
    result.details.add().Pack(info)
    if code in _RESOURCE_CODES or "resource_name" in given:
        found = resource_info(message, given)
        if found is not None:
            result.details.add().Pack(found)
    if retry_after is not None:
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(int(max(0.0, retry_after) * 1e9))
        result.details.add().Pack(error_details_pb2.RetryInfo(retry_delay=delay))
    if not violations and code == "INVALID_ARGUMENT":
        violations = {given.get("field", ""): message}
    if violations:
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=_cut(f), description=_cut(d))
                for f, d in violations.items()
            ]
        )
        result.details.add().Pack(bad)
    return result


def quota_status(exc: QuotaExceeded) -> status_pb2.Status:
    """RESOURCE_EXHAUSTED (reason ``QUOTA_EXCEEDED``) with a ``QuotaFailure`` violation for the
    metric: subject ``tenant:{metric}``, ``quota_metric`` the metric, ``quota_id``
    ``max_{metric}``, ``quota_value`` the limit; ``ErrorInfo`` carries the limit and the usage."""
    built = status(
        "RESOURCE_EXHAUSTED",
        str(exc),
        reason="QUOTA_EXCEEDED",
        details={
            "metric": exc.metric,
            "limit": str(exc.limit),
            "used": str(exc.used),
            "requested": str(exc.amount),
        },
    )
    violation = error_details_pb2.QuotaFailure.Violation(
        subject=f"tenant:{exc.metric}",
        description=str(exc),
        quota_metric=exc.metric,
        quota_id=f"max_{exc.metric}",
        quota_value=exc.limit,
    )
    built.details.add().Pack(error_details_pb2.QuotaFailure(violations=[violation]))
    return built


async def abort_quota(context: grpc.aio.ServicerContext[Any, Any], exc: QuotaExceeded) -> NoReturn:
    """End the call with ``quota_status(exc)``."""
    await context.abort_with_status(rpc_status.to_status(quota_status(exc)))
    raise AssertionError("abort_with_status returned")  # pragma: no cover


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
    """(code, message, details) of a failure from the layers below; other exceptions: INTERNAL
    with ``INTERNAL_MESSAGE`` (never their text)."""
    if isinstance(failed, Failure):
        return failed.code, failed.message, dict(failed.details)
    if isinstance(failed, RoutingError):
        return failed.code, failed.message, {k: str(v) for k, v in failed.details.items()}
    if isinstance(failed, StoreError | FeedError):
        return failed.code, str(failed) or type(failed).__name__, {}
    return "INTERNAL", INTERNAL_MESSAGE, {}


INTERNAL_MESSAGE = "internal error"
UNAVAILABLE_MESSAGE = "temporarily unavailable: retry with backoff"
_OPAQUE: Final[dict[int, str]] = {
    code_pb2.UNKNOWN: INTERNAL_MESSAGE,
    code_pb2.INTERNAL: INTERNAL_MESSAGE,
    code_pb2.DATA_LOSS: INTERNAL_MESSAGE,
    code_pb2.UNAVAILABLE: UNAVAILABLE_MESSAGE,
}
"""Codes whose text from below is an exception's (a driver's, an actor's): the client gets the
generic message, the log the original."""

RETRY_AFTER_UNAVAILABLE = 1.0
"""Seconds suggested (RetryInfo) before retrying an UNAVAILABLE answer."""
RETRY_AFTER_SLOW_CONSUMER = 0.1
"""Seconds suggested before a stream cut for falling behind resumes (it then catches up)."""


def error_id() -> str:
    """A short random id tying an opaque answer (``ErrorInfo.metadata["error_id"]``) to its log
    line."""
    return secrets.token_hex(6)


def opaque(code: str, message: str, details: dict[str, str]) -> tuple[str, dict[str, str]]:
    """(message, details) to answer a failure with: as given, unless ``code`` is one whose text
    is internal (``_OPAQUE``): then the generic message and only an ``error_id`` (and the
    ``reason``), the original being logged under that id."""
    generic = _OPAQUE.get(code_number(code))
    if generic is None:
        return message, details
    incident = error_id()
    level = log.warning if generic is UNAVAILABLE_MESSAGE else log.error
    level("failure answered opaquely", code=code, error=message, details=details, error_id=incident)
    kept = {"error_id": incident}
    if "reason" in details:
        kept["reason"] = details["reason"]
    return generic, kept


async def fail_from(
    context: grpc.aio.ServicerContext[Any, Any], failed: Failed | Exception
) -> NoReturn:
    """Abort the call with the status ``failed`` stands for (its code, message and details;
    the reason is the code unless the details carry a ``reason``). Internal text never reaches
    the client (``opaque``); a quota refusal carries its ``QuotaFailure``."""
    if isinstance(failed, QuotaExceeded):
        await abort_quota(context, failed)
    code, message, details = describe(failed)
    message, details = opaque(code, message, details)
    reason = details.pop("reason", "") or code
    retry_after = RETRY_AFTER_UNAVAILABLE if code == "UNAVAILABLE" else None
    if isinstance(failed, SlowConsumer):  # resuming from the last id catches up from the store
        reason, retry_after = "SLOW_CONSUMER", RETRY_AFTER_SLOW_CONSUMER
    await abort(context, code, message, reason=reason, details=details, retry_after=retry_after)


async def fail_unexpected(
    context: grpc.aio.ServicerContext[Any, Any], exc: BaseException, *, method: str
) -> NoReturn:
    """Abort the call with INTERNAL and ``INTERNAL_MESSAGE`` for an exception that is not a
    refusal (a bug): the exception, with its traceback, goes to the log under an ``error_id``
    the client also gets; its text never reaches the client."""
    incident = error_id()
    log.error("unexpected error in a servicer", method=method, error_id=incident, exc_info=exc)
    await abort(context, "INTERNAL", INTERNAL_MESSAGE, details={"error_id": incident})
