"""A small kit for driving the engine in tests: a tenant builder and event helpers."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from core.routing import Engine, ManualClock, Result
from core.routing import commands as c
from core.routing import events as ev
from core.routing import model as m
from core.routing.invariants import check_invariants
from core.routing.router import Router

T = "acme"
E = TypeVar("E", bound=ev.Event)


class Kit:
    """An engine on a manual clock with one tenant, plus shorthands used across the tests.

    Every command goes through ``run``, which checks the invariants afterwards and keeps the
    event log so tests can replay it.
    """

    def __init__(self, settings: m.TenantSettings | None = None, skills: Iterable[str] = ()):
        self.clock = ManualClock()
        self.engine = Engine(self.clock)
        self.log: list[ev.Event] = []
        self.run(c.ConfigureTenant(tenant=T, settings=settings or m.TenantSettings()))
        for skill in skills:
            self.run(c.DefineSkill(tenant=T, skill=skill))

    @property
    def router(self) -> Router:
        return self.engine.router(T)

    def run(self, command: c.Command) -> Result:
        result = self.engine.execute(command)
        self.log.extend(result.events)
        check_invariants(self.engine.router(command.tenant))
        return result

    def advance(self, seconds: float) -> Result:
        self.clock.advance(seconds)
        result = self.engine.tick()
        self.log.extend(result.events)
        check_invariants(self.router)
        return result

    # --- shorthands ---------------------------------------------------------------------------

    def queue(self, queue_id: str = "q", **settings: Any) -> None:
        self.run(
            c.ConfigureQueue(tenant=T, settings=m.QueueSettings(queue_id=queue_id, **settings))
        )

    def agent(
        self, agent_id: str, online: bool = True, capacity: float = 1.0, **profile: Any
    ) -> None:
        self.run(
            c.ConfigureAgent(
                tenant=T,
                profile=m.AgentProfile(agent_id=agent_id, capacity=capacity, **profile),
            )
        )
        if online:
            self.status(agent_id, m.AgentStatus.ONLINE)

    def status(self, agent_id: str, status: m.AgentStatus, custom: str | None = None) -> Result:
        return self.run(
            c.SetAgentStatus(tenant=T, agent_id=agent_id, status=status, custom_status=custom)
        )

    def start(self, conversation_id: str, queue_id: str | None = "q", **fields: Any) -> Result:
        fields.setdefault("channel", "webchat")
        fields.setdefault("customer_id", f"cust-{conversation_id}")
        return self.run(
            c.StartConversation(
                tenant=T, conversation_id=conversation_id, queue_id=queue_id, **fields
            )
        )

    def accept(self, offer: ev.OfferMade, agent_id: str | None = None) -> Result:
        return self.run(
            c.AcceptOffer(
                tenant=T, offer_id=offer.offer_id, agent_id=agent_id or offer.agent_ids[0]
            )
        )

    def end(self, conversation_id: str, agent_id: str | None = None) -> Result:
        owner = agent_id or self.conv(conversation_id).owner
        assert owner is not None
        return self.run(
            c.EndConversation(tenant=T, agent_id=owner, conversation_id=conversation_id)
        )

    def conv(self, conversation_id: str) -> Any:
        return self.router.conversations[conversation_id]

    def state(self, conversation_id: str) -> m.ConversationState:
        return self.conv(conversation_id).state

    def live_offer(self, conversation_id: str) -> ev.OfferMade:
        """The OfferMade event of the conversation's live offer."""
        offer_id = self.conv(conversation_id).offer
        assert offer_id is not None, f"{conversation_id} has no live offer"
        return next(
            e for e in reversed(self.log) if isinstance(e, ev.OfferMade) and e.offer_id == offer_id
        )

    def offered_to(self, conversation_id: str) -> tuple[str, ...]:
        return self.live_offer(conversation_id).agent_ids

    def assign(self, conversation_id: str) -> str:
        """Accept the conversation's live (directed) offer; return the new owner."""
        offer = self.live_offer(conversation_id)
        self.accept(offer)
        return offer.agent_ids[0]


def of_type(items: Iterable[Any], kind: type[E]) -> list[E]:
    return [item for item in items if isinstance(item, kind)]
