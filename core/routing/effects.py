"""Effects: what the runtime must do on the engine's behalf. The engine performs no I/O."""

from __future__ import annotations

from dataclasses import dataclass

from core.bots.interpreter import KnowledgeSearch, WebhookCall
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


@dataclass(frozen=True, slots=True, kw_only=True)
class BotEffectRequested(Effect):
    """Perform a bot flow's I/O outside the engine (``core.runtime.bot_effects``) and answer it
    with ``AnswerBotEffect``: a webhook call or a knowledge-base search (exactly one is set).
    The flow waits for ``effect``; a conversation waits for at most one effect at a time."""

    conversation_id: str
    bot_id: str
    version: int
    effect: int
    webhook: WebhookCall | None = None
    knowledge: KnowledgeSearch | None = None
