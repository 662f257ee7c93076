"""Proto <-> engine values: enums, times, resource names, and the guard that turns refusals
into ``google.rpc.Status`` answers.

Contracts:

- Every ``parse_*`` function raises ``core.routing.errors.InvalidArgument`` (answered as
  ``INVALID_ARGUMENT``) for a missing, malformed or unspecified value; it never returns a
  half-valid value.
- ``*_to_proto`` functions are total over the engine's (or the store's) values.
- Every ``parse_*`` function names the request field it read (``InvalidArgument(field=...)``,
  answered with a ``BadRequest`` violation of that field) and quotes the value it refused cut to
  ``core.api.errors.MAX_QUOTED`` characters (``shown``).
- ``guarded`` / ``guarded_stream`` wrap a servicer method: a ``RoutingError``, ``StoreError``,
  ``FeedError`` or ``Refused`` (a shard ``Failure``) raised inside ends the call through
  ``core.api.errors.fail_from``; any other exception is a bug, answered INTERNAL with a generic
  message and logged with its traceback (``fail_unexpected``): gRPC's own answer would be
  UNKNOWN with the exception's text.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final, TypeVar

import grpc
from google.protobuf import timestamp_pb2
from usher.v1 import agent_pb2, conversation_pb2, routing_pb2

from core.api.errors import fail_from, fail_unexpected, shown
from core.api.validation import forms
from core.routing import model as m
from core.routing.errors import InvalidArgument, RoutingError
from core.runtime.feed import FeedError
from core.runtime.shard import Failure, Outcome
from core.store.errors import StoreError

# --- refusals ------------------------------------------------------------------------------------


class Refused(Exception):
    """A command the shard refused; ``failure`` says why (answered with its code)."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure


def check(outcome: Outcome, *, gone_reason: str = "") -> Outcome:
    """``outcome`` if the command committed, else raise ``Refused``. With ``gone_reason``, a
    ``FAILED_PRECONDITION`` carries that ``ErrorInfo.reason`` (e.g. ``OFFER_GONE``)."""
    failure = outcome.failure
    if failure is None:
        return outcome
    if gone_reason and failure.code == "FAILED_PRECONDITION":
        failure = Failure(failure.code, failure.message, {**failure.details, "reason": gone_reason})
    raise Refused(failure)


_Handled = (RoutingError, StoreError, FeedError, Refused)

S = TypeVar("S")
Req = TypeVar("Req")
Resp = TypeVar("Resp")
Ctx = grpc.aio.ServicerContext[Any, Any]


async def _fail(context: Ctx, exc: Exception) -> None:
    await fail_from(context, exc.failure if isinstance(exc, Refused) else exc)


def _where(method: Callable[..., Any]) -> str:
    return f"{method.__module__}.{method.__qualname__}"


def guarded(
    method: Callable[[S, Req, Ctx], Awaitable[Resp]],
) -> Callable[[S, Req, Ctx], Awaitable[Resp]]:
    """A unary servicer method whose refusals end the call with their status."""

    @functools.wraps(method)
    async def wrapper(self: S, request: Req, context: Ctx) -> Resp:
        try:
            return await method(self, request, context)
        except _Handled as exc:
            await _fail(context, exc)
            raise  # unreachable: fail_from aborts
        except grpc.aio.AbortError:
            raise  # the method ended the call itself (``abort``)
        except Exception as exc:
            await fail_unexpected(context, exc, method=_where(method))

    return wrapper


def guarded_stream(
    method: Callable[[S, Req, Ctx], AsyncIterator[Resp]],
) -> Callable[[S, Req, Ctx], AsyncIterator[Resp]]:
    """A server-streaming servicer method whose refusals end the stream with their status."""

    @functools.wraps(method)
    async def wrapper(self: S, request: Req, context: Ctx) -> AsyncIterator[Resp]:
        try:
            async for item in method(self, request, context):
                yield item
        except _Handled as exc:
            await _fail(context, exc)
        except grpc.aio.AbortError:
            raise  # the method ended the call itself (``abort``)
        except Exception as exc:
            await fail_unexpected(context, exc, method=_where(method))

    return wrapper


# --- resource names ------------------------------------------------------------------------------

_ID: Final = re.compile(forms.ID_PATTERN)
"""An id in a resource name, as the edge's limits declare it (``core.api.validation.forms``)."""
_MESSAGE_ID: Final = re.compile(forms.MESSAGE_ID_PATTERN)
"""A message id: a positive decimal that fits a PostgreSQL bigint."""


def parse_name(collection: str, name: str, *, field: str) -> str:
    """The id in ``{collection}/{id}``; ``InvalidArgument`` naming ``field`` otherwise."""
    prefix = f"{collection}/"
    if not name:
        raise InvalidArgument(f"{field} is required", field=field)
    if not name.startswith(prefix) or _ID.fullmatch(name[len(prefix) :]) is None:
        raise InvalidArgument(
            f"{field} must look like {collection}/{{id}}, got {shown(name)}", field=field
        )
    return name[len(prefix) :]


def parse_conversation(name: str, field: str = "conversation") -> str:
    return parse_name("conversations", name, field=field)


def parse_agent(name: str, field: str = "agent") -> str:
    return parse_name("agents", name, field=field)


def parse_offer(name: str, field: str = "offer") -> str:
    return parse_name("offers", name, field=field)


def parse_transfer(name: str, field: str = "transfer") -> str:
    return parse_name("transfers", name, field=field)


def parse_queue(name: str, field: str = "queue") -> str:
    return parse_name("queues", name, field=field)


def parse_message(name: str, field: str = "message") -> tuple[str, int]:
    """(conversation id, message id) of ``conversations/{c}/messages/{m}``."""
    if not name:
        raise InvalidArgument(f"{field} is required", field=field)
    parts = name.split("/")
    if (
        len(parts) != 4
        or parts[0] != "conversations"
        or parts[2] != "messages"
        or _ID.fullmatch(parts[1]) is None
        or _MESSAGE_ID.fullmatch(parts[3]) is None
    ):
        raise InvalidArgument(
            f"{field} must look like conversations/{{c}}/messages/{{m}}, got {shown(name)}",
            field=field,
        )
    return parts[1], int(parts[3])


def conversation_name(conversation_id: str) -> str:
    return f"conversations/{conversation_id}"


def agent_name(agent_id: str | None) -> str:
    return f"agents/{agent_id}" if agent_id else ""


def offer_name(offer_id: str) -> str:
    return f"offers/{offer_id}"


def transfer_name(transfer_id: str) -> str:
    return f"transfers/{transfer_id}"


def queue_name(queue_id: str | None) -> str:
    return f"queues/{queue_id}" if queue_id else ""


def message_name(conversation_id: str, message_id: int) -> str:
    return f"conversations/{conversation_id}/messages/{message_id}"


def peer_address(peer: str) -> str:
    """The client's address in a gRPC peer string (``ipv4:10.0.0.7:51234`` gives
    ``10.0.0.7``, ``ipv6:[::1]:51234`` gives ``::1``); "" when it names no IP address."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rpartition(":")[0]
    if kind == "ipv6":
        host = rest.rpartition(":")[0] if rest.startswith("[") else rest
        return urllib.parse.unquote(host.strip("[]"))
    return ""


# --- times ---------------------------------------------------------------------------------------


def timestamp(at: float | dt.datetime | None) -> timestamp_pb2.Timestamp | None:
    """A Timestamp for epoch seconds or an aware datetime; None stays None (field unset)."""
    if at is None:
        return None
    seconds = at.timestamp() if isinstance(at, dt.datetime) else at
    out = timestamp_pb2.Timestamp()
    out.FromNanoseconds(round(seconds * 1e9))
    return out


def from_timestamp(ts: timestamp_pb2.Timestamp) -> dt.datetime:
    return ts.ToDatetime(tzinfo=dt.UTC)


# --- enums ---------------------------------------------------------------------------------------

_STATES: Final[dict[str, conversation_pb2.ConversationState.ValueType]] = {
    m.ConversationState.BOT.value: conversation_pb2.CONVERSATION_STATE_BOT,
    m.ConversationState.QUEUED.value: conversation_pb2.CONVERSATION_STATE_QUEUED,
    m.ConversationState.OFFERED.value: conversation_pb2.CONVERSATION_STATE_OFFERED,
    m.ConversationState.ACTIVE.value: conversation_pb2.CONVERSATION_STATE_ACTIVE,
    m.ConversationState.WRAP_UP.value: conversation_pb2.CONVERSATION_STATE_WRAP_UP,
    m.ConversationState.CLOSED.value: conversation_pb2.CONVERSATION_STATE_CLOSED,
    m.ConversationState.ABANDONED.value: conversation_pb2.CONVERSATION_STATE_ABANDONED,
}
_STATES_BACK: Final = {v: k for k, v in _STATES.items()}


def state_to_proto(
    state: str | m.ConversationState,
) -> conversation_pb2.ConversationState.ValueType:
    return _STATES.get(str(state), conversation_pb2.CONVERSATION_STATE_UNSPECIFIED)


def parse_state(state: conversation_pb2.ConversationState.ValueType) -> m.ConversationState:
    found = _STATES_BACK.get(state)
    if found is None:
        raise InvalidArgument(f"unknown conversation state {state}", field="states")
    return m.ConversationState(found)


_OUTCOMES: Final[dict[str, conversation_pb2.Outcome.ValueType]] = {
    m.Outcome.RESOLVED.value: conversation_pb2.OUTCOME_RESOLVED,
    m.Outcome.SPAM.value: conversation_pb2.OUTCOME_SPAM,
    m.Outcome.IGNORED.value: conversation_pb2.OUTCOME_IGNORED,
}


def outcome_to_proto(outcome: str | None) -> conversation_pb2.Outcome.ValueType:
    return _OUTCOMES.get(outcome or "", conversation_pb2.OUTCOME_UNSPECIFIED)


def parse_outcome(outcome: conversation_pb2.Outcome.ValueType) -> m.Outcome:
    """Unspecified means RESOLVED."""
    for value, number in _OUTCOMES.items():
        if number == outcome:
            return m.Outcome(value)
    if outcome == conversation_pb2.OUTCOME_UNSPECIFIED:
        return m.Outcome.RESOLVED
    raise InvalidArgument(f"unknown outcome {outcome}", field="outcome")


_MODES: Final[dict[conversation_pb2.ConversationMode.ValueType, m.Mode]] = {
    conversation_pb2.CONVERSATION_MODE_AUTO: m.Mode.AUTO,
    conversation_pb2.CONVERSATION_MODE_SILENT: m.Mode.SILENT,
    conversation_pb2.CONVERSATION_MODE_LIVE: m.Mode.LIVE,
    conversation_pb2.CONVERSATION_MODE_END: m.Mode.END,
}


def parse_mode(mode: conversation_pb2.ConversationMode.ValueType) -> m.Mode:
    found = _MODES.get(mode)
    if found is None:
        raise InvalidArgument("mode must be AUTO, SILENT, LIVE or END", field="mode")
    return found


_STATUSES: Final[dict[str, agent_pb2.AgentStatus.ValueType]] = {
    m.AgentStatus.ONLINE.value: agent_pb2.AGENT_STATUS_ONLINE,
    m.AgentStatus.AWAY.value: agent_pb2.AGENT_STATUS_AWAY,
    m.AgentStatus.BREAK.value: agent_pb2.AGENT_STATUS_BREAK,
    m.AgentStatus.OFFLINE.value: agent_pb2.AGENT_STATUS_OFFLINE,
}


def status_to_proto(status: str | m.AgentStatus) -> agent_pb2.AgentStatus.ValueType:
    return _STATUSES.get(str(status), agent_pb2.AGENT_STATUS_UNSPECIFIED)


def parse_status(status: agent_pb2.AgentStatus.ValueType) -> m.AgentStatus:
    for value, number in _STATUSES.items():
        if number == status:
            return m.AgentStatus(value)
    raise InvalidArgument("status must be ONLINE, AWAY, BREAK or OFFLINE", field="status")


_SENDERS: Final[dict[str, conversation_pb2.Sender.ValueType]] = {
    "customer": conversation_pb2.SENDER_CUSTOMER,
    "agent": conversation_pb2.SENDER_AGENT,
    "bot": conversation_pb2.SENDER_BOT,
    "system": conversation_pb2.SENDER_SYSTEM,
}


def sender_to_proto(sender: str | m.Sender) -> conversation_pb2.Sender.ValueType:
    return _SENDERS.get(str(sender), conversation_pb2.SENDER_UNSPECIFIED)


_TRANSFER_STATES: Final[dict[str, routing_pb2.TransferState.ValueType]] = {
    m.TransferOutcome.ACCEPTED.value: routing_pb2.TRANSFER_STATE_ACCEPTED,
    m.TransferOutcome.REJECTED.value: routing_pb2.TRANSFER_STATE_REJECTED,
    m.TransferOutcome.CANCELLED.value: routing_pb2.TRANSFER_STATE_CANCELLED,
    m.TransferOutcome.EXPIRED.value: routing_pb2.TRANSFER_STATE_EXPIRED,
    m.TransferOutcome.RESCINDED.value: routing_pb2.TRANSFER_STATE_RESCINDED,
}


def transfer_state_to_proto(
    outcome: str | None, target: str = "agent"
) -> routing_pb2.TransferState.ValueType:
    """A transfer's state from its stored outcome (None: pending). A queue or department
    transfer that went through is COMPLETED rather than ACCEPTED."""
    if outcome is None:
        return routing_pb2.TRANSFER_STATE_PENDING
    if outcome == "accepted" and target != "agent":
        return routing_pb2.TRANSFER_STATE_COMPLETED
    return _TRANSFER_STATES.get(outcome, routing_pb2.TRANSFER_STATE_UNSPECIFIED)


_KINDS: Final[dict[str, conversation_pb2.SystemMessageKind.ValueType]] = {
    m.SystemMessage.WELCOME.value: conversation_pb2.SYSTEM_MESSAGE_KIND_WELCOME,
    m.SystemMessage.WAITING.value: conversation_pb2.SYSTEM_MESSAGE_KIND_WAITING,
    m.SystemMessage.OUT_OF_HOURS.value: conversation_pb2.SYSTEM_MESSAGE_KIND_OUT_OF_HOURS,
    m.SystemMessage.BREAK_TIME.value: conversation_pb2.SYSTEM_MESSAGE_KIND_BREAK_TIME,
    m.SystemMessage.AGENT_JOINED.value: conversation_pb2.SYSTEM_MESSAGE_KIND_AGENT_JOINED,
    m.SystemMessage.AGENT_ENDED.value: conversation_pb2.SYSTEM_MESSAGE_KIND_AGENT_ENDED,
    m.SystemMessage.IDLE_REMINDER.value: conversation_pb2.SYSTEM_MESSAGE_KIND_IDLE_REMINDER,
    m.SystemMessage.IDLE_CLOSED.value: conversation_pb2.SYSTEM_MESSAGE_KIND_IDLE_CLOSED,
    m.SystemMessage.LEAVE_MESSAGE.value: conversation_pb2.SYSTEM_MESSAGE_KIND_LEAVE_MESSAGE,
    m.SystemMessage.AGENT_AUTO_REPLY.value: conversation_pb2.SYSTEM_MESSAGE_KIND_AGENT_AUTO_REPLY,
    m.SystemMessage.AGENT_BUSY.value: conversation_pb2.SYSTEM_MESSAGE_KIND_AGENT_BUSY,
}


def system_kind_to_proto(
    kind: str | m.SystemMessage,
) -> conversation_pb2.SystemMessageKind.ValueType:
    return _KINDS.get(str(kind), conversation_pb2.SYSTEM_MESSAGE_KIND_UNSPECIFIED)


def require(value: str, field: str) -> str:
    """``value`` unless empty; ``InvalidArgument`` naming ``field`` otherwise."""
    if not value:
        raise InvalidArgument(f"{field} is required", field=field)
    return value


def parse_receipt_status(status: conversation_pb2.ReceiptStatus.ValueType) -> str:
    """``delivered`` or ``read`` (unspecified means read)."""
    if status == conversation_pb2.RECEIPT_STATUS_DELIVERED:
        return "delivered"
    if status in (
        conversation_pb2.RECEIPT_STATUS_READ,
        conversation_pb2.RECEIPT_STATUS_UNSPECIFIED,
    ):
        return "read"
    raise InvalidArgument("status must be DELIVERED or READ", field="status")
