"""Effects: what the runtime must do on the engine's behalf. The engine performs no I/O."""

from __future__ import annotations

from dataclasses import dataclass

from core.routing.timers import TimerKind


@dataclass(frozen=True, slots=True, kw_only=True)
class Effect:
    tenant: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ArmTimer(Effect):
    """Call ``Engine.tick`` at or after ``deadline``. Timers live in the engine's state (so they
    survive a rebuild); one that no longer applies by then simply fires nothing."""

    kind: TimerKind
    subject: str
    deadline: float
