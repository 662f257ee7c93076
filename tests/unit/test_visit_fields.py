"""A conversation's web page and referrer ride on ConversationStarted (for visitor reports)."""

from __future__ import annotations

from core.routing import events as ev
from core.store import codec
from tests.unit.engine_kit import Kit, of_type


def test_the_start_event_carries_page_and_referrer_through_the_log() -> None:
    kit = Kit()
    kit.queue()
    page, referrer = "https://shop.test/pricing?plan=pro", "https://search.test/?q=shoes"
    started = of_type(kit.start("c1", page=page, referrer=referrer).events, ev.ConversationStarted)
    assert [(e.page, e.referrer) for e in started] == [(page, referrer)]
    again = codec.decode(*codec.encode(started[0]))
    assert isinstance(again, ev.ConversationStarted) and again.page == page
    assert again.referrer == referrer


def test_a_start_without_them_carries_empty_strings() -> None:
    kit = Kit()
    kit.queue()
    (started,) = of_type(kit.start("c2").events, ev.ConversationStarted)
    assert (started.page, started.referrer) == ("", "")
