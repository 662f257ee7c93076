"""RateConversation in the pure engine: after the end only, once, within seven days, for
conversations held in memory or forgotten (then from what the store recorded), and the
ratings remembered only as long as a repeat could come."""

from __future__ import annotations

import pytest

from core.routing import commands as c
from core.routing import events as ev
from core.routing import model as m
from core.routing.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from core.routing.router import Router
from core.routing.router_parts.ratings import RATING_WINDOW
from tests.unit.engine_kit import Kit, T, of_type

DAY = 86400.0


def rate(kit: Kit, conversation_id: str, score: int, **fields: object) -> list[ev.Event]:
    command = c.RateConversation(
        tenant=T,
        conversation_id=conversation_id,
        score=score,
        **fields,  # type: ignore[arg-type]
    )
    return kit.run(command).events


def served(kit: Kit, conversation_id: str) -> None:
    kit.start(conversation_id, tags=frozenset({"vip"}))
    kit.assign(conversation_id)
    kit.advance(30)
    kit.end(conversation_id)


def test_a_conversation_is_rated_once_after_it_ends() -> None:
    kit = Kit(m.TenantSettings(closed_retention_seconds=600))
    kit.queue()
    kit.agent("ann")
    kit.start("c1")
    kit.assign("c1")
    with pytest.raises(FailedPrecondition):
        rate(kit, "c1", 4)  # still going
    kit.end("c1")
    with pytest.raises(InvalidArgument):
        rate(kit, "c1", 6)
    (given,) = of_type(rate(kit, "c1", 4, comment="kind"), ev.ConversationRated)
    assert (given.score, given.comment, given.queue_id, given.agent_id, given.channel) == (
        4,
        "kind",
        "q",
        "ann",
        "webchat",
    )
    assert rate(kit, "c1", 4, comment="kind") == []  # the same again: nothing
    with pytest.raises(AlreadyExists):
        rate(kit, "c1", 5)


def test_a_forgotten_conversation_is_rated_from_the_store_within_seven_days() -> None:
    kit = Kit(m.TenantSettings(closed_retention_seconds=60))
    kit.queue()
    kit.agent("ann")
    served(kit, "c1")
    ended = kit.clock.now()
    kit.advance(120)
    assert "c1" not in kit.router.conversations
    stored = {"ended_at": ended, "channel": "line", "queue_id": "q", "agent_id": "ann"}
    with pytest.raises(FailedPrecondition):
        rate(kit, "c1", 3)  # nothing says it ended
    long_ago = {**stored, "ended_at": kit.clock.now() - RATING_WINDOW - 1}
    with pytest.raises(FailedPrecondition):
        rate(kit, "c1", 3, **long_ago)
    (given,) = of_type(rate(kit, "c1", 3, **stored), ev.ConversationRated)
    assert (given.channel, given.agent_id) == ("line", "ann")


def test_ratings_are_remembered_only_while_a_repeat_could_come() -> None:
    kit = Kit(m.TenantSettings(closed_retention_seconds=60))
    kit.queue()
    kit.agent("ann")
    for name in ("c1", "c2"):
        served(kit, name)
        rate(kit, name, 5)
    assert list(kit.router.ratings) == ["c1", "c2"]
    kit.clock.advance(RATING_WINDOW + DAY)
    stored = {"ended_at": kit.clock.now(), "channel": "webchat"}
    rate(kit, "c3", 2, **stored)
    assert list(kit.router.ratings) == ["c3"]
    replayed = Router(T, kit.clock)
    for event in kit.log:
        replayed.apply(event)
    assert replayed.ratings == kit.router.ratings
