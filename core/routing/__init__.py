"""The pure routing engine: commands in, events and effects out, time from a clock. No I/O."""

from core.routing import commands, effects, events, model
from core.routing.clock import Clock, ManualClock, SystemClock
from core.routing.engine import Engine, Result
from core.routing.errors import (
    AlreadyExists,
    CapacityExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    RoutingError,
)
from core.routing.explain import Candidate, Decision

__all__ = [
    "AlreadyExists",
    "Candidate",
    "CapacityExceeded",
    "Clock",
    "Decision",
    "Engine",
    "FailedPrecondition",
    "InvalidArgument",
    "ManualClock",
    "NotFound",
    "PermissionDenied",
    "Result",
    "RoutingError",
    "SystemClock",
    "commands",
    "effects",
    "events",
    "model",
]
