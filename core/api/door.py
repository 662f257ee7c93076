"""What every servicer does with a command: submit it, and turn the engine's refusals into
the answers the contract promises (a conversation the engine no longer holds in memory is
closed, not missing; a repeated message is a duplicate, answered with the original)."""

from __future__ import annotations

from usher.v1 import conversation_pb2

from core.api import convert as cv
from core.api import resources as res
from core.api.context import ApiContext
from core.routing import commands as c
from core.routing import events as ev
from core.routing.errors import FailedPrecondition, NotFound
from core.runtime.shard import Failure, Outcome


def is_duplicate(failure: Failure | None) -> bool:
    return (
        failure is not None
        and failure.code == "ALREADY_EXISTS"
        and ("message_id" in failure.details)
    )


async def run(api: ApiContext, command: c.Command, *, gone_reason: str = "") -> Outcome:
    """The committed outcome, or the refusal raised. A conversation the engine does not know
    (closed and past its retention in memory) is answered from the store: FAILED_PRECONDITION
    if it exists, NOT_FOUND otherwise."""
    outcome = await api.submit(command)
    conversation_id = getattr(command, "conversation_id", None)
    if conversation_id is not None and _conversation_unknown(outcome.failure, conversation_id):
        await require_stored_closed(api, command.tenant, conversation_id)
    return cv.check(outcome, gone_reason=gone_reason)


def _conversation_unknown(failure: Failure | None, conversation_id: str) -> bool:
    """The engine does not hold this conversation (never started, or left memory)."""
    return (
        failure is not None
        and failure.code == "NOT_FOUND"
        and failure.details.get("conversation_id") == conversation_id
    )


async def require_stored_closed(api: ApiContext, tenant: str, conversation_id: str) -> None:
    """Raise NOT_FOUND for a conversation that never existed, else FAILED_PRECONDITION."""
    if await api.reads.conversation(tenant, conversation_id) is None:
        raise NotFound(
            f"conversation {conversation_id!r} not found", conversation_id=conversation_id
        )
    raise FailedPrecondition(
        f"conversation {conversation_id!r} is closed", conversation_id=conversation_id
    )


async def original_message(
    api: ApiContext, tenant: str, failure: Failure
) -> conversation_pb2.Message:
    """The stored message a duplicate refusal names."""
    record = await api.reads.message(tenant, int(failure.details["message_id"]))
    if record is None:  # numbered but not visible: cannot happen once committed
        raise cv.Refused(Failure("UNAVAILABLE", "the original message is not readable yet"))
    return res.message_from_record(record)


async def stored_conversation(
    api: ApiContext, tenant: str, conversation_id: str
) -> conversation_pb2.Conversation:
    row = await api.reads.conversation(tenant, conversation_id)
    if row is None:
        raise NotFound(
            f"conversation {conversation_id!r} not found", conversation_id=conversation_id
        )
    return res.conversation_from_row(row)


def conversation_of(outcome: Outcome) -> conversation_pb2.Conversation:
    """The conversation as the command left it."""
    assert outcome.conversation is not None, "a conversation command's outcome has its view"
    return res.conversation_from_view(outcome.conversation)


async def record_message(
    api: ApiContext, command: c.RecordMessage
) -> tuple[conversation_pb2.Message, bool]:
    """Record a message in a conversation: (the message, duplicate). A repeated key is answered
    with the original, also when its conversation has left the engine's memory since."""
    outcome = await api.submit(command)
    failure = outcome.failure
    if is_duplicate(failure):
        assert failure is not None
        return await original_message(api, command.tenant, failure), True
    if _conversation_unknown(failure, command.conversation_id):
        key = command.message.provider_message_id
        conversation = await stored_conversation(api, command.tenant, command.conversation_id)
        original = (
            None
            if key is None
            else await api.reads.message_by_key(command.tenant, conversation.channel, key)
        )
        if original is not None:
            return res.message_from_record(original), True
        await require_stored_closed(api, command.tenant, command.conversation_id)
    cv.check(outcome)
    return recorded_message(outcome), False


def recorded_message(outcome: Outcome) -> conversation_pb2.Message:
    """The message a committed command recorded."""
    found = next((e for e in outcome.events if isinstance(e, ev.MessageRecorded)), None)
    assert found is not None, "a message command records its message"
    return res.message_from_event(found)
