"""Commands and outcomes cross the Ray boundary as msgpack (``core.runtime.wire``): every
command the engine's state machine generates, and every outcome it produces, comes back equal."""

from __future__ import annotations

from hypothesis import settings

from core.routing import commands as c
from core.routing.errors import RoutingError
from core.routing.views import agent_view, conversation_view
from core.runtime import wire
from core.runtime.shard import Failure, Outcome
from tests.unit.test_engine_machine import EngineMachine


class WireMachine(EngineMachine):
    def _run(self, command: c.Command) -> None:
        assert wire.decode_commands(wire.encode_commands([command])) == [command]
        try:
            result = self.engine.execute(command)
        except RoutingError as exc:
            refused = Outcome(failure=Failure(exc.code, exc.message, {"why": str(exc.details)}))
            assert wire.decode_outcomes(wire.encode_outcomes([refused])) == [refused]
            return
        self.log.extend(result.events)
        router = self.engine.router(command.tenant)
        subject = getattr(command, "conversation_id", None)
        outcome = Outcome(
            tuple(result.events),
            tuple(result.effects),
            first_id=len(self.log),
            conversation=conversation_view(router, subject) if subject else None,
            agent=agent_view(router, getattr(command, "agent_id", None) or ""),
        )
        assert wire.decode_outcomes(wire.encode_outcomes([outcome])) == [outcome]


WireMachine.TestCase.settings = settings(
    max_examples=25, stateful_step_count=60, deadline=None, derandomize=True
)
TestWire = WireMachine.TestCase
