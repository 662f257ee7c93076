"""The engine: a router per tenant behind one entry point.

``execute`` runs a command and returns what happened (events) and what the runtime must do
(effects); a ``RoutingError`` means nothing changed. ``tick`` fires due timers. ``replay`` feeds
recorded events into an empty engine to rebuild it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from core.routing import commands as c
from core.routing import events as ev
from core.routing.clock import Clock, SystemClock
from core.routing.effects import Effect
from core.routing.errors import NotFound
from core.routing.router import Router


@dataclass(frozen=True, slots=True)
class Result:
    events: list[ev.Event] = field(default_factory=list)
    effects: list[Effect] = field(default_factory=list)


class Engine:
    def __init__(self, clock: Clock | None = None) -> None:
        self.clock: Clock = clock or SystemClock()
        self._routers: dict[str, Router] = {}

    def execute(self, command: c.Command) -> Result:
        router = self._routers.get(command.tenant)
        if router is None:
            if not isinstance(command, c.ConfigureTenant):
                raise NotFound(f"tenant {command.tenant!r} not found", tenant=command.tenant)
            router = Router(command.tenant, self.clock)
            events, effects = router.execute(command)  # raises before we keep the router
            self._routers[command.tenant] = router
            return Result(events, effects)
        events, effects = router.execute(command)
        return Result(events, effects)

    def tick(self) -> Result:
        """Fire every timer due at the clock's now, in every tenant."""
        now = self.clock.now()
        result = Result()
        for router in self._routers.values():
            deadline = router.next_deadline()
            if deadline is not None and deadline <= now:
                events, effects = router.tick()
                result.events.extend(events)
                result.effects.extend(effects)
        return result

    def next_deadline(self) -> float | None:
        deadlines = [d for r in self._routers.values() if (d := r.next_deadline()) is not None]
        return min(deadlines, default=None)

    def replay(self, events: Iterable[ev.Event]) -> None:
        """Apply recorded events in order; tenants are created by their first event."""
        for event in events:
            router = self._routers.get(event.tenant)
            if router is None:
                router = self._routers[event.tenant] = Router(event.tenant, self.clock)
            router.apply(event)

    def forget(self, tenant: str) -> None:
        """Drop a tenant's state (its owner rebuilds it from the store when needed)."""
        self._routers.pop(tenant, None)

    def restore(self, router: Router) -> None:
        """Adopt a router restored from a snapshot (then ``replay`` the events after it)."""
        router.clock = self.clock
        self._routers[router.tenant] = router

    def router(self, tenant: str) -> Router:
        router = self._routers.get(tenant)
        if router is None:
            raise NotFound(f"tenant {tenant!r} not found", tenant=tenant)
        return router

    def get(self, tenant: str) -> Router | None:
        """The tenant's router, or None if it has no state yet."""
        return self._routers.get(tenant)

    @property
    def tenants(self) -> list[str]:
        return sorted(self._routers)

    def __repr__(self) -> str:
        return f"<Engine tenants={len(self._routers)}>"
