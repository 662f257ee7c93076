"""Typed errors raised by the engine. A raised error means the command changed nothing.

Each error carries the canonical gRPC status name the service layer answers with, so the
mapping lives next to the error rather than in a table somewhere else.
"""

from __future__ import annotations


class RoutingError(Exception):
    """Base class: the command was refused and the engine state is unchanged."""

    code = "INTERNAL"

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidArgument(RoutingError):
    """The command is malformed whatever the state (capacity <= 0, level out of range...)."""

    code = "INVALID_ARGUMENT"


class NotFound(RoutingError):
    """A tenant, agent, queue, conversation, offer or transfer that does not exist."""

    code = "NOT_FOUND"


class AlreadyExists(RoutingError):
    """Creating something whose id is taken."""

    code = "ALREADY_EXISTS"


class FailedPrecondition(RoutingError):
    """The command is well formed but the state does not allow it (offer gone, wrong state)."""

    code = "FAILED_PRECONDITION"


class CapacityExceeded(RoutingError):
    """The agent has no room for this conversation and no override was given."""

    code = "RESOURCE_EXHAUSTED"


class PermissionDenied(RoutingError):
    """The acting agent may not do this (answering someone else's offer, ending another's chat)."""

    code = "PERMISSION_DENIED"


class Duplicate(AlreadyExists):
    """A message whose idempotency key was recorded before: nothing changed. ``details`` name
    the original (``message_id``, ``conversation_id``)."""


BLOCKED = "BLOCKED"
"""``details["reason"]`` of ``Blocked``."""
PROFILE_NEEDED = "PROFILE_NEEDED"
"""``details["reason"]`` of ``ProfileNeeded``."""


class Blocked(FailedPrecondition):
    """The customer is blocked (their profile's standing block): their message starts nothing
    and is not recorded. ``details``: ``reason`` BLOCKED, ``block_id``, and the conversation's
    ``channel``, ``customer_id``, ``external_id`` and ``conversation_id`` (empty for a start), so
    the door can keep the message for the record."""

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message, reason=BLOCKED, **details)


class ProfileNeeded(FailedPrecondition):
    """The message would start a conversation and the command carries no customer profile
    (``ReceiveMessage.require_profile``): nothing changed; read it and submit again.
    ``details``: ``reason`` PROFILE_NEEDED."""

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message, reason=PROFILE_NEEDED, **details)
