"""Choices on messages in the engine: an agent's or a bot's message carries them, a customer's
carries the pick, both travel in the message event and through the event log's codec; the
wrong side or malformed choices are refused and change nothing."""

from __future__ import annotations

import pytest

from core.routing import commands as c
from core.routing import events as ev
from core.routing import model as m
from core.routing.errors import InvalidArgument
from core.store import codec
from tests.unit.engine_kit import Kit, T, of_type

CHOICES = m.MessageChoices(
    options=(
        m.MessageOption("refund", "Refund", "Money back"),
        m.MessageOption("delivery", "Delivery"),
    ),
    style=m.ChoiceStyle.LIST,
    button_text="Pick one",
    header="Orders",
    footer="Reply any time",
)


def active_kit() -> Kit:
    kit = Kit()
    kit.queue()
    kit.agent("a")
    kit.start("c1")
    kit.assign("c1")
    return kit


def say(kit: Kit, sender: m.Sender, body: m.MessageBody) -> ev.MessageRecorded:
    result = kit.run(
        c.RecordMessage(
            tenant=T,
            conversation_id="c1",
            sender=sender,
            agent_id="a" if sender is m.Sender.AGENT else None,
            message=body,
        )
    )
    (recorded,) = of_type(result.events, ev.MessageRecorded)
    return recorded


def test_choices_and_the_pick_travel_in_the_message_events_and_the_log() -> None:
    kit = active_kit()
    offered = say(kit, m.Sender.AGENT, m.MessageBody(text="What about?", choices=CHOICES))
    picked = say(kit, m.Sender.CUSTOMER, m.MessageBody(text="Refund", selected_option_id="refund"))

    assert offered.body.choices == CHOICES
    assert picked.body.selected_option_id == "refund"
    for event in (offered, picked):
        assert codec.decode(*codec.encode(event)) == event


def test_an_event_logged_before_choices_existed_still_reads() -> None:
    kit = active_kit()
    event = say(kit, m.Sender.AGENT, m.MessageBody(text="hi"))
    name, payload = codec.encode(event)
    old = payload.replace(',"choices":null', "").replace(',"selected_option_id":""', "")
    assert "choices" not in old
    assert codec.decode(name, old) == event


@pytest.mark.parametrize(
    ("sender", "body", "field"),
    [
        (m.Sender.CUSTOMER, m.MessageBody(text="x", choices=CHOICES), "choices"),
        (
            m.Sender.AGENT,
            m.MessageBody(text="x", selected_option_id="refund"),
            "selected_option_id",
        ),
        (m.Sender.AGENT, m.MessageBody(text="x", choices=m.MessageChoices(options=())), "choices"),
        (
            m.Sender.AGENT,
            m.MessageBody(
                text="x",
                choices=m.MessageChoices(
                    options=tuple(m.MessageOption(f"o{i}", f"O {i}") for i in range(11))
                ),
            ),
            "choices",
        ),
        (
            m.Sender.AGENT,
            m.MessageBody(
                text="x",
                choices=m.MessageChoices(
                    options=(m.MessageOption("a", "A"), m.MessageOption("a", "B"))
                ),
            ),
            "choices",
        ),
        (
            m.Sender.AGENT,
            m.MessageBody(text="x", choices=m.MessageChoices(options=(m.MessageOption("a", " "),))),
            "choices",
        ),
        (
            m.Sender.CUSTOMER,
            m.MessageBody(text="x", selected_option_id="x" * 65),
            "selected_option_id",
        ),
    ],
)
def test_malformed_choices_or_picks_are_refused_and_change_nothing(
    sender: m.Sender, body: m.MessageBody, field: str
) -> None:
    kit = active_kit()
    before = len(kit.log)
    with pytest.raises(InvalidArgument) as refused:
        say(kit, sender, body)
    assert refused.value.details.get("field") == field
    assert len(kit.log) == before


def test_a_customer_can_start_a_conversation_with_a_pick() -> None:
    kit = Kit()
    kit.queue()
    first = m.MessageBody(text="Refund", selected_option_id="refund", provider_message_id="p1")
    result = kit.start("c2", first_message=first)
    (recorded,) = of_type(result.events, ev.MessageRecorded)
    assert recorded.body.selected_option_id == "refund"
